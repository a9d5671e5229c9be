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

/// The tenant's submission `token` (another tenant's is not found).
pub fn get(
    conn: &mut DbConnection,
    tenant_id: &str,
    token: &str,
) -> AppResult<Option<SubmissionRow>> {
    Ok(submissions::table
        .filter(submissions::tenant_id.eq(tenant_id))
        .filter(submissions::token.eq(token))
        .select(SubmissionRow::as_select())
        .first(conn)
        .optional()?)
}

/// The tenant's submissions among `tokens`.
pub fn get_many(
    conn: &mut DbConnection,
    tenant_id: &str,
    tokens: &[String],
) -> AppResult<Vec<SubmissionRow>> {
    Ok(submissions::table
        .filter(submissions::tenant_id.eq(tenant_id))
        .filter(submissions::token.eq_any(tokens))
        .select(SubmissionRow::as_select())
        .load(conn)?)
}

/// Makes the tenant's quota checks in concurrent transactions take turns, until this one
/// ends (on PostgreSQL an advisory lock on the tenant; SQLite has one writer at a time).
pub fn lock_tenant(conn: &mut DbConnection, tenant_id: &str) -> AppResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('code-exec:' || $1, 0))")
            .bind::<diesel::sql_types::Text, _>(tenant_id)
            .execute(pg)?;
    }
    Ok(())
}

/// The tenant's submissions waiting or running.
pub fn active(conn: &mut DbConnection, tenant_id: &str) -> AppResult<i64> {
    Ok(submissions::table
        .filter(submissions::tenant_id.eq(tenant_id))
        .filter(submissions::status_id.le(Status::Processing.id() as i32))
        .count()
        .get_result(conn)?)
}

/// Whether any submission waits (or was left Processing since before `stale_before`): a
/// read, so that idle workers commit nothing.
pub fn any_waiting(conn: &mut DbConnection, stale_before: NaiveDateTime) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        submissions::table.filter(
            submissions::status_id
                .eq(Status::InQueue.id() as i32)
                .or(submissions::status_id
                    .eq(Status::Processing.id() as i32)
                    .and(submissions::started_at.lt(stale_before))),
        ),
    ))
    .get_result(conn)?)
}

/// Takes the oldest queued submission (or one whose worker went away: Processing since before
/// `stale_before`) and marks it Processing. Run in a write transaction: on PostgreSQL two
/// replicas may pick the same row, and the conditional update lets only one of them have it.
pub fn claim_next(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> AppResult<Option<SubmissionRow>> {
    for _ in 0..5 {
        let candidate: Option<(String, i32, Option<NaiveDateTime>)> = submissions::table
            .filter(
                submissions::status_id
                    .eq(Status::InQueue.id() as i32)
                    .or(submissions::status_id
                        .eq(Status::Processing.id() as i32)
                        .and(submissions::started_at.lt(stale_before))),
            )
            .order(submissions::created_at.asc())
            .select((
                submissions::token,
                submissions::status_id,
                submissions::started_at,
            ))
            .first(conn)
            .optional()?;
        let Some((token, status, started)) = candidate else {
            return Ok(None);
        };
        let set = (
            submissions::status_id.eq(Status::Processing.id() as i32),
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
            return Ok(Some(
                submissions::table
                    .find(&token)
                    .select(SubmissionRow::as_select())
                    .first(conn)?,
            ));
        }
    }
    Ok(None)
}

/// Records the verdict of a submission this worker claimed.
pub fn finish(
    conn: &mut DbConnection,
    token: &str,
    verdict: &Verdict,
    now: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(submissions::table.find(token))
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
    Ok(())
}
