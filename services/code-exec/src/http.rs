//! Judge0's API under `/api/v1/code-exec`: submissions (one or a batch), languages, statuses,
//! and what this host offers (`/about`, `/config_info`, `/system_info`). Bodies and fields are
//! Judge0's, so Judge0's clients work unchanged; errors are problem+json naming the field.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now, utc},
    error::FieldError,
    http::{Caller, ValidJson, json::JsonLimit},
};

use crate::{
    CodeExecState,
    exercises::{self, AttemptRow},
    judge::defaults as d,
    status::Status,
    store::{self, Settings, SubmissionRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(JsonLimit(8 * 1024 * 1024))
        .route("/api/v1/code-exec/submissions", web::post().to(create))
        .route(
            "/api/v1/code-exec/submissions/batch",
            web::post().to(create_batch),
        )
        .route(
            "/api/v1/code-exec/submissions/batch",
            web::get().to(get_batch),
        )
        .route("/api/v1/code-exec/submissions/{token}", web::get().to(get))
        .route("/api/v1/code-exec/languages", web::get().to(languages))
        .route("/api/v1/code-exec/languages/{id}", web::get().to(language))
        .route("/api/v1/code-exec/statuses", web::get().to(statuses))
        .route("/api/v1/code-exec/about", web::get().to(about))
        .route("/api/v1/code-exec/config_info", web::get().to(config_info))
        .route("/api/v1/code-exec/system_info", web::get().to(system_info))
        .configure(exercises::http::routes);
}

/// A submission as Judge0 takes it. With `base64_encoded=true` the source, stdin and expected
/// output are base64.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct SubmissionIn {
    pub source_code: String,
    pub language_id: i64,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub cpu_time_limit: Option<f64>,
    pub cpu_extra_time: Option<f64>,
    pub wall_time_limit: Option<f64>,
    /// KB.
    pub memory_limit: Option<f64>,
    /// KB.
    pub stack_limit: Option<f64>,
    pub max_processes_and_or_threads: Option<f64>,
    /// Refused when true: limits apply to the whole run.
    pub enable_per_process_and_thread_time_limit: Option<bool>,
    /// Refused when true: limits apply to the whole run.
    pub enable_per_process_and_thread_memory_limit: Option<bool>,
    /// KB.
    pub max_file_size: Option<f64>,
    pub redirect_stderr_to_stdout: Option<bool>,
    /// Refused when true: programs never have a network.
    pub enable_network: Option<bool>,
    pub number_of_runs: Option<f64>,
    /// Where the verdict is PUT once the submission has run (public addresses only, unless
    /// `code_exec.callbacks_allow_private`).
    pub callback_url: Option<String>,
    /// Not offered yet: refused.
    pub additional_files: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    pub submissions: Vec<SubmissionIn>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CreateParams {
    /// Source, stdin and expected output are base64 (and outputs are returned so).
    #[serde(default)]
    pub base64_encoded: bool,
    /// Answer with the verdict (waits up to `code_exec.wait_timeout_secs`).
    #[serde(default)]
    pub wait: bool,
    /// Fields to return with `wait=true`, comma-separated, or `*`.
    pub fields: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BatchCreateParams {
    /// Sources, stdins and expected outputs are base64.
    #[serde(default)]
    pub base64_encoded: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct GetParams {
    #[serde(default)]
    pub base64_encoded: bool,
    /// Fields to return, comma-separated, or `*`.
    pub fields: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BatchParams {
    /// Tokens, comma-separated.
    pub tokens: String,
    #[serde(default)]
    pub base64_encoded: bool,
    pub fields: Option<String>,
}

/// A submission as Judge0 returns it: the fields asked for (`fields`), each present only then.
/// Outputs are base64 when asked with `base64_encoded=true`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SubmissionOut {
    pub token: Option<String>,
    pub source_code: Option<String>,
    pub language_id: Option<i64>,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub compile_output: Option<String>,
    pub message: Option<String>,
    pub status: Option<StatusOut>,
    pub status_id: Option<i64>,
    /// CPU time in seconds, as a decimal string.
    pub time: Option<String>,
    pub wall_time: Option<String>,
    /// KB.
    pub memory: Option<i64>,
    pub exit_code: Option<i64>,
    pub exit_signal: Option<i64>,
    pub created_at: Option<String>,
    pub finished_at: Option<String>,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub cpu_time_limit: Option<f64>,
    pub cpu_extra_time: Option<f64>,
    pub wall_time_limit: Option<f64>,
    pub memory_limit: Option<i64>,
    pub stack_limit: Option<i64>,
    pub max_processes_and_or_threads: Option<i64>,
    pub max_file_size: Option<i64>,
    pub number_of_runs: Option<i64>,
    pub redirect_stderr_to_stdout: Option<bool>,
    pub enable_network: Option<bool>,
    pub enable_per_process_and_thread_time_limit: Option<bool>,
    pub enable_per_process_and_thread_memory_limit: Option<bool>,
    pub callback_url: Option<String>,
    pub additional_files: Option<String>,
    pub language: Option<LanguageOut>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct StatusOut {
    pub id: i64,
    pub description: String,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct LanguageOut {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SubmissionsOut {
    /// In the order of `tokens`; null where a token is not one of the caller's tenant.
    pub submissions: Vec<Option<SubmissionOut>>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenOut {
    pub token: String,
}

/// Judge0's defaults for a submission's settings.
pub fn default_settings() -> Settings {
    Settings {
        cpu_time_limit: d::CPU_TIME_LIMIT,
        cpu_extra_time: d::CPU_EXTRA_TIME,
        wall_time_limit: d::WALL_TIME_LIMIT,
        memory_limit: d::MEMORY_LIMIT,
        stack_limit: d::STACK_LIMIT,
        max_processes_and_or_threads: d::MAX_PROCESSES_AND_OR_THREADS,
        max_file_size: d::MAX_FILE_SIZE,
        number_of_runs: d::NUMBER_OF_RUNS,
        redirect_stderr_to_stdout: false,
        callback_url: None,
        base64_encoded: false,
    }
}

/// Every field Judge0 returns, and those it returns when none are asked for.
const ALL_FIELDS: &[&str] = &[
    "token",
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
    "status_id",
    "time",
    "wall_time",
    "memory",
    "exit_code",
    "exit_signal",
    "created_at",
    "finished_at",
    "compiler_options",
    "command_line_arguments",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "max_file_size",
    "number_of_runs",
    "redirect_stderr_to_stdout",
    "enable_network",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "callback_url",
    "additional_files",
    "language",
];
pub(crate) const DEFAULT_FIELDS: &[&str] = &[
    "token",
    "stdout",
    "time",
    "memory",
    "stderr",
    "compile_output",
    "message",
    "status",
];

fn fields(asked: Option<&str>) -> AppResult<Vec<&'static str>> {
    let Some(asked) = asked.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    if asked == "*" {
        return Ok(ALL_FIELDS.to_vec());
    }
    let mut out = Vec::new();
    for name in asked.split(',').map(str::trim) {
        match ALL_FIELDS.iter().find(|f| **f == name) {
            Some(field) => out.push(*field),
            None => {
                return Err(AppError::invalid(
                    "fields",
                    format!("`{name}` is not a submission field"),
                ));
            }
        }
    }
    Ok(out)
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

/// Text as stored: base64-decoded when the request says so.
fn decode(
    field: &str,
    text: &str,
    base64: bool,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Vec<u8> {
    let bytes = if base64 {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        match STANDARD.decode(compact) {
            Ok(bytes) => bytes,
            Err(_) => {
                errors.push(field_error(field, "is not valid base64"));
                return vec![];
            }
        }
    } else {
        text.as_bytes().to_vec()
    };
    if bytes.len() > max {
        errors.push(field_error(field, format!("is larger than {max} bytes")));
    }
    bytes
}

/// A number within (0, max], or the default.
pub(crate) fn bounded(
    field: &str,
    value: Option<f64>,
    default: f64,
    max: f64,
    errors: &mut Vec<FieldError>,
) -> f64 {
    match value {
        None => default,
        Some(v) if v.is_finite() && v > 0.0 && v <= max => v,
        Some(_) => {
            errors.push(field_error(
                field,
                format!("must be more than 0 and at most {max}"),
            ));
            default
        }
    }
}

/// A whole number within [1, max], or the default.
pub(crate) fn whole(
    field: &str,
    value: Option<f64>,
    default: u64,
    max: u64,
    errors: &mut Vec<FieldError>,
) -> u64 {
    match value {
        None => default,
        Some(v) if v.fract() == 0.0 && v >= 1.0 && v <= max as f64 => v as u64,
        Some(_) => {
            errors.push(field_error(
                field,
                format!("must be a whole number from 1 to {max}"),
            ));
            default
        }
    }
}

/// A validated submission, ready to store.
pub(crate) fn validate(
    state: &CodeExecState,
    caller: &Caller,
    input: SubmissionIn,
    base64: bool,
    prefix: &str,
) -> Result<SubmissionRow, Vec<FieldError>> {
    let mut errors = Vec::new();
    let max = state.config.max_input_bytes;
    let name = |f: &str| format!("{prefix}{f}");
    let source = decode(
        &name("source_code"),
        &input.source_code,
        base64,
        max,
        &mut errors,
    );
    if source.is_empty() && errors.is_empty() {
        errors.push(field_error(&name("source_code"), "must not be empty"));
    }
    let stdin = input
        .stdin
        .as_deref()
        .map(|s| decode(&name("stdin"), s, base64, max, &mut errors))
        .unwrap_or_default();
    let expected_output = input
        .expected_output
        .as_deref()
        .map(|s| decode(&name("expected_output"), s, base64, max, &mut errors));
    if !state
        .languages
        .iter()
        .any(|l| i64::from(l.id) == input.language_id)
    {
        errors.push(field_error(
            &name("language_id"),
            format!(
                "no language with id {} (GET /languages lists them)",
                input.language_id
            ),
        ));
    }
    for (field, value) in [
        ("compiler_options", &input.compiler_options),
        ("command_line_arguments", &input.command_line_arguments),
    ] {
        if let Some(text) = value {
            if text.contains('\0') {
                errors.push(field_error(&name(field), "must not hold a NUL character"));
            } else if text.len() > 512 {
                errors.push(field_error(&name(field), "is longer than 512 characters"));
            } else if shlex::split(text).is_none() {
                errors.push(field_error(&name(field), "has unbalanced quotes"));
            }
        }
    }
    if input.enable_network == Some(true) {
        errors.push(field_error(
            &name("enable_network"),
            "programs never have a network here",
        ));
    }
    for field in [
        (
            "enable_per_process_and_thread_time_limit",
            input.enable_per_process_and_thread_time_limit,
        ),
        (
            "enable_per_process_and_thread_memory_limit",
            input.enable_per_process_and_thread_memory_limit,
        ),
    ] {
        if field.1 == Some(true) {
            errors.push(field_error(
                &name(field.0),
                "limits apply to the whole run (every process together) here",
            ));
        }
    }
    if let Some(url) = &input.callback_url {
        if url.len() > 2048 {
            errors.push(field_error(
                &name("callback_url"),
                "is longer than 2048 characters",
            ));
        } else if let Err(refused) =
            agora_shared::outbound::check_url(url, state.config.callbacks_allow_private)
        {
            errors.push(field_error(&name("callback_url"), refused.0));
        }
    }
    if input.additional_files.is_some() {
        errors.push(field_error(
            &name("additional_files"),
            "additional files are not offered yet",
        ));
    }
    let settings = Settings {
        cpu_time_limit: bounded(
            &name("cpu_time_limit"),
            input.cpu_time_limit,
            d::CPU_TIME_LIMIT,
            d::MAX_CPU_TIME_LIMIT,
            &mut errors,
        ),
        cpu_extra_time: match input.cpu_extra_time {
            Some(0.0) => 0.0,
            other => bounded(
                &name("cpu_extra_time"),
                other,
                d::CPU_EXTRA_TIME,
                d::MAX_CPU_EXTRA_TIME,
                &mut errors,
            ),
        },
        wall_time_limit: bounded(
            &name("wall_time_limit"),
            input.wall_time_limit,
            d::WALL_TIME_LIMIT,
            d::MAX_WALL_TIME_LIMIT,
            &mut errors,
        ),
        memory_limit: whole(
            &name("memory_limit"),
            input.memory_limit,
            d::MEMORY_LIMIT,
            d::MAX_MEMORY_LIMIT,
            &mut errors,
        ),
        stack_limit: whole(
            &name("stack_limit"),
            input.stack_limit,
            d::STACK_LIMIT,
            d::MAX_STACK_LIMIT,
            &mut errors,
        ),
        max_processes_and_or_threads: whole(
            &name("max_processes_and_or_threads"),
            input.max_processes_and_or_threads,
            d::MAX_PROCESSES_AND_OR_THREADS,
            d::MAX_MAX_PROCESSES_AND_OR_THREADS,
            &mut errors,
        ),
        max_file_size: whole(
            &name("max_file_size"),
            input.max_file_size,
            d::MAX_FILE_SIZE,
            d::MAX_MAX_FILE_SIZE,
            &mut errors,
        ),
        number_of_runs: whole(
            &name("number_of_runs"),
            input.number_of_runs,
            u64::from(d::NUMBER_OF_RUNS),
            u64::from(d::MAX_NUMBER_OF_RUNS),
            &mut errors,
        ) as u32,
        redirect_stderr_to_stdout: input.redirect_stderr_to_stdout.unwrap_or(false),
        callback_url: input.callback_url.clone(),
        base64_encoded: base64,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SubmissionRow {
        token: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant_id.clone(),
        user_id: caller.user_id.clone(),
        language_id: input.language_id as i32,
        source_code: source,
        stdin,
        expected_output,
        compiler_options: input.compiler_options,
        command_line_arguments: input.command_line_arguments,
        settings: serde_json::to_string(&settings).unwrap_or_default(),
        status_id: Status::InQueue.id() as i32,
        stdout: None,
        stderr: None,
        compile_output: None,
        message: None,
        time: None,
        wall_time: None,
        memory: None,
        exit_code: None,
        exit_signal: None,
        created_at: now(),
        started_at: None,
        finished_at: None,
        attempt_id: None,
        case_index: None,
    })
}

/// 503 when this host cannot run programs (the reason is in `/system_info`).
pub(crate) fn runnable(state: &CodeExecState) -> AppResult<()> {
    match &state.sandbox {
        Ok(_) => Ok(()),
        Err(reason) => Err(AppError::Unavailable(format!(
            "this host cannot run programs: {reason}"
        ))
        .with_code("code_exec.sandbox_unavailable")),
    }
}

/// Stores `rows` (and the attempt they are the cases of) if the tenant has room for them, then
/// wakes the workers.
pub(crate) async fn enqueue(
    state: &web::Data<CodeExecState>,
    rows: Vec<SubmissionRow>,
    attempt: Option<AttemptRow>,
) -> AppResult<()> {
    let limit = i64::from(state.config.max_queued_per_tenant);
    let Some(tenant) = rows.first().map(|r| r.tenant_id.clone()) else {
        return Err(AppError::invalid("submissions", "nothing to run"));
    };
    let count = rows.len() as i64;
    state
        .db
        .write(move |conn| {
            // Concurrent submissions of one tenant are counted one after the other (a lock
            // on the tenant for the transaction), so the quota holds exactly.
            if let Some(attempt) = &attempt {
                // Queued at the version it was read at, or not at all: the exercise may have
                // been replaced or deleted since.
                store::lock(conn, &exercises::lock_key(&attempt.tenant_id))?;
                let version = exercises::version_of(conn, &attempt.tenant_id, &attempt.exercise_id)?
                    .ok_or_else(|| AppError::not_found("exercise"))?;
                if version != attempt.exercise_version {
                    return Err(AppError::Conflict(
                        "the exercise was replaced while the attempt was made; make it again".into(),
                    )
                    .with_code("code_exec.exercise_changed"));
                }
            }
            store::lock(conn, &format!("tenant:{tenant}"))?;
            let active = store::active(conn, &tenant)?;
            if active + count > limit {
                return Err(AppError::TooManyRequests {
                    detail: format!(
                        "this tenant has {active} submissions waiting or running, and may have {limit}"
                    ),
                    retry_after_secs: 1,
                });
            }
            if let Some(attempt) = &attempt {
                exercises::insert_attempt(conn, attempt)?;
            }
            for row in &rows {
                store::insert(conn, row)?;
            }
            Ok(())
        })
        .await?;
    state.wake.notify_waiters();
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/code-exec/submissions", tag = "code-exec", request_body = SubmissionIn,
    params(CreateParams),
    responses((status = 201, description = "queued: only `token`; with wait=true the fields asked for (the token alone if an output cannot be shown as UTF-8)", body = SubmissionOut),
        (status = 422), (status = 429, description = "the tenant's queue is full"),
        (status = 503, description = "this host cannot run programs")),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<CodeExecState>,
    caller: Caller,
    params: web::Query<CreateParams>,
    body: ValidJson<SubmissionIn>,
) -> AppResult<HttpResponse> {
    runnable(&state)?;
    let shown = fields(params.fields.as_deref())?;
    let row = validate(&state, &caller, body.0, params.base64_encoded, "")
        .map_err(AppError::Validation)?;
    let token = row.token.clone();
    enqueue(&state, vec![row], None).await?;
    if !params.wait {
        return Ok(HttpResponse::Created().json(json!({ "token": token })));
    }
    // Polls the status alone, more slowly as the wait grows; the row once, at the end. The
    // submission is queued whatever happens now: any failure still answers its token.
    let (tenant, t) = (caller.tenant_id.clone(), token.clone());
    wait_for(&state, move |conn| {
        let status = store::status_of(conn, &tenant, &t)?;
        Ok(status.is_some_and(|s| s > Status::Processing.id() as i32))
    })
    .await;
    let (tenant, t) = (caller.tenant_id.clone(), token.clone());
    let shown_row = match state
        .db
        .read(move |conn| store::get(conn, &tenant, &t))
        .await
    {
        Ok(Some(row)) => render(&state, &row, params.base64_encoded, &shown).ok(),
        _ => None,
    };
    Ok(HttpResponse::Created().json(shown_row.unwrap_or_else(|| json!({ "token": token }))))
}

#[utoipa::path(post, path = "/api/v1/code-exec/submissions/batch", tag = "code-exec", request_body = BatchIn,
    params(BatchCreateParams),
    responses((status = 201, description = "a token for each submission, in order", body = [TokenOut]),
        (status = 422), (status = 429), (status = 503)),
    security(("bearer" = [])))]
pub async fn create_batch(
    state: web::Data<CodeExecState>,
    caller: Caller,
    params: web::Query<BatchCreateParams>,
    body: ValidJson<BatchIn>,
) -> AppResult<HttpResponse> {
    runnable(&state)?;
    let submissions = body.0.submissions;
    if submissions.is_empty() || submissions.len() > state.config.max_batch_size {
        return Err(AppError::invalid(
            "submissions",
            format!("must hold 1 to {} submissions", state.config.max_batch_size),
        ));
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, input) in submissions.into_iter().enumerate() {
        match validate(
            &state,
            &caller,
            input,
            params.base64_encoded,
            &format!("submissions[{i}]."),
        ) {
            Ok(row) => rows.push(row),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let tokens: Vec<Value> = rows.iter().map(|r| json!({ "token": r.token })).collect();
    enqueue(&state, rows, None).await?;
    Ok(HttpResponse::Created().json(tokens))
}

#[utoipa::path(get, path = "/api/v1/code-exec/submissions/batch", tag = "code-exec", params(BatchParams),
    responses((status = 200, body = SubmissionsOut),
        (status = 400, description = "an output is not UTF-8: ask with base64_encoded=true"),
        (status = 422)), security(("bearer" = [])))]
pub async fn get_batch(
    state: web::Data<CodeExecState>,
    caller: Caller,
    params: web::Query<BatchParams>,
) -> AppResult<HttpResponse> {
    let shown = fields(params.fields.as_deref())?;
    let tokens: Vec<String> = params
        .tokens
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() || tokens.len() > state.config.max_batch_size {
        return Err(AppError::invalid(
            "tokens",
            format!("must name 1 to {} tokens", state.config.max_batch_size),
        ));
    }
    if tokens
        .iter()
        .enumerate()
        .any(|(i, t)| tokens[..i].contains(t))
    {
        return Err(AppError::invalid("tokens", "must name each token once"));
    }
    let tenant = caller.tenant_id.clone();
    let wanted = tokens.clone();
    let rows = state
        .db
        .read(move |conn| store::get_many(conn, &tenant, &wanted))
        .await?;
    let mut out = Vec::with_capacity(tokens.len());
    for token in &tokens {
        match rows.iter().find(|r| &r.token == token) {
            Some(row) => out.push(render(&state, row, params.base64_encoded, &shown)?),
            None => out.push(Value::Null),
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "submissions": out })))
}

#[utoipa::path(get, path = "/api/v1/code-exec/submissions/{token}", tag = "code-exec",
    params(("token" = String, Path), GetParams),
    responses((status = 200, body = SubmissionOut),
        (status = 400, description = "an output is not UTF-8: ask with base64_encoded=true"),
        (status = 404, description = "no such submission in the caller's tenant"), (status = 422)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<CodeExecState>,
    caller: Caller,
    token: web::Path<String>,
    params: web::Query<GetParams>,
) -> AppResult<HttpResponse> {
    let shown = fields(params.fields.as_deref())?;
    let token = token.into_inner();
    let tenant = caller.tenant_id.clone();
    let row = state
        .db
        .read(move |conn| store::get(conn, &tenant, &token))
        .await?
        .ok_or_else(|| AppError::not_found("submission"))?;
    Ok(HttpResponse::Ok().json(render(&state, &row, params.base64_encoded, &shown)?))
}

/// Waits until `done` reads true (or cannot be read), up to `code_exec.wait_timeout_secs`,
/// polling more slowly as the wait grows (what `wait=true` does).
pub(crate) async fn wait_for<F>(state: &CodeExecState, done: F)
where
    F: Fn(&mut DbConnection) -> AppResult<bool> + Clone + Send + 'static,
{
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(state.config.wait_timeout_secs);
    let mut pause = Duration::from_millis(20);
    loop {
        let probe = done.clone();
        let finished = state.db.read(move |conn| probe(conn)).await;
        if !matches!(finished, Ok(false)) || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Judge0's timestamps: UTC with milliseconds and a `Z`.
pub(crate) fn timestamp(at: chrono::NaiveDateTime) -> String {
    utc(at).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The submission as Judge0 shows it, with the `shown` fields only (only those are encoded).
pub(crate) fn render(
    state: &CodeExecState,
    row: &SubmissionRow,
    base64: bool,
    shown: &[&str],
) -> AppResult<Value> {
    let mut not_text = Vec::new();
    let mut text = |field: &'static str, bytes: Option<&[u8]>| -> Value {
        match bytes {
            None => Value::Null,
            Some(b) if base64 => Value::String(STANDARD.encode(b)),
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => Value::String(s.to_owned()),
                Err(_) => {
                    not_text.push(field);
                    Value::Null
                }
            },
        }
    };
    let settings = row.settings();
    let status = Status::from_id(row.status_id);
    let seconds = |s: Option<f64>| s.map_or(Value::Null, |s| Value::String(format!("{s:.3}")));
    let mut out = Map::new();
    for &field in shown {
        let value = match field {
            "token" => json!(row.token),
            "source_code" => text("source_code", Some(&row.source_code)),
            "language_id" => json!(row.language_id),
            "stdin" => text("stdin", Some(&row.stdin)),
            "expected_output" => text("expected_output", row.expected_output.as_deref()),
            "stdout" => text("stdout", row.stdout.as_deref()),
            "stderr" => text("stderr", row.stderr.as_deref()),
            "compile_output" => text("compile_output", row.compile_output.as_deref()),
            "message" => text("message", row.message.as_deref().map(str::as_bytes)),
            "status" => json!({ "id": status.id(), "description": status.description() }),
            "status_id" => json!(status.id()),
            "time" => seconds(row.time),
            "wall_time" => seconds(row.wall_time),
            "memory" => json!(row.memory),
            "exit_code" => json!(row.exit_code),
            "exit_signal" => json!(row.exit_signal),
            "created_at" => json!(timestamp(row.created_at)),
            "finished_at" => row.finished_at.map_or(Value::Null, |t| json!(timestamp(t))),
            "compiler_options" => json!(row.compiler_options),
            "command_line_arguments" => json!(row.command_line_arguments),
            "cpu_time_limit" => json!(settings.cpu_time_limit),
            "cpu_extra_time" => json!(settings.cpu_extra_time),
            "wall_time_limit" => json!(settings.wall_time_limit),
            "memory_limit" => json!(settings.memory_limit),
            "stack_limit" => json!(settings.stack_limit),
            "max_processes_and_or_threads" => json!(settings.max_processes_and_or_threads),
            "max_file_size" => json!(settings.max_file_size),
            "number_of_runs" => json!(settings.number_of_runs),
            "redirect_stderr_to_stdout" => json!(settings.redirect_stderr_to_stdout),
            "enable_network"
            | "enable_per_process_and_thread_time_limit"
            | "enable_per_process_and_thread_memory_limit" => json!(false),
            "language" => state
                .languages
                .iter()
                .find(|l| l.id as i32 == row.language_id)
                .map_or(Value::Null, |l| json!({ "id": l.id, "name": l.name })),
            "callback_url" => json!(settings.callback_url),
            // additional_files: not offered.
            _ => Value::Null,
        };
        out.insert(field.to_owned(), value);
    }
    if !not_text.is_empty() {
        return Err(AppError::BadRequest(format!(
            "{} of this submission cannot be shown as UTF-8 text; ask with base64_encoded=true",
            not_text.join(", ")
        ))
        .with_code("code_exec.not_utf8"));
    }
    Ok(Value::Object(out))
}

#[utoipa::path(get, path = "/api/v1/code-exec/languages", tag = "code-exec",
    responses((status = 200, body = [LanguageOut])), security(("bearer" = [])))]
pub async fn languages(state: web::Data<CodeExecState>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(
        state
            .languages
            .iter()
            .map(|l| json!({ "id": l.id, "name": l.name }))
            .collect::<Vec<_>>(),
    )
}

#[utoipa::path(get, path = "/api/v1/code-exec/languages/{id}", tag = "code-exec",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the language with its source file and commands"), (status = 404)),
    security(("bearer" = [])))]
pub async fn language(
    state: web::Data<CodeExecState>,
    _caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let language = id
        .parse::<u32>()
        .ok()
        .and_then(|id| state.languages.iter().find(|l| l.id == id))
        .ok_or_else(|| AppError::not_found("language"))?;
    Ok(HttpResponse::Ok().json(json!({
        "id": language.id,
        "name": language.name,
        "is_archived": false,
        "source_file": language.source_file,
        "compile_cmd": language.compile.as_ref().map(|c| c.join(" ")),
        "run_cmd": language.run.join(" "),
    })))
}

#[utoipa::path(get, path = "/api/v1/code-exec/statuses", tag = "code-exec",
    responses((status = 200, body = [StatusOut])), security(("bearer" = [])))]
