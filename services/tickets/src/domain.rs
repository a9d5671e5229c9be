//! Tickets' vocabulary and rules: categories, priorities, the status machine, the SLA clock and
//! ticket numbers. No I/O.

use chrono::{Duration, NaiveDateTime};

use agora_shared::wire_enum;

wire_enum!(
    /// Kind of field work.
    Category {
        FiberInstallation => "FIBER_INSTALLATION",
        Maintenance => "MAINTENANCE",
        Repair => "REPAIR",
        Inspection => "INSPECTION",
        Emergency => "EMERGENCY",
    }
);

wire_enum!(
    /// How urgent a ticket is; sets its default SLA.
    Priority {
        Low => "LOW",
        Medium => "MEDIUM",
        High => "HIGH",
        Urgent => "URGENT",
    }
);

wire_enum!(
    /// Where a ticket is in its life.
    Status {
        Open => "OPEN",
        InProgress => "IN_PROGRESS",
        OnHold => "ON_HOLD",
        Completed => "COMPLETED",
        Cancelled => "CANCELLED",
    }
);

wire_enum!(
    /// A ticket's standing against its SLA.
    SlaStatus {
        OnTime => "ON_TIME",
        AtRisk => "AT_RISK",
        Breached => "BREACHED",
        Pending => "PENDING",
    }
);

/// Zones a tenant starts with.
pub const DEFAULT_ZONES: [&str; 5] = ["Northern", "Southern", "Central", "East Coast", "Borneo"];

/// Share of the SLA after which a running ticket is at risk.
const AT_RISK_SHARE: f64 = 0.8;

impl Priority {
    /// Default SLA hours: URGENT 4, HIGH 8, MEDIUM 24, LOW 72.
    pub fn default_sla_hours(self) -> i32 {
        match self {
            Self::Urgent => 4,
            Self::High => 8,
            Self::Medium => 24,
            Self::Low => 72,
        }
    }

    /// Sort rank: LOW 1 .. URGENT 4.
    pub fn rank(self) -> i32 {
        match self {
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
            Self::Urgent => 4,
        }
    }
}

impl Status {
    /// Statuses reachable from this one.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            Open => &[InProgress, OnHold, Cancelled],
            InProgress => &[Completed, OnHold, Cancelled],
            OnHold => &[Open, InProgress, Cancelled],
            Completed | Cancelled => &[],
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// Checks a move, naming the allowed ones when it is illegal.
    pub fn check_move(self, to: Status) -> Result<(), String> {
        if self.next().contains(&to) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.next().iter().map(|s| s.as_str()).collect();
        Err(if allowed.is_empty() {
            format!("a {self} ticket cannot change status")
        } else {
            format!(
                "cannot move from {self} to {to}; allowed: {}",
                allowed.join(", ")
            )
        })
    }
}

/// The SLA clock of one ticket. Time spent on hold does not count: leaving hold pushes the due
/// time back by the hold's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaClock {
    pub created_at: NaiveDateTime,
    pub sla_hours: i32,
    /// Hold time already served.
    pub paused_secs: i64,
    /// Set while the clock stands still (on hold, completed or cancelled).
    pub stopped_at: Option<NaiveDateTime>,
}

impl SlaClock {
    pub fn new(created_at: NaiveDateTime, sla_hours: i32) -> Self {
        Self {
            created_at,
            sla_hours,
            paused_secs: 0,
            stopped_at: None,
        }
    }

    fn sla(&self) -> Duration {
        Duration::hours(i64::from(self.sla_hours))
    }

    /// When the SLA runs out, counting hold time served so far.
    pub fn due_at(&self) -> NaiveDateTime {
        self.created_at + self.sla() + Duration::seconds(self.paused_secs)
    }

    /// When 80% of the SLA has been used.
    pub fn at_risk_at(&self) -> NaiveDateTime {
        let share = (self.sla().num_seconds() as f64 * AT_RISK_SHARE) as i64;
        self.created_at + Duration::seconds(share + self.paused_secs)
    }

    /// Stops the clock (hold, completion, cancellation); a stopped clock stays stopped.
    pub fn stop(&mut self, at: NaiveDateTime) {
        self.stopped_at.get_or_insert(at);
    }

    /// Restarts a clock stopped by a hold, adding the hold to the paused time.
    pub fn resume(&mut self, at: NaiveDateTime) {
        if let Some(stopped) = self.stopped_at.take() {
            self.paused_secs += (at - stopped).num_seconds().max(0);
        }
    }

