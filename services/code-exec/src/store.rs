//! Submissions in the service's store.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use agora_shared::{AppResult, db::DbConnection};

use crate::{judge::Verdict, schema::submissions, status::Status};

/// A submission's limits and flags, as it asked for them (Judge0's units: seconds and KB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    pub max_file_size: u64,
    pub number_of_runs: u32,
    pub redirect_stderr_to_stdout: bool,
    /// Where the verdict is PUT once the submission has run (checked when submitted, and its
    /// host's addresses again at delivery).
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Whether the callback's texts are base64, as the submission's were.
    #[serde(default)]
    pub base64_encoded: bool,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = submissions)]
pub struct SubmissionRow {
    pub token: String,
    pub tenant_id: String,
    pub user_id: String,
    pub language_id: i32,
    pub source_code: Vec<u8>,
    pub stdin: Vec<u8>,
    pub expected_output: Option<Vec<u8>>,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub settings: String,
    pub status_id: i32,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub compile_output: Option<Vec<u8>>,
    pub message: Option<String>,
    pub time: Option<f64>,
    pub wall_time: Option<f64>,
    pub memory: Option<i64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// The exercise attempt this submission runs a test case of (never shown through Judge0's
    /// API), and the case's index.
    pub attempt_id: Option<String>,
    pub case_index: Option<i32>,
}

impl SubmissionRow {
    pub fn settings(&self) -> Settings {
        serde_json::from_str(&self.settings).unwrap_or_else(|_| crate::http::default_settings())
    }
}

pub fn insert(conn: &mut DbConnection, row: &SubmissionRow) -> AppResult<()> {
    diesel::insert_into(submissions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The tenant's Judge0 submissions: an exercise attempt's test cases are never among them.
#[diesel::dsl::auto_type]
fn judge0_of(tenant_id: String) -> _ {
    submissions::tenant_id
        .eq(tenant_id)
        .and(submissions::attempt_id.is_null())
}

/// The tenant's submission `token` (another tenant's is not found, nor an attempt's test case).
pub fn get(
    conn: &mut DbConnection,
    tenant_id: &str,
    token: &str,
) -> AppResult<Option<SubmissionRow>> {
    Ok(submissions::table
        .filter(judge0_of(tenant_id.to_owned()))
        .filter(submissions::token.eq(token))
        .select(SubmissionRow::as_select())
        .first(conn)
        .optional()?)
}

/// A submission by token alone (the worker's, for its callback).
pub fn get_any(conn: &mut DbConnection, token: &str) -> AppResult<Option<SubmissionRow>> {
    Ok(submissions::table
        .find(token)
        .select(SubmissionRow::as_select())
        .first(conn)
        .optional()?)
}

/// The tenant's submissions among `tokens` (attempts' test cases left out).
pub fn get_many(
    conn: &mut DbConnection,
    tenant_id: &str,
    tokens: &[String],
) -> AppResult<Vec<SubmissionRow>> {
    Ok(submissions::table
        .filter(judge0_of(tenant_id.to_owned()))
        .filter(submissions::token.eq_any(tokens))
        .select(SubmissionRow::as_select())
        .load(conn)?)
}

/// Makes concurrent transactions that lock the same `key` take turns, until this one ends (on
/// PostgreSQL an advisory lock on the key; SQLite has one writer at a time). Keys: `tenant:<id>`
/// for the quota check, `attempt:<id>` for an attempt's last verdict.
pub fn lock(conn: &mut DbConnection, key: &str) -> AppResult<()> {
    agora_shared::db::xact_lock(conn, &format!("code-exec:{key}"))
}

/// The tenant's submissions waiting or running.
pub fn active(conn: &mut DbConnection, tenant_id: &str) -> AppResult<i64> {
    Ok(submissions::table
        .filter(submissions::tenant_id.eq(tenant_id))
        .filter(submissions::status_id.le(Status::Processing.id() as i32))
        .count()
        .get_result(conn)?)
}

/// A submission a worker may take: queued, or left Processing since before `stale_before`
/// (its worker went away).
#[diesel::dsl::auto_type]
fn takeable(stale_before: NaiveDateTime) -> _ {
    let queued: i32 = Status::InQueue.id() as i32;
    let processing: i32 = Status::Processing.id() as i32;
    submissions::status_id.eq(queued).or(submissions::status_id
        .eq(processing)
        .and(submissions::started_at.lt(stale_before)))
}

/// Whether any submission waits (or was left Processing since before `stale_before`): a
/// read, so that idle workers commit nothing.
pub fn any_waiting(conn: &mut DbConnection, stale_before: NaiveDateTime) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        submissions::table.filter(takeable(stale_before)),
    ))
    .get_result(conn)?)
}

