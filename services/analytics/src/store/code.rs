//! Code-exec's facts (one row per finished submission and per scored exercise attempt) and the
//! figures read from them: runs and acceptance per language, attempts and their pass rate.

use chrono::NaiveDateTime;
use diesel::{
    dsl::{avg, count_star, sum},
    prelude::*,
};

use agora_shared::{AppError, AppResult, db::DbConnection};

use crate::schema::code_runs;

pub const SUBMISSION: &str = "submission";
pub const ATTEMPT: &str = "attempt";

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = code_runs)]
pub struct CodeRun {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub language_id: i32,
    pub language: String,
    pub status_id: i32,
    pub accepted: bool,
    pub cpu_time: f64,
    pub exercise_id: String,
    pub score: i32,
    pub max_score: i32,
    pub finished_at: NaiveDateTime,
}

/// Keeps the run once: a replayed event changes nothing. An id already kept for another
/// tenant is refused.
pub fn apply(conn: &mut DbConnection, run: &CodeRun) -> AppResult<()> {
    let stored: Option<String> = code_runs::table
        .find(&run.id)
        .select(code_runs::tenant_id)
        .first(conn)
        .optional()?;
    match stored {
        None => {
            diesel::insert_into(code_runs::table)
                .values(run)
                .execute(conn)?;
            Ok(())
        }
        Some(tenant) if tenant != run.tenant_id => {
            Err(AppError::invalid("tenant_id", "the id is another tenant's"))
        }
        Some(_) => Ok(()),
    }
}

/// One language's submissions in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageRuns {
    pub language_id: i32,
    pub language: String,
    pub runs: i64,
    pub accepted: i64,
    pub mean_cpu_time: Option<f64>,
}

/// Attempts in a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempts {
    pub attempts: i64,
    pub passed: i64,
    pub score: i64,
    pub max_score: i64,
}

type Window = Option<(NaiveDateTime, NaiveDateTime)>;

#[diesel::dsl::auto_type]
fn of(tenant_id: String, kind: &'static str) -> _ {
    code_runs::tenant_id
        .eq(tenant_id)
        .and(code_runs::kind.eq(kind))
}

#[diesel::dsl::auto_type]
fn within(from: NaiveDateTime, to: NaiveDateTime) -> _ {
    code_runs::finished_at
        .ge(from)
        .and(code_runs::finished_at.lt(to))
}

/// Submissions per language (by language id and the name it last had), in `window`.
pub fn languages(
    conn: &mut DbConnection,
    tenant_id: &str,
    window: Window,
) -> AppResult<Vec<LanguageRuns>> {
    let mut all = code_runs::table
        .filter(of(tenant_id.to_owned(), SUBMISSION))
        .group_by(code_runs::language_id)
        .select((
            code_runs::language_id,
            diesel::dsl::max(code_runs::language),
            count_star(),
            avg(code_runs::cpu_time),
        ))
        .order(code_runs::language_id)
        .into_boxed();
    let mut accepted = code_runs::table
        .filter(of(tenant_id.to_owned(), SUBMISSION))
        .filter(code_runs::accepted.eq(true))
        .group_by(code_runs::language_id)
        .select((code_runs::language_id, count_star()))
        .into_boxed();
    if let Some((from, to)) = window {
        all = all.filter(within(from, to));
        accepted = accepted.filter(within(from, to));
    }
    let all: Vec<(i32, Option<String>, i64, Option<f64>)> = all.load(conn)?;
    let accepted: Vec<(i32, i64)> = accepted.load(conn)?;
    Ok(all
        .into_iter()
        .map(|(language_id, language, runs, mean)| LanguageRuns {
            language_id,
            language: language.unwrap_or_default(),
            runs,
            accepted: accepted
                .iter()
                .find(|(id, _)| *id == language_id)
                .map_or(0, |(_, n)| *n),
            mean_cpu_time: mean,
        })
        .collect())
}

/// Exercise attempts in `window`: how many, how many passed, and their scores summed.
pub fn attempts(conn: &mut DbConnection, tenant_id: &str, window: Window) -> AppResult<Attempts> {
    let mut all = code_runs::table
        .filter(of(tenant_id.to_owned(), ATTEMPT))
        .select((
            count_star(),
            sum(code_runs::score),
            sum(code_runs::max_score),
        ))
        .into_boxed();
    let mut passed = code_runs::table
        .filter(of(tenant_id.to_owned(), ATTEMPT))
        .filter(code_runs::accepted.eq(true))
        .select(count_star())
        .into_boxed();
    if let Some((from, to)) = window {
        all = all.filter(within(from, to));
        passed = passed.filter(within(from, to));
    }
    let (attempts, score, max_score): (i64, Option<i64>, Option<i64>) = all.first(conn)?;
    Ok(Attempts {
        attempts,
        passed: passed.first(conn)?,
        score: score.unwrap_or(0),
        max_score: max_score.unwrap_or(0),
    })
}