pub async fn statuses(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(
        Status::ALL
            .iter()
            .map(|s| json!({ "id": s.id(), "description": s.description() }))
            .collect::<Vec<_>>(),
    )
}

#[utoipa::path(get, path = "/api/v1/code-exec/about", tag = "code-exec",
    responses((status = 200, description = "the Judge0 API version this service speaks")),
    security(("bearer" = [])))]
pub async fn about(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        // The Judge0 release whose API and language ids this service follows.
        "version": "1.13.1",
        "homepage": "https://github.com/judge0/judge0",
        "source_code": "https://github.com/judge0/judge0",
        "maintainer": "Agora code-exec",
    }))
}

#[utoipa::path(get, path = "/api/v1/code-exec/config_info", tag = "code-exec",
    responses((status = 200, description = "Judge0's configuration fields: defaults, maxima and features")),
    security(("bearer" = [])))]
pub async fn config_info(state: web::Data<CodeExecState>, _caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": true,
        "enable_submission_delete": false,
        "enable_callbacks": true,
        "callbacks_max_tries": crate::worker::CALLBACK_TRIES,
        "callbacks_timeout": crate::worker::CALLBACK_TIMEOUT.as_secs_f64(),
        "enable_additional_files": false,
        "max_queue_size": state.config.max_queued_per_tenant,
        "cpu_time_limit": d::CPU_TIME_LIMIT,
        "max_cpu_time_limit": d::MAX_CPU_TIME_LIMIT,
        "cpu_extra_time": d::CPU_EXTRA_TIME,
        "max_cpu_extra_time": d::MAX_CPU_EXTRA_TIME,
        "wall_time_limit": d::WALL_TIME_LIMIT,
        "max_wall_time_limit": d::MAX_WALL_TIME_LIMIT,
        "memory_limit": d::MEMORY_LIMIT,
        "max_memory_limit": d::MAX_MEMORY_LIMIT,
        "stack_limit": d::STACK_LIMIT,
        "max_stack_limit": d::MAX_STACK_LIMIT,
        "max_processes_and_or_threads": d::MAX_PROCESSES_AND_OR_THREADS,
        "max_max_processes_and_or_threads": d::MAX_MAX_PROCESSES_AND_OR_THREADS,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": d::MAX_FILE_SIZE,
        "max_max_file_size": d::MAX_MAX_FILE_SIZE,
        "number_of_runs": d::NUMBER_OF_RUNS,
        "max_number_of_runs": d::MAX_NUMBER_OF_RUNS,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": 0,
        "enable_batched_submissions": true,
        "max_submission_batch_size": state.config.max_batch_size,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    }))
}

#[utoipa::path(get, path = "/api/v1/code-exec/system_info", tag = "code-exec",
    responses((status = 200, description = "the isolation layers in force on this host, or why programs cannot run")),
    security(("bearer" = [])))]
pub async fn system_info(state: web::Data<CodeExecState>, _caller: Caller) -> HttpResponse {
    let isolation = match &state.sandbox {
        Ok(sandbox) => {
            let layers = sandbox.layers();
            let mut namespaces = vec!["mount", "pid", "network", "ipc", "uts", "cgroup"];
            if layers.rootless {
                namespaces.push("user");
            }
            json!({
                "available": true,
                // Without root: programs run in user namespaces as this service's own user.
                "rootless": layers.rootless,
                "namespaces": namespaces,
                "cgroup": layers.cgroup,
                "seccomp": layers.seccomp,
                "landlock_abi": layers.landlock_abi,
                "slots": sandbox.slots(),
            })
        }
        Err(reason) => json!({ "available": false, "reason": reason }),
    };
    HttpResponse::Ok().json(json!({
        "kernel": state.kernel,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "isolation": isolation,
        "languages": state.languages.len(),
    }))
}