/// Takes the next submission and marks it Processing: of the tenant with the fewest
/// submissions running, of its user with the fewest running, the oldest queued one, so that a
/// tenant (or a user) with a long queue shares the slots with the others instead of holding
/// them all (ties go to the oldest). A submission whose worker went
/// away (Processing since before `stale_before`) is taken like a queued one. Run in a write
/// transaction: on PostgreSQL two replicas may pick the same row, and the conditional update
/// lets only one of them have it.
pub fn claim_next(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> AppResult<Option<(SubmissionRow, NaiveDateTime)>> {
    let processing = Status::Processing.id() as i32;
    for _ in 0..5 {
        let running: Vec<(String, i64)> = submissions::table
            .filter(submissions::status_id.eq(processing))
            .filter(submissions::started_at.ge(stale_before))
            .group_by(submissions::tenant_id)
            .select((submissions::tenant_id, diesel::dsl::count_star()))
            .load(conn)?;
        let waiting: Vec<(String, Option<NaiveDateTime>)> = submissions::table
            .filter(takeable(stale_before))
            .group_by(submissions::tenant_id)
            .select((
                submissions::tenant_id,
                diesel::dsl::min(submissions::created_at),
            ))
            .load(conn)?;
        let busy = |tenant: &str| {
            running
                .iter()
                .find(|(t, _)| t == tenant)
                .map_or(0, |(_, n)| *n)
        };
        let Some((tenant, _)) = waiting
            .iter()
            .min_by_key(|(tenant, oldest)| (busy(tenant), *oldest))
        else {
            return Ok(None);
        };
        // Within the tenant, the same between its users: one student's long queue (an
        // attempt's fifty cases) does not hold every slot the tenant gets.
        let users_running: Vec<(String, i64)> = submissions::table
            .filter(submissions::tenant_id.eq(tenant))
            .filter(submissions::status_id.eq(processing))
            .filter(submissions::started_at.ge(stale_before))
            .group_by(submissions::user_id)
            .select((submissions::user_id, diesel::dsl::count_star()))
            .load(conn)?;
        let users_waiting: Vec<(String, Option<NaiveDateTime>)> = submissions::table
            .filter(submissions::tenant_id.eq(tenant))
            .filter(takeable(stale_before))
            .group_by(submissions::user_id)
            .select((
                submissions::user_id,
                diesel::dsl::min(submissions::created_at),
            ))
            .load(conn)?;
        let Some((user, _)) = users_waiting.iter().min_by_key(|(user, oldest)| {
            let running = users_running
                .iter()
                .find(|(u, _)| u == user)
                .map_or(0, |(_, n)| *n);
            (running, *oldest)
        }) else {
            continue;
        };
        let candidate: Option<(String, i32, Option<NaiveDateTime>)> = submissions::table
            .filter(submissions::tenant_id.eq(tenant))
            .filter(submissions::user_id.eq(user))
            .filter(takeable(stale_before))
            .order(submissions::created_at.asc())
            .select((
                submissions::token,
                submissions::status_id,
                submissions::started_at,
            ))
            .first(conn)
            .optional()?;
        let Some((token, status, started)) = candidate else {
            continue;
        };
        let set = (
            submissions::status_id.eq(processing),
            submissions::started_at.eq(Some(now)),
        );
        let row = submissions::table
            .filter(submissions::token.eq(&token))
            .filter(submissions::status_id.eq(status));
        // Taken only if no one took it since it was read.
        let taken = match started {
            None => diesel::update(row.filter(submissions::started_at.is_null()))
                .set(set)
                .execute(conn)?,
            Some(at) => diesel::update(row.filter(submissions::started_at.eq(at)))
                .set(set)
                .execute(conn)?,
        };
        if taken == 1 {
            let row = submissions::table
                .find(&token)
                .select(SubmissionRow::as_select())
                .first(conn)?;
            return Ok(Some((row, now)));
        }
    }
    Ok(None)
}

/// A submission's status alone (what `wait=true` polls).
pub fn status_of(conn: &mut DbConnection, tenant_id: &str, token: &str) -> AppResult<Option<i32>> {
    Ok(submissions::table
        .filter(judge0_of(tenant_id.to_owned()))
        .filter(submissions::token.eq(token))
        .select(submissions::status_id)
        .first(conn)
        .optional()?)
}

/// Deletes Judge0 submissions that finished before `before` (at most `limit`); answers how
/// many went.
pub fn forget_finished(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> AppResult<usize> {
    let old: Vec<String> = submissions::table
        .filter(submissions::status_id.gt(Status::Processing.id() as i32))
        .filter(submissions::finished_at.lt(before))
        // An attempt's cases go when the attempt is scored (or deleted), never before.
        .filter(submissions::attempt_id.is_null())
        .select(submissions::token)
        .limit(limit)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(submissions::table.filter(submissions::token.eq_any(&old))).execute(conn)?)
}

/// Records the verdict of a submission this worker claimed at `claimed_at`; answers false when
/// the claim was lost meanwhile (another worker took the submission as stale), whose verdict
/// then stands.
pub fn finish(
    conn: &mut DbConnection,
    token: &str,
    claimed_at: NaiveDateTime,
    verdict: &Verdict,
    now: NaiveDateTime,
) -> AppResult<bool> {
    let updated = diesel::update(
        submissions::table
            .filter(submissions::token.eq(token))
            .filter(submissions::status_id.eq(Status::Processing.id() as i32))
            .filter(submissions::started_at.eq(claimed_at)),
    )
    .set((
        submissions::status_id.eq(verdict.status.id() as i32),
        submissions::stdout.eq(&verdict.stdout),
        submissions::stderr.eq(&verdict.stderr),
        submissions::compile_output.eq(&verdict.compile_output),
        submissions::message.eq(&verdict.message),
        submissions::time.eq(verdict.time),
        submissions::wall_time.eq(verdict.wall_time),
        submissions::memory.eq(verdict.memory.map(|m| m as i64)),
        submissions::exit_code.eq(verdict.exit_code),
        submissions::exit_signal.eq(verdict.exit_signal),
        submissions::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}
