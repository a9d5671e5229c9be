//! The query language of `POST /analytics/query`, in the style of Plausible's Stats API:
//! metrics, a date range, dimensions, filters (is, is_not, contains; and, or), order and
//! limit. `parse` checks a JSON body and names every offending part; `run` answers it.
//!
//! Metrics come from two places. Flow metrics (`created`, `completed`, `breached`,
//! `sla_compliance`, `mean_time_to_complete`, `assigned`, `mean_time_to_assign`) are sums of
//! the daily rollups over the days in range, each counted on the day it happened. Stock
//! metrics (`tickets`, `open`, `urgent_open`, `overdue`) count the current state of tickets
//! created in range; only they can be broken down or filtered by `status`.

use chrono::NaiveDate;

pub mod parse;
pub mod run;

pub use parse::{parse, parse_range};
pub use run::{Row, run};

/// What can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Created,
    Completed,
    Breached,
    /// Completed within the SLA, as a percentage of completed.
    SlaCompliance,
    /// Hours from creation to completion, mean over completed.
    MeanTimeToComplete,
    /// Tickets assigned for the first time.
    Assigned,
    /// Hours from creation to the first assignment, mean over assigned.
    MeanTimeToAssign,
    Tickets,
    Open,
    UrgentOpen,
    Overdue,
}

impl Metric {
    pub const ALL: [(&'static str, Metric); 11] = [
        ("created", Metric::Created),
        ("completed", Metric::Completed),
        ("breached", Metric::Breached),
        ("sla_compliance", Metric::SlaCompliance),
        ("mean_time_to_complete", Metric::MeanTimeToComplete),
        ("assigned", Metric::Assigned),
        ("mean_time_to_assign", Metric::MeanTimeToAssign),
        ("tickets", Metric::Tickets),
        ("open", Metric::Open),
        ("urgent_open", Metric::UrgentOpen),
        ("overdue", Metric::Overdue),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether the metric is summed from rollups (otherwise counted over current facts).
    pub fn is_flow(self) -> bool {
        !matches!(
            self,
            Metric::Tickets | Metric::Open | Metric::UrgentOpen | Metric::Overdue
        )
    }
}

/// What results can be broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Day,
    Week,
    Zone,
    Team,
    Category,
    Priority,
    Status,
}

impl Dimension {
    pub const ALL: [(&'static str, Dimension); 7] = [
        ("time:day", Dimension::Day),
        ("time:week", Dimension::Week),
        ("zone", Dimension::Zone),
        ("team", Dimension::Team),
        ("category", Dimension::Category),
        ("priority", Dimension::Priority),
        ("status", Dimension::Status),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, d)| *d == self)
            .map_or("", |(n, _)| n)
    }

    pub fn is_time(self) -> bool {
        matches!(self, Dimension::Day | Dimension::Week)
    }
}

/// Inclusive days, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    All,
    Days(NaiveDate, NaiveDate),
}

/// A condition on dimensions (never on time; the date range does that).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Is(Dimension, Vec<String>),
    IsNot(Dimension, Vec<String>),
    /// Case-insensitive substring match against any of the values.
    Contains(Dimension, Vec<String>),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

/// Sort key: the n-th metric or dimension of the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Metric(usize),
    Dimension(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metrics: Vec<Metric>,
    pub range: Range,
    pub dimensions: Vec<Dimension>,
    pub filters: Vec<Filter>,
    pub order: Vec<(Key, bool)>,
    pub limit: usize,
    /// Another tenant (platform admins only; checked by the caller of `parse`).
    pub tenant_id: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 10_000;
