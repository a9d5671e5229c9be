//! The workers: one per sandbox slot, each taking the oldest queued submission (of any
//! replica's), running it and storing its verdict. A submission whose worker went away (its
//! process stopped mid-run) is taken again once it has been Processing for `STALE`.

use std::{sync::Arc, time::Duration};

use chrono::NaiveDateTime;

use tokio_util::sync::CancellationToken;

use agora_proto::events::v1 as ev;
use agora_shared::{
    AppResult,
    db::{DbConnection, now, rfc3339},
};

use crate::{
    CodeExecState, events, exercises,
    judge::{self, Request, Verdict},
    sandbox::Limits,
    status::Status,
    store::{self, SubmissionRow},
};

/// Longer than any run may take (20 runs of 20 s of wall time, after a compilation).
const STALE: Duration = Duration::from_secs(15 * 60);

/// How long a worker waits for a wake-up before looking again (other replicas queue too).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Limits of compilers: more than a program's, since compilers are large and trusted.
pub fn compile_limits() -> Limits {
    Limits {
        cpu_time: Duration::from_secs(10),
        cpu_extra_time: Duration::from_secs(1),
        wall_time: Duration::from_secs(20),
        memory_bytes: 512 << 20,
        max_file_bytes: 64 << 20,
        max_output_bytes: 64 << 10,
        ..Limits::default()
    }
}

pub async fn run(state: Arc<CodeExecState>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Ok(sandbox) = &state.sandbox else {
        shutdown.cancelled().await;
        return Ok(());
    };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..sandbox.slots() {
        workers.spawn(worker(state.clone(), shutdown.clone()));
    }
    while let Some(done) = workers.join_next().await {
        done?;
    }
    Ok(())
}

async fn worker(state: Arc<CodeExecState>, shutdown: CancellationToken) {
    let stale = chrono::Duration::from_std(STALE).unwrap_or_default();
    while !shutdown.is_cancelled() {
        // Listening before looking: a submission queued meanwhile still wakes this worker.
        let woken = state.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // Looked for with a read; claimed in a write only when there is something to claim.
        let waiting = state
            .db
            .read(move |conn| store::any_waiting(conn, now() - stale))
            .await;
        let claimed = match waiting {
            Ok(true) => {
                state
                    .db
                    .write(move |conn| {
                        let at = now();
                        store::claim_next(conn, at, at - stale)
                    })
                    .await
            }
            Ok(false) => Ok(None),
            Err(err) => Err(err),
        };
        match claimed {
            Ok(Some((row, claimed_at))) => {
                run_one(&state, row, claimed_at).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "code-exec: cannot take a submission"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(IDLE_CHECK) => {}
        }
    }
}

async fn run_one(state: &Arc<CodeExecState>, row: SubmissionRow, claimed_at: NaiveDateTime) {
    let token = row.token.clone();
    let calls_back = row.settings().callback_url.is_some();
    let language = state
        .languages
        .iter()
        .find(|l| l.id as i32 == row.language_id)
        .map_or_else(|| row.language_id.to_string(), |l| l.name.clone());
    let finished = Arc::new(Finished {
        token: row.token.clone(),
        tenant_id: row.tenant_id.clone(),
        user_id: row.user_id.clone(),
        language_id: row.language_id,
        language,
        created_at: row.created_at,
        attempt_id: row.attempt_id.clone(),
    });
    let runner = state.clone();
    let verdict = tokio::task::spawn_blocking(move || judge_row(&runner, &row))
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "code-exec: a run failed");
            Verdict::internal("the run failed".into())
        });
    if verdict.status == Status::InternalError {
        tracing::warn!(%token, message = ?verdict.message, "code-exec: internal error");
    }
    // A busy store is waited out: a verdict is never dropped for want of a connection.
    let verdict = Arc::new(verdict);
    for attempt in 0..FINISH_ATTEMPTS {
        let (f, v) = (finished.clone(), verdict.clone());
        let stored = state
            .db
            .write(move |conn| f.store(conn, claimed_at, &v, now()))
            .await;
        match stored {
            Ok(true) => {
                if calls_back {
                    deliver_callback(state, &token).await;
                }
                return;
            }
            Ok(false) => {
                tracing::warn!(%token, "code-exec: the submission was taken again as stale; its verdict stands");
                return;
            }
            Err(err) if attempt + 1 == FINISH_ATTEMPTS => {
                tracing::warn!(%token, error = %err, "code-exec: cannot store a verdict");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await,
        }
    }
}

const FINISH_ATTEMPTS: u32 = 10;

/// What storing a verdict needs of its submission (not its texts).
struct Finished {
    token: String,
    tenant_id: String,
    user_id: String,
    language_id: i32,
    language: String,
    created_at: NaiveDateTime,
    attempt_id: Option<String>,
}

