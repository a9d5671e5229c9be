//! Exercises for the tutor: test cases (stdin, expected output, hidden or visible, points) under
//! an id the tenant chooses, and attempts at them. An attempt queues one submission per case,
//! run by the same workers, quotas and fairness as any submission; its cases' submissions are
//! never shown through Judge0's API. When the last case has its verdict (`settle`, in the
//! transaction that stores it) the attempt keeps each case's verdict, without the outputs of
//! hidden cases, its score and an event, and the cases' submissions are deleted.

pub mod http;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use agora_proto::events::v1 as ev;
use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, rfc3339},
};

use crate::{
    events,
    schema::{attempts, exercises, submissions},
    status::Status,
};

/// Cases in one exercise: an attempt at the largest still fits the default queue quota (100).
pub const MAX_CASES: usize = 50;

/// Bytes kept of a visible case's stdout, stderr and compiler output in an attempt's result
/// (counted as JSON writes them, escapes and all).
pub const SHOWN_OUTPUT_BYTES: usize = 16 * 1024;

/// Bytes of input and expected output, all cases together, in one exercise.
pub const MAX_CASE_BYTES: usize = 2 * 1024 * 1024;

/// Exercises one tenant may keep.
pub const MAX_EXERCISES: i64 = 1000;

/// The key of the lock that a tenant's exercise writes and attempts take turns on (see
/// `store::lock`): an attempt is queued only at the version it was read at, an exercise is
/// never deleted under an attempt being queued, and two replaces make two versions.
pub fn lock_key(tenant_id: &str) -> String {
    format!("exercises:{tenant_id}")
}

fn corrupt(what: &str, err: serde_json::Error) -> AppError {
    AppError::Internal(anyhow::anyhow!("a stored {what} cannot be read: {err}"))
}

/// What callers need to manage a tenant's exercises (tenant admins have it anyway).
pub const MANAGE: &str = "code-exec:manage";

/// One test case of an exercise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub stdin: String,
    pub expected_output: String,
    pub hidden: bool,
    pub points: i32,
}

/// Limits every case of an exercise runs under (Judge0's units; the defaults where absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExerciseLimits {
    pub cpu_time_limit: Option<f64>,
    pub wall_time_limit: Option<f64>,
    pub memory_limit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = exercises)]
pub struct ExerciseRow {
    pub tenant_id: String,
    pub id: String,
    pub title: String,
    /// JSON array of language ids; empty: any offered language.
    pub language_ids: String,
    /// JSON array of `Case`.
    pub cases: String,
    /// JSON `ExerciseLimits`.
    pub limits: String,
    pub case_count: i32,
    pub max_score: i32,
    pub version: i32,
    pub updated_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ExerciseRow {
    pub fn cases(&self) -> AppResult<Vec<Case>> {
        serde_json::from_str(&self.cases).map_err(|e| corrupt("exercise's cases", e))
    }

    /// The exercise without its cases.
    pub fn summary(&self) -> ExerciseSummary {
        ExerciseSummary {
            id: self.id.clone(),
            title: self.title.clone(),
            language_ids: self.language_ids.clone(),
            limits: self.limits.clone(),
            case_count: self.case_count,
            max_score: self.max_score,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// An exercise without its cases (what lists show).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = exercises)]
pub struct ExerciseSummary {
    pub id: String,
    pub title: String,
    pub language_ids: String,
    pub limits: String,
    pub case_count: i32,
    pub max_score: i32,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ExerciseSummary {
    pub fn language_ids(&self) -> AppResult<Vec<u32>> {
        serde_json::from_str(&self.language_ids).map_err(|e| corrupt("exercise's languages", e))
    }
    pub fn limits(&self) -> AppResult<ExerciseLimits> {
        serde_json::from_str(&self.limits).map_err(|e| corrupt("exercise's limits", e))
    }
}

/// A case's verdict as an attempt keeps it. Outputs, times and the message are kept for
/// visible cases only: a hidden case's are never stored (a program could print its input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseVerdict {
    pub status_id: i32,
    pub time: Option<f64>,
    pub memory: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub message: Option<String>,
}

/// A case of an attempt: its weight and, once run, its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptCase {
    pub hidden: bool,
    pub points: i32,
    pub verdict: Option<CaseVerdict>,
}

/// What the `attempts.cases` column holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptResults {
    pub cases: Vec<AttemptCase>,
    /// The compiler's message when the program did not compile (the same for every case).
    pub compile_output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = attempts)]
pub struct AttemptRow {
    pub id: String,
    pub tenant_id: String,
    pub exercise_id: String,
    pub exercise_version: i32,
    pub user_id: String,
    pub language_id: i32,
    /// JSON `AttemptResults`.
    pub cases: String,
    pub score: Option<i32>,
    pub max_score: i32,
    pub passed: Option<bool>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

impl AttemptRow {
    pub fn results(&self) -> AppResult<AttemptResults> {
        serde_json::from_str(&self.cases).map_err(|e| corrupt("attempt", e))
    }

