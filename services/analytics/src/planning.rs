//! Turns ticket history into the forecast report: one daily series per zone and category,
//! fitted and forecast (see `forecast`), and the resource plan per zone (see `domain::plan`).
//! No I/O; the rows come from the query engine.
//!
//! The plan counts as active work the tickets open now plus the forecast ones; urgent work is
//! the urgent tickets open now plus the forecast's expected urgent share (the zone's share of
//! urgent tickets in the history); fibre work is the open and forecast fibre-installation and
//! repair tickets.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use crate::{
    domain::{self, Factors, Plan},
    forecast,
    query::Row,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Point {
    pub date: String,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Series {
    pub zone: Option<String>,
    pub category: String,
    /// Expected tickets over the horizon, with the sums of the daily bounds.
    pub total: f64,
    pub total_lower: f64,
    pub total_upper: f64,
    pub points: Vec<Point>,
    /// Why there is no forecast (too little history), when there is none.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ZonePlan {
    pub zone: Option<String>,
    pub forecast_tickets: f64,
    pub open: i64,
    pub active: f64,
    pub urgent: f64,
    pub fibre_tickets: f64,
    #[serde(flatten)]
    pub plan: Plan,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForecastReport {
    pub model: &'static str,
    pub horizon_days: usize,
    pub level: f64,
    /// First and last forecast day.
    pub from: String,
    pub to: String,
    /// Days of history the models were fitted on.
    pub history_days: usize,
    pub series: Vec<Series>,
    pub plan: Vec<ZonePlan>,
    pub factors: Factors,
}

/// What the report is made from: query rows as the engine returns them.
pub struct Inputs {
    /// `created` by (time:day, zone, category) over the history, up to yesterday.
    pub history: Vec<Row>,
    /// `open`, `urgent_open` by (zone, category), now.
    pub open: Vec<Row>,
    /// `created` by (zone, priority) over the history.
    pub priorities: Vec<Row>,
    pub factors: Factors,
    /// The first forecast day.
    pub today: NaiveDate,
    pub horizon: usize,
    pub level: f64,
}

/// Daily counts per (zone, category), oldest first.
type DailySeries = BTreeMap<(Option<String>, String), Vec<f64>>;

fn day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn series_of(history: &[Row], yesterday: NaiveDate) -> (usize, DailySeries) {
    let first = history
        .iter()
        .filter_map(|r| r.dimensions[0].as_deref().and_then(day))
        .min();
    let days = first.map_or(0, |f| (yesterday - f).num_days() as usize + 1);
    let mut series = DailySeries::new();
    let Some(first) = first else {
        return (0, series);
    };
    for r in history {
        let (Some(d), Some(category)) =
            (r.dimensions[0].as_deref().and_then(day), &r.dimensions[2])
        else {
            continue;
        };
        let s = series
            .entry((r.dimensions[1].clone(), category.clone()))
            .or_insert_with(|| vec![0.0; days]);
        s[(d - first).num_days() as usize] += r.metrics[0].as_f64().unwrap_or(0.0);
    }
    (days, series)
}

/// Fits every series (CPU-bound: run it off the async runtime) and derives the plan.
pub fn report(inputs: Inputs) -> ForecastReport {
    let Inputs {
        history,
        open,
        priorities,
        factors,
        today,
        horizon,
        level,
    } = inputs;
    let (days, series) = series_of(&history, today - Duration::days(1));
    let blank = |zone: Option<String>| ZonePlan {
        zone,
        forecast_tickets: 0.0,
        open: 0,
        active: 0.0,
        urgent: 0.0,
        fibre_tickets: 0.0,
        plan: domain::plan(0.0, 0.0, 0.0, &factors),
    };
    let mut out = Vec::new();
    let mut zones: BTreeMap<Option<String>, ZonePlan> = BTreeMap::new();
    for ((zone, category), values) in series {
        let plan = zones
            .entry(zone.clone())
            .or_insert_with(|| blank(zone.clone()));
        match forecast::daily(&values, horizon, level) {
            Ok(p) => {
                let total: f64 = p.point.iter().sum();
                plan.forecast_tickets += total;
                if domain::FIBRE_CATEGORIES.contains(&category.as_str()) {
                    plan.fibre_tickets += total;
                }
                out.push(Series {
                    zone,
                    category,
                    total,
                    total_lower: p.lower.iter().sum(),
                    total_upper: p.upper.iter().sum(),
                    points: (0..horizon)
                        .map(|i| Point {
                            date: (today + Duration::days(i as i64)).to_string(),
                            value: p.point[i],
                            lower: p.lower[i],
                            upper: p.upper[i],
                        })
                        .collect(),
                    note: None,
                });
            }
            Err(note) => out.push(Series {
                zone,
                category,
                total: 0.0,
                total_lower: 0.0,
                total_upper: 0.0,
                points: Vec::new(),
                note: Some(note),
            }),
        }
    }
    // Each zone's share of urgent tickets in the history.
    let mut share: BTreeMap<Option<String>, (f64, f64)> = BTreeMap::new();
    for r in &priorities {
        let n = r.metrics[0].as_f64().unwrap_or(0.0);
        let s = share.entry(r.dimensions[0].clone()).or_default();
        s.1 += n;
        if r.dimensions[1].as_deref() == Some(domain::URGENT) {
            s.0 += n;
        }
    }
    for r in &open {
        let plan = zones
            .entry(r.dimensions[0].clone())
            .or_insert_with(|| blank(r.dimensions[0].clone()));
        let count = r.metrics[0].as_i64().unwrap_or(0);
        plan.open += count;
        plan.urgent += r.metrics[1].as_f64().unwrap_or(0.0);
        if r.dimensions[1]
            .as_deref()
            .is_some_and(|c| domain::FIBRE_CATEGORIES.contains(&c))
        {
            plan.fibre_tickets += count as f64;
        }
    }
    let plan = zones
        .into_values()
        .map(|mut z| {
            let (urgent, all) = share.get(&z.zone).copied().unwrap_or_default();
            if all > 0.0 {
                z.urgent += z.forecast_tickets * urgent / all;
            }
            z.active = z.open as f64 + z.forecast_tickets;
            z.plan = domain::plan(z.active, z.urgent, z.fibre_tickets, &factors);
            z
        })
        .collect();
    ForecastReport {
        model: forecast::MODEL,
        horizon_days: horizon,
        level,
        from: today.to_string(),
        to: (today + Duration::days(horizon as i64 - 1)).to_string(),
        history_days: days,
        series: out,
        plan,
        factors,
    }
}
