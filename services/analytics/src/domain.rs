//! Facts (the newest known state of each ticket), how an incoming state merges with the stored
//! one, what a fact adds to the rollups, date buckets and the resource plan. No I/O.
//!
//! Rollups are always the sum of the contributions of the current facts: an event retracts the
//! old fact's contributions and adds the new fact's. That makes replays harmless (the same
//! state contributes the same), lets late events land in the day they describe (buckets come
//! from the ticket's own timestamps, never from arrival time) and lets a rebuild from a
//! snapshot produce exactly what the events produced.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::schema::ticket_facts;

pub const COMPLETED: &str = "COMPLETED";
pub const CANCELLED: &str = "CANCELLED";
pub const URGENT: &str = "URGENT";
/// Categories whose tickets need fibre.
pub const FIBRE_CATEGORIES: [&str; 2] = ["FIBER_INSTALLATION", "REPAIR"];
/// Ticket categories and priorities known to the forecast and the filters.
pub const CATEGORIES: [&str; 5] = [
    "FIBER_INSTALLATION",
    "MAINTENANCE",
    "REPAIR",
    "INSPECTION",
    "EMERGENCY",
];

/// The newest known state of one ticket.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = ticket_facts)]
pub struct Fact {
    pub tenant_id: String,
    pub ticket_id: String,
    pub number: String,
    pub category: String,
    pub priority: String,
    pub status: String,
    /// Empty when the ticket has no zone.
    pub zone: String,
    /// Empty when the ticket has no team.
    pub team_id: String,
    pub created_at: NaiveDateTime,
    pub created_day: String,
    pub due_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
    pub first_assigned_at: Option<NaiveDateTime>,
    pub breached: bool,
    pub deleted: bool,
    pub version: i64,
}

impl Fact {
    /// Whether the ticket is still to be worked on.
    pub fn is_open(&self) -> bool {
        !self.deleted && self.status != COMPLETED && self.status != CANCELLED
    }

    /// What this fact adds to the rollups: (when, counters). Deleted tickets add nothing.
    pub fn contributions(&self) -> Vec<(NaiveDateTime, Counters)> {
        if self.deleted {
            return Vec::new();
        }
        let mut out = vec![(
            self.created_at,
            Counters {
                created: 1,
                ..Counters::default()
            },
        )];
        if self.status == COMPLETED
            && let Some(done) = self.completed_at
        {
            out.push((
                done,
                Counters {
                    completed: 1,
                    completed_in_sla: i64::from(done <= self.due_at),
                    completion_secs: (done - self.created_at).num_seconds().max(0),
                    ..Counters::default()
                },
            ));
        }
        if self.breached {
            out.push((
                self.due_at,
                Counters {
                    breached: 1,
                    ..Counters::default()
                },
            ));
        }
        if let Some(at) = self.first_assigned_at {
            out.push((
                at,
                Counters {
                    assigned: 1,
                    assign_secs: (at - self.created_at).num_seconds().max(0),
                    ..Counters::default()
                },
            ));
        }
        out
    }
}

/// Merges an incoming state of a ticket into the stored one; `None` when nothing changes.
///
/// The higher version wins. A breach, once seen, stays while the due time is the same (the
/// breach event carries the version of the last change). The first assignment is the earliest
/// one seen, whichever order the events came in.
pub fn merge(stored: Option<&Fact>, incoming: Fact) -> Option<Fact> {
    let Some(stored) = stored else {
        return Some(incoming);
    };
    let (mut winner, loser) = if incoming.version >= stored.version {
        (incoming, stored.clone())
    } else {
        (stored.clone(), incoming)
    };
    winner.breached |= loser.breached && loser.due_at == winner.due_at;
    winner.first_assigned_at = match (winner.first_assigned_at, loser.first_assigned_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (winner != *stored).then_some(winner)
}

/// Additive measures of a rollup cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub created: i64,
    pub completed: i64,
    pub completed_in_sla: i64,
    pub completion_secs: i64,
    pub breached: i64,
    pub assigned: i64,
    pub assign_secs: i64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters, sign: i64) {
        self.created += sign * other.created;
        self.completed += sign * other.completed;
        self.completed_in_sla += sign * other.completed_in_sla;
        self.completion_secs += sign * other.completion_secs;
        self.breached += sign * other.breached;
        self.assigned += sign * other.assigned;
        self.assign_secs += sign * other.assign_secs;
    }
}