    /// The attempt without its cases.
    pub fn summary(&self) -> AttemptSummary {
        AttemptSummary {
            id: self.id.clone(),
            exercise_id: self.exercise_id.clone(),
            exercise_version: self.exercise_version,
            user_id: self.user_id.clone(),
            language_id: self.language_id,
            score: self.score,
            max_score: self.max_score,
            passed: self.passed,
            created_at: self.created_at,
            finished_at: self.finished_at,
        }
    }
}

/// An attempt without its cases (what lists show).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = attempts)]
pub struct AttemptSummary {
    pub id: String,
    pub exercise_id: String,
    pub exercise_version: i32,
    pub user_id: String,
    pub language_id: i32,
    pub score: Option<i32>,
    pub max_score: i32,
    pub passed: Option<bool>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<ExerciseRow>> {
    Ok(exercises::table
        .find((tenant_id, id))
        .select(ExerciseRow::as_select())
        .first(conn)
        .optional()?)
}

/// The tenant's exercises by id, without their cases, at most `limit` after `after`.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ExerciseSummary>> {
    let mut query = exercises::table
        .filter(exercises::tenant_id.eq(tenant_id))
        .select(ExerciseSummary::as_select())
        .order(exercises::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(exercises::id.gt(after.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// The exercise's version, if there is such an exercise.
pub fn version_of(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<i32>> {
    Ok(exercises::table
        .find((tenant_id, id))
        .select(exercises::version)
        .first(conn)
        .optional()?)
}

/// Creates the exercise or replaces it (a new version); answers whether it was created. Run
/// under `lock_key(tenant)`.
pub fn put(conn: &mut DbConnection, row: &ExerciseRow) -> AppResult<(ExerciseRow, bool)> {
    match get(conn, &row.tenant_id, &row.id)? {
        None => {
            let kept: i64 = exercises::table
                .filter(exercises::tenant_id.eq(&row.tenant_id))
                .count()
                .get_result(conn)?;
            if kept >= MAX_EXERCISES {
                return Err(AppError::Conflict(format!(
                    "this tenant has {kept} exercises, the most it may keep; delete one first"
                ))
                .with_code("code_exec.too_many_exercises"));
            }
            diesel::insert_into(exercises::table)
                .values(row)
                .execute(conn)?;
            Ok((row.clone(), true))
        }
        Some(old) => {
            let new = ExerciseRow {
                version: old.version + 1,
                created_at: old.created_at,
                ..row.clone()
            };
            diesel::update(exercises::table.find((&row.tenant_id, &row.id)))
                .set(&new)
                .execute(conn)?;
            Ok((new, false))
        }
    }
}

/// Deletes the exercise, its attempts and their cases but those running (which finish and are
/// then deleted by `settle`). Answers whether there was such an exercise. Run under
/// `lock_key(tenant)`.
pub fn delete(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<bool> {
    let deleted = diesel::delete(exercises::table.find((tenant_id, id))).execute(conn)?;
    let ids: Vec<String> = attempts::table
        .filter(attempts::tenant_id.eq(tenant_id))
        .filter(attempts::exercise_id.eq(id))
        .select(attempts::id)
        .load(conn)?;
    for chunk in ids.chunks(500) {
        diesel::delete(
            submissions::table
                .filter(submissions::attempt_id.eq_any(chunk))
                .filter(submissions::status_id.ne(Status::Processing.id() as i32)),
        )
        .execute(conn)?;
        diesel::delete(attempts::table.filter(attempts::id.eq_any(chunk))).execute(conn)?;
    }
    Ok(deleted == 1)
}

pub fn insert_attempt(conn: &mut DbConnection, row: &AttemptRow) -> AppResult<()> {
    diesel::insert_into(attempts::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_attempt(
    conn: &mut DbConnection,
    tenant_id: &str,
    exercise_id: &str,
    id: &str,
) -> AppResult<Option<AttemptRow>> {
    Ok(attempts::table
        .filter(attempts::id.eq(id))
        .filter(attempts::tenant_id.eq(tenant_id))
        .filter(attempts::exercise_id.eq(exercise_id))
        .select(AttemptRow::as_select())
        .first(conn)
        .optional()?)
}

/// Attempts at an exercise without their cases, newest first: `user_id`'s, or everyone's when
/// `None`.
pub fn list_attempts(
    conn: &mut DbConnection,
    tenant_id: &str,
    exercise_id: &str,
    user_id: Option<&str>,
    limit: i64,
) -> AppResult<Vec<AttemptSummary>> {
    let mut query = attempts::table
        .filter(attempts::tenant_id.eq(tenant_id))
        .filter(attempts::exercise_id.eq(exercise_id))
        .select(AttemptSummary::as_select())
        .order((attempts::created_at.desc(), attempts::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(user) = user_id {
        query = query.filter(attempts::user_id.eq(user.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Whether any case of the attempt has left the queue.
pub fn started(conn: &mut DbConnection, attempt_id: &str) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        submissions::table
            .filter(submissions::attempt_id.eq(attempt_id))
            .filter(submissions::status_id.ne(Status::InQueue.id() as i32)),
    ))
    .get_result(conn)?)
}

/// Whether the attempt has its score (what `wait=true` polls).
pub fn attempt_finished(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<bool> {
    Ok(attempts::table
        .filter(attempts::id.eq(id))
        .filter(attempts::tenant_id.eq(tenant_id))
        .select(attempts::finished_at)
        .first::<Option<NaiveDateTime>>(conn)
        .optional()?
        .flatten()
        .is_some())
}

/// Deletes attempts finished before `before` (at most `limit`); answers how many went.
pub fn forget_attempts(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> AppResult<usize> {
    let old: Vec<String> = attempts::table
        .filter(attempts::finished_at.lt(before))
        .select(attempts::id)
        .limit(limit)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(attempts::table.filter(attempts::id.eq_any(&old))).execute(conn)?)
}

/// Text to show of a program's output: as much as fits in `SHOWN_OUTPUT_BYTES` once written
/// as JSON (a control character costs six bytes there).
fn shown(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| {
        let text = String::from_utf8_lossy(&b);
        let mut size = 0;
        let mut end = 0;
        for (at, c) in text.char_indices() {
            size += match c {
                '"' | '\\' | '\n' | '\r' | '\t' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            };
            if size > SHOWN_OUTPUT_BYTES {
                break;
            }
            end = at + c.len_utf8();
        }
        text[..end].to_owned()
    })
}

diesel::define_sql_function! {
    /// The first `length` bytes of `bytes` from `start` (1-based), on both backends.
    fn substr(bytes: diesel::sql_types::Nullable<diesel::sql_types::Binary>, start: diesel::sql_types::Integer, length: diesel::sql_types::Integer) -> diesel::sql_types::Nullable<diesel::sql_types::Binary>;
}

/// A case's columns as `settle` reads them (never the source or the input).
type CaseColumns = (
    Option<i32>,
    i32,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
    Option<f64>,
    Option<i64>,
);

/// Called in the transaction that stored a verdict of one of `attempt_id`'s cases, after
/// `store::lock(conn, "attempt:<id>")` (so that the last two cases, finishing at once on two
/// replicas, cannot both see the other still running): when no case is left to run, keeps the
/// verdicts and the score on the attempt, deletes its cases' submissions and publishes
/// `attempt.finished`.
pub fn settle(
    conn: &mut DbConnection,
    attempt_id: &str,
    language: &str,
    now: NaiveDateTime,
) -> AppResult<()> {
    let pending: i64 = submissions::table
        .filter(submissions::attempt_id.eq(attempt_id))
        .filter(submissions::status_id.le(Status::Processing.id() as i32))
        .count()
        .get_result(conn)?;
    if pending > 0 {
        return Ok(());
    }
    let attempt = attempts::table
        .find(attempt_id)
        .select(AttemptRow::as_select())
        .first(conn)
        .optional()?;
    let cases = submissions::table.filter(submissions::attempt_id.eq(attempt_id));
    let Some(attempt) = attempt.filter(|a| a.finished_at.is_none()) else {
        // Its exercise was deleted meanwhile: nothing to keep.
        diesel::delete(cases).execute(conn)?;
        return Ok(());
    };
    // Outputs are cut in the store: an attempt's fifty cases read at most what they show.
    let cut = SHOWN_OUTPUT_BYTES as i32;
    let rows: Vec<CaseColumns> = cases
        .select((
            submissions::case_index,
            submissions::status_id,
            substr(submissions::stdout, 1, cut),
            substr(submissions::stderr, 1, cut),
            substr(submissions::compile_output, 1, cut),
            submissions::message,
            submissions::time,
            submissions::memory,
        ))
        .load(conn)?;
    let mut results = attempt.results()?;
    for (index, status_id, stdout, stderr, compile_output, message, time, memory) in rows {
        let Some(case) = index.and_then(|i| results.cases.get_mut(i as usize)) else {
            continue;
        };
        if status_id == Status::CompilationError.id() as i32 && results.compile_output.is_none() {
            results.compile_output = shown(compile_output);
        }
        case.verdict = Some(if case.hidden {
            CaseVerdict {
                status_id,
                time: None,
                memory: None,
                stdout: None,
                stderr: None,
                message: None,
            }
        } else {
            CaseVerdict {
                status_id,
                time,
                memory,
                stdout: shown(stdout),
                stderr: shown(stderr),
                message,
            }
        });
    }
    let accepted = Status::Accepted.id() as i32;
    let status_ids: Vec<i32> = results
        .cases
        .iter()
        .map(|c| {
            c.verdict
                .as_ref()
                .map_or(Status::InternalError.id() as i32, |v| v.status_id)
        })
        .collect();
    let score: i32 = results
        .cases
        .iter()
        .zip(&status_ids)
        .filter(|(_, s)| **s == accepted)
        .map(|(c, _)| c.points)
        .sum();
    let accepted_cases = status_ids.iter().filter(|s| **s == accepted).count() as i32;
    let passed = !status_ids.is_empty() && accepted_cases as usize == status_ids.len();
    let scored = diesel::update(
        attempts::table
            .find(attempt_id)
            .filter(attempts::finished_at.is_null()),
    )
    .set((
        attempts::cases.eq(serde_json::to_string(&results).unwrap_or_default()),
        attempts::score.eq(Some(score)),
        attempts::passed.eq(Some(passed)),
        attempts::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    diesel::delete(cases).execute(conn)?;
    if scored != 1 {
        // Deleted meanwhile with its exercise.
        return Ok(());
    }
    events::attempt_finished(
        conn,
        &ev::AttemptFinished {
            attempt_id: attempt.id.clone(),
            tenant_id: attempt.tenant_id.clone(),
            user_id: attempt.user_id.clone(),
            exercise_id: attempt.exercise_id.clone(),
            exercise_version: attempt.exercise_version,
            language_id: attempt.language_id,
            language: language.to_owned(),
            score,
            max_score: attempt.max_score,
            passed,
            cases: status_ids.len() as i32,
            accepted_cases,
            case_status_ids: status_ids,
            created_at: rfc3339(attempt.created_at),
            finished_at: rfc3339(now),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_output_fits_its_bound_once_written_as_json() {
        for (byte, escaped) in [(b'a', 1), (b'"', 2), (0x01, 6)] {
            let text = shown(Some(vec![byte; 100_000])).unwrap();
            let json = serde_json::to_string(&text).unwrap();
            assert!(
                json.len() <= SHOWN_OUTPUT_BYTES + 2,
                "{byte}: {}",
                json.len()
            );
            assert_eq!(text.len(), SHOWN_OUTPUT_BYTES / escaped);
        }
        // Cut on a character, never inside one; bytes that are not UTF-8 become U+FFFD.
        let text = shown(Some("é".repeat(20_000).into_bytes())).unwrap();
        assert!(text.chars().all(|c| c == 'é'));
        assert_eq!(shown(Some(vec![0xff])).unwrap(), "\u{fffd}");
        assert_eq!(shown(None), None);
    }
}