    /// The ticket's SLA standing at `now`.
    pub fn status(
        &self,
        status: Status,
        completed_at: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> SlaStatus {
        let due = self.due_at();
        if status == Status::Completed {
            return match completed_at {
                Some(done) if done > due => SlaStatus::Breached,
                _ => SlaStatus::OnTime,
            };
        }
        let t = self.stopped_at.unwrap_or(now);
        if t > due {
            SlaStatus::Breached
        } else if status == Status::Cancelled {
            SlaStatus::Pending
        } else if t >= self.at_risk_at() {
            SlaStatus::AtRisk
        } else {
            SlaStatus::Pending
        }
    }
}

/// `CTT-000001`.
pub fn format_number(n: i64) -> String {
    format!("CTT-{n:06}")
}

/// The sequence number of `CTT-000042`, if it is one.
pub fn parse_number(s: &str) -> Option<i64> {
    let digits = s.strip_prefix("CTT-")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Tags trimmed, without empties or duplicates, in their given order.
pub fn clean_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
            + Duration::hours(h)
    }

    #[test]
    fn status_machine() {
        use Status::*;
        assert!(Open.check_move(InProgress).is_ok());
        assert!(InProgress.check_move(Completed).is_ok());
        assert!(Open.check_move(OnHold).is_ok() && OnHold.check_move(Open).is_ok());
        assert!(InProgress.check_move(OnHold).is_ok() && OnHold.check_move(InProgress).is_ok());
        for s in [Open, InProgress, OnHold] {
            assert!(s.check_move(Cancelled).is_ok());
        }
        let err = Open.check_move(Completed).unwrap_err();
        assert_eq!(
            err,
            "cannot move from OPEN to COMPLETED; allowed: IN_PROGRESS, ON_HOLD, CANCELLED"
        );
        assert!(Completed.check_move(Open).is_err());
        assert!(Cancelled.check_move(Open).is_err());
        assert!(OnHold.check_move(Completed).is_err());
    }

    #[test]
    fn default_sla_by_priority() {
        let hours: Vec<i32> = Priority::ALL
            .iter()
            .map(|p| p.default_sla_hours())
            .collect();
        assert_eq!(hours, [72, 24, 8, 4]);
    }

    #[test]
    fn sla_clock_without_hold() {
        let clock = SlaClock::new(t(0), 10);
        assert_eq!(clock.due_at(), t(10));
        assert_eq!(clock.at_risk_at(), t(8));
        let s = |now| clock.status(Status::InProgress, None, now);
        assert_eq!(s(t(7)), SlaStatus::Pending);
        assert_eq!(s(t(8)), SlaStatus::AtRisk);
        assert_eq!(s(t(10)), SlaStatus::AtRisk);
        assert_eq!(s(t(11)), SlaStatus::Breached);
        assert_eq!(
            clock.status(Status::Completed, Some(t(10)), t(50)),
            SlaStatus::OnTime
        );
        assert_eq!(
            clock.status(Status::Completed, Some(t(11)), t(50)),
            SlaStatus::Breached
        );
    }

    #[test]
    fn hold_time_does_not_count() {
        let mut clock = SlaClock::new(t(0), 10);
        clock.stop(t(2));
        // On hold the clock stands still: days later it is still pending.
        assert_eq!(
            clock.status(Status::OnHold, None, t(100)),
            SlaStatus::Pending
        );
        clock.resume(t(5));
        assert_eq!(clock.paused_secs, 3 * 3600);
        assert_eq!(clock.due_at(), t(13));
        assert_eq!(clock.at_risk_at(), t(11));
        // A priority change keeps the hold already served.
        clock.sla_hours = 4;
        assert_eq!(clock.due_at(), t(7));
        assert_eq!(
            clock.status(Status::InProgress, None, t(8)),
            SlaStatus::Breached
        );
    }

    #[test]
    fn cancelled_tickets_keep_their_verdict() {
        let mut clock = SlaClock::new(t(0), 4);
        clock.stop(t(1));
        assert_eq!(
            clock.status(Status::Cancelled, None, t(9)),
            SlaStatus::Pending
        );
        let mut late = SlaClock::new(t(0), 4);
        late.stop(t(5));
        assert_eq!(
            late.status(Status::Cancelled, None, t(9)),
            SlaStatus::Breached
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(format_number(1), "CTT-000001");
        assert_eq!(format_number(1_234_567), "CTT-1234567");
        assert_eq!(parse_number("CTT-000042"), Some(42));
        assert_eq!(parse_number("CTT-"), None);
        assert_eq!(parse_number("CTT-12a"), None);
        assert_eq!(parse_number("0190a0e0-0000"), None);
    }

    #[test]
    fn tags_are_cleaned() {
        let tags = [" fibre ", "", "fibre", "urgent"].map(String::from);
        assert_eq!(clean_tags(&tags), ["fibre", "urgent"]);
    }
}