/// The day bucket of a time: `YYYY-MM-DD`.
pub fn day_bucket(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The hour bucket of a time: `YYYY-MM-DDTHH`.
pub fn hour_bucket(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

/// The start of the hour of `t`.
pub fn hour_start(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(t.hour(), 0, 0).unwrap_or(t)
}

/// How far back hourly rollups are kept.
pub const HOURLY_WINDOW: Duration = Duration::hours(48);

/// The Monday that starts the ISO week of `day`.
pub fn week_start(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// How a tenant turns forecast work into resources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Factors {
    /// Teams = max(1, ceil((active + urgent) / team_divisor)).
    pub team_divisor: f64,
    /// Hours = active x hours_per_ticket.
    pub hours_per_ticket: f64,
    /// Vehicles = ceil(active / tickets_per_vehicle).
    pub tickets_per_vehicle: f64,
    /// Fibre metres = fibre tickets x fibre_metres_per_ticket.
    pub fibre_metres_per_ticket: f64,
}

impl Default for Factors {
    fn default() -> Self {
        Self {
            team_divisor: 2.0,
            hours_per_ticket: 4.0,
            tickets_per_vehicle: 3.0,
            fibre_metres_per_ticket: 100.0,
        }
    }
}

impl Factors {
    /// Names of factors that are not positive finite numbers.
    pub fn invalid(&self) -> Vec<&'static str> {
        [
            ("team_divisor", self.team_divisor),
            ("hours_per_ticket", self.hours_per_ticket),
            ("tickets_per_vehicle", self.tickets_per_vehicle),
            ("fibre_metres_per_ticket", self.fibre_metres_per_ticket),
        ]
        .into_iter()
        .filter(|(_, v)| !(v.is_finite() && *v > 0.0))
        .map(|(k, _)| k)
        .collect()
    }
}

/// Resources needed for `active` tickets of which `urgent` are urgent and `fibre` need fibre.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub teams: i64,
    pub hours: f64,
    pub vehicles: i64,
    pub fibre_metres: f64,
}

pub fn plan(active: f64, urgent: f64, fibre: f64, f: &Factors) -> Plan {
    Plan {
        teams: (((active + urgent) / f.team_divisor).ceil() as i64).max(1),
        hours: active * f.hours_per_ticket,
        vehicles: (active / f.tickets_per_vehicle).ceil() as i64,
        fibre_metres: fibre * f.fibre_metres_per_ticket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, day)
            .unwrap()
            .and_hms_opt(hour, 0, 0)
            .unwrap()
    }

    fn fact(version: i64) -> Fact {
        Fact {
            tenant_id: "t".into(),
            ticket_id: "x".into(),
            number: "CTT-000001".into(),
            category: "REPAIR".into(),
            priority: "HIGH".into(),
            status: "OPEN".into(),
            zone: "North".into(),
            team_id: String::new(),
            created_at: at(2, 9),
            created_day: "2026-03-02".into(),
            due_at: at(2, 17),
            completed_at: None,
            first_assigned_at: None,
            breached: false,
            deleted: false,
            version,
        }
    }

    #[test]
    fn newer_versions_win_and_older_ones_change_nothing() {
        let stored = fact(3);
        let mut older = fact(2);
        older.status = "IN_PROGRESS".into();
        assert_eq!(merge(Some(&stored), older), None);
        assert_eq!(merge(Some(&stored), stored.clone()), None, "a replay");
        let mut newer = fact(4);
        newer.status = COMPLETED.into();
        assert_eq!(merge(Some(&stored), newer.clone()), Some(newer));
    }

    #[test]
    fn a_breach_and_the_first_assignment_survive_any_order() {
        let mut breach = fact(3);
        breach.breached = true;
        let mut assigned_late = fact(2);
        assigned_late.first_assigned_at = Some(at(2, 10));
        let merged = merge(Some(&breach), assigned_late).unwrap();
        assert!(merged.breached);
        assert_eq!(merged.first_assigned_at, Some(at(2, 10)));
        // A newer change that moved the due time clears the breach.
        let mut moved = fact(4);
        moved.due_at = at(3, 9);
        assert!(!merge(Some(&merged), moved).unwrap().breached);
    }

    #[test]
    fn contributions_land_on_the_tickets_own_times() {
        let mut f = fact(1);
        f.status = COMPLETED.into();
        f.completed_at = Some(at(3, 9));
        f.breached = true;
        f.first_assigned_at = Some(at(2, 11));
        let c = f.contributions();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].0, at(2, 9));
        assert_eq!(c[1].0, at(3, 9));
        assert_eq!(c[1].1.completed_in_sla, 0, "completed after the due time");
        assert_eq!(c[1].1.completion_secs, 24 * 3600);
        assert_eq!(c[2].0, at(2, 17), "a breach counts on its due day");
        assert_eq!(c[3].1.assign_secs, 2 * 3600);
        f.deleted = true;
        assert!(f.contributions().is_empty());
    }

    #[test]
    fn weeks_start_on_monday() {
        let sunday = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(
            week_start(sunday),
            NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
        );
        assert_eq!(hour_bucket(at(2, 9)), "2026-03-02T09");
    }

    #[test]
    fn resource_plan_follows_the_rules() {
        let p = plan(5.0, 2.0, 3.0, &Factors::default());
        assert_eq!(p.teams, 4, "ceil((5 + 2) / 2)");
        assert_eq!(p.hours, 20.0);
        assert_eq!(p.vehicles, 2, "ceil(5 / 3)");
        assert_eq!(p.fibre_metres, 300.0);
        assert_eq!(plan(0.0, 0.0, 0.0, &Factors::default()).teams, 1);
        let bad = Factors {
            team_divisor: 0.0,
            ..Factors::default()
        };
        assert_eq!(bad.invalid(), ["team_divisor"]);
    }
}