impl Finished {
    /// Stores the verdict with its event, in the caller's transaction: `submission.finished`
    /// for a Judge0 submission; for an attempt's case, the attempt's score and
    /// `attempt.finished` once it is the last case to finish. False when the claim was lost.
    fn store(
        &self,
        conn: &mut DbConnection,
        claimed_at: NaiveDateTime,
        verdict: &Verdict,
        at: NaiveDateTime,
    ) -> AppResult<bool> {
        if let Some(attempt) = &self.attempt_id {
            // Taken before the verdict is written: the last two cases of an attempt, finishing
            // at once, then settle one after the other, and the second sees the first's.
            store::lock(conn, &format!("attempt:{attempt}"))?;
        }
        if !store::finish(conn, &self.token, claimed_at, verdict, at)? {
            return Ok(false);
        }
        match &self.attempt_id {
            Some(attempt) => exercises::settle(conn, attempt, &self.language, at)?,
            None => events::submission_finished(
                conn,
                &ev::SubmissionFinished {
                    token: self.token.clone(),
                    tenant_id: self.tenant_id.clone(),
                    user_id: self.user_id.clone(),
                    language_id: self.language_id,
                    language: self.language.clone(),
                    status_id: i32::from(verdict.status.id()),
                    status: verdict.status.description().to_owned(),
                    time: verdict.time.unwrap_or_default(),
                    wall_time: verdict.wall_time.unwrap_or_default(),
                    memory_kb: verdict.memory.map_or(0, |m| m as i64),
                    created_at: rfc3339(self.created_at),
                    finished_at: rfc3339(at),
                },
            )?,
        }
        Ok(true)
    }
}

/// Judge0's callback: the finished submission PUT to its `callback_url` as `GET` would show it
/// (default fields, base64 when it was submitted so), tried up to three times.
pub const CALLBACK_TRIES: u32 = 3;
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

async fn deliver_callback(state: &Arc<CodeExecState>, token: &str) {
    let t = token.to_owned();
    let row = match state.db.read(move |conn| store::get_any(conn, &t)).await {
        Ok(Some(row)) => row,
        _ => return,
    };
    let settings = row.settings();
    let Some(url) = settings.callback_url.clone() else {
        return;
    };
    let body = match crate::http::render(
        state,
        &row,
        settings.base64_encoded,
        crate::http::DEFAULT_FIELDS,
    ) {
        Ok(body) => body,
        // Outputs that are not text, asked for as text: the token and the status, from which
        // the client fetches them in base64.
        Err(_) => {
            let status = Status::from_id(row.status_id);
            serde_json::json!({ "token": row.token, "status": {
                "id": status.id(), "description": status.description() } })
        }
    };
    let client = state.callbacks.clone();
    tokio::spawn(async move {
        for attempt in 0..CALLBACK_TRIES {
            match client.put(&url).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => return,
                Ok(resp) => {
                    tracing::info!(status = %resp.status(), attempt, "code-exec: a callback was refused")
                }
                Err(err) => tracing::info!(error = %err, attempt, "code-exec: a callback failed"),
            }
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        }
    });
}

/// Deletes Judge0 submissions finished longer ago than `code_exec.keep_results_secs`, and
/// attempts finished longer ago than `code_exec.keep_attempts_secs`, a batch at a time, every
/// minute.
pub async fn forget(state: Arc<CodeExecState>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let keep_results = chrono::Duration::seconds(state.config.keep_results_secs as i64);
    let keep_attempts = chrono::Duration::seconds(state.config.keep_attempts_secs as i64);
    loop {
        for what in ["submissions", "attempts"] {
            loop {
                let deleted = state
                    .db
                    .write(move |conn| match what {
                        "submissions" => store::forget_finished(conn, now() - keep_results, 500),
                        _ => exercises::forget_attempts(conn, now() - keep_attempts, 500),
                    })
                    .await;
                match deleted {
                    Ok(500) => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, what, "code-exec: cannot forget old results");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

fn judge_row(state: &CodeExecState, row: &SubmissionRow) -> Verdict {
    let Ok(sandbox) = &state.sandbox else {
        return Verdict::internal("this host cannot run programs".into());
    };
    let Some(language) = state
        .languages
        .iter()
        .find(|l| l.id as i32 == row.language_id)
    else {
        return Verdict::internal(format!("language {} is no longer offered", row.language_id));
    };
    let s = row.settings();
    let request = Request {
        source: row.source_code.clone(),
        stdin: row.stdin.clone(),
        expected_output: row.expected_output.clone(),
        compiler_options: row.compiler_options.clone(),
        command_line_arguments: row.command_line_arguments.clone(),
        limits: judge::limits(
            s.cpu_time_limit,
            s.cpu_extra_time,
            s.wall_time_limit,
            s.memory_limit,
            s.stack_limit,
            s.max_processes_and_or_threads,
            s.max_file_size,
            state.config.max_output_bytes,
        ),
        number_of_runs: s.number_of_runs,
        redirect_stderr_to_stdout: s.redirect_stderr_to_stdout,
    };
    judge::judge(sandbox, language, &compile_limits(), &request)
}
