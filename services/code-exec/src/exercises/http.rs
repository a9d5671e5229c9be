//! Exercises and attempts under `/api/v1/code-exec/exercises`. Managing exercises needs
//! `code-exec:manage` (tenant admins have it); any member of the tenant may read them, without
//! the hidden cases' input and expected output, and attempt them. An attempt is seen by the one
//! who made it and by managers.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use agora_shared::{
    AppError, AppResult,
    db::now,
    error::FieldError,
    http::{Caller, ValidJson},
};

use super::{
    AttemptCase, AttemptResults, AttemptRow, AttemptSummary, Case, ExerciseLimits, ExerciseRow,
    ExerciseSummary, MANAGE, MAX_CASE_BYTES, MAX_CASES,
};
use crate::{
    CodeExecState,
    http::{SubmissionIn, bounded, enqueue, runnable, timestamp, validate, wait_for, whole},
    judge::defaults as d,
    status::Status,
    store::{self, SubmissionRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/code-exec/exercises", web::get().to(list))
        .route("/api/v1/code-exec/exercises/{id}", web::put().to(put))
        .route("/api/v1/code-exec/exercises/{id}", web::get().to(get))
        .route("/api/v1/code-exec/exercises/{id}", web::delete().to(delete))
        .route(
            "/api/v1/code-exec/exercises/{id}/attempts",
            web::post().to(attempt),
        )
        .route(
            "/api/v1/code-exec/exercises/{id}/attempts",
            web::get().to(attempts),
        )
        .route(
            "/api/v1/code-exec/exercises/{id}/attempts/{attempt_id}",
            web::get().to(get_attempt),
        );
}

/// An exercise as its manager writes it.
#[derive(Debug, Clone, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct ExerciseIn {
    pub title: String,
    /// The languages it may be attempted in (ids of GET /languages); empty or absent: any.
    #[serde(default)]
    pub language_ids: Vec<i64>,
    /// 1 to 50 test cases, run in order.
    pub cases: Vec<CaseIn>,
    /// Seconds of CPU per case (Judge0's default when absent).
    pub cpu_time_limit: Option<f64>,
    /// Seconds of wall clock per case.
    pub wall_time_limit: Option<f64>,
    /// KB per case.
    pub memory_limit: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseIn {
    #[serde(default)]
    pub stdin: String,
    pub expected_output: String,
    /// A hidden case's input and expected output are shown to managers only, and an attempt
    /// shows its status alone: no output, time, memory or message.
    #[serde(default)]
    pub hidden: bool,
    /// What the case is worth, 1 to 1000 (1 when absent).
    pub points: Option<i64>,
}

/// An attempt: a program run against every case of the exercise.
#[derive(Debug, Clone, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct AttemptIn {
    pub source_code: String,
    pub language_id: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Exercises whose id sorts after this one (the last id of the previous page).
    pub after: Option<String>,
    /// 1 to 100 (50 when absent).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AttemptParams {
    /// `source_code` is base64.
    #[serde(default)]
    pub base64_encoded: bool,
    /// Answer once every case has its verdict (waits up to `code_exec.wait_timeout_secs`).
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AttemptsParams {
    /// Whose attempts (managers only; others always see their own).
    pub user_id: Option<String>,
    /// 1 to 100 (20 when absent).
    pub limit: Option<i64>,
}

/// An exercise as shown: a hidden case's `stdin` and `expected_output` only to managers.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ExerciseOut {
    pub id: String,
    pub title: String,
    pub version: i32,
    pub language_ids: Vec<i64>,
    pub cpu_time_limit: f64,
    pub wall_time_limit: f64,
    pub memory_limit: i64,
    pub max_score: i32,
    pub cases: Vec<CaseOut>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CaseOut {
    pub index: i32,
    pub hidden: bool,
    pub points: i32,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
}

/// An attempt as shown. `state` is queued, running or finished; score and passed once
/// finished. A hidden case shows its status alone.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AttemptOut {
    pub id: String,
    pub exercise_id: String,
    pub exercise_version: i32,
    pub user_id: String,
    pub language_id: i32,
    pub state: String,
    pub score: Option<i32>,
    pub max_score: i32,
    pub passed: Option<bool>,
    pub compile_output: Option<String>,
    pub cases: Vec<AttemptCaseOut>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AttemptCaseOut {
    pub index: i32,
    pub hidden: bool,
    pub points: i32,
    pub status: crate::http::StatusOut,
    /// Seconds of CPU (visible cases only).
    pub time: Option<f64>,
    /// KB (visible cases only).
    pub memory: Option<i64>,
    /// First 16 KiB (visible cases only).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub message: Option<String>,
}

fn is_manager(caller: &Caller) -> bool {
    caller.require_permission(MANAGE).is_ok()
}

/// Exercise ids: 1 to 64 letters, digits, `.`, `_` or `-`.
fn check_id(id: &str) -> AppResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "id",
            "must be 1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

fn status_json(id: i32) -> Value {
    let status = Status::from_id(id);
    json!({ "id": status.id(), "description": status.description() })
}

/// The exercise without its cases, as lists show it.
fn render_summary(row: &ExerciseSummary) -> AppResult<Value> {
    let limits = row.limits()?;
    Ok(json!({
        "id": row.id,
        "title": row.title,
        "version": row.version,
        "language_ids": row.language_ids()?,
        "cpu_time_limit": limits.cpu_time_limit.unwrap_or(d::CPU_TIME_LIMIT),
        "wall_time_limit": limits.wall_time_limit.unwrap_or(d::WALL_TIME_LIMIT),
        "memory_limit": limits.memory_limit.map_or(d::MEMORY_LIMIT, |m| m as u64),
        "case_count": row.case_count,
        "max_score": row.max_score,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    }))
}

/// The exercise with its cases: a hidden case's input and expected output for managers only.
fn render_exercise(row: &ExerciseRow, manager: bool) -> AppResult<Value> {
    let mut out = render_summary(&row.summary())?;
    let shown: Vec<Value> = row
        .cases()?
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut case = json!({ "index": i, "hidden": c.hidden, "points": c.points });
            if manager || !c.hidden {
                case["stdin"] = json!(c.stdin);
                case["expected_output"] = json!(c.expected_output);
            }
            case
        })
        .collect();
    out["cases"] = Value::Array(shown);
    Ok(out)
}

/// An attempt without its cases, as lists show it.
fn render_attempt_summary(row: &AttemptSummary, state: &str) -> Value {
    json!({
        "id": row.id,
        "exercise_id": row.exercise_id,
        "exercise_version": row.exercise_version,
        "user_id": row.user_id,
        "language_id": row.language_id,
        "state": state,
        "score": row.score,
        "max_score": row.max_score,
        "passed": row.passed,
        "created_at": timestamp(row.created_at),
        "finished_at": row.finished_at.map(timestamp),
    })
}

/// The attempt with each case's verdict once it is finished; `started` tells whether any case
/// of a running attempt has left the queue. Until then every case shows the attempt's state (In Queue, or
/// Processing once any case started), whatever it is doing: the moment a hidden case's status
/// changed would tell how long the program ran on its input, and so would the moment a visible
/// case started in the slot a hidden one freed.
fn render_attempt(row: &AttemptRow, started: bool) -> AppResult<Value> {
    let results = row.results()?;
    let queued = Status::InQueue.id() as i32;
    let (state, pending) = if row.finished_at.is_some() {
        ("finished", queued)
    } else if !started {
        ("queued", queued)
    } else {
        ("running", Status::Processing.id() as i32)
    };
    let mut out = render_attempt_summary(&row.summary(), state);
    let cases: Vec<Value> = results
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let status_id = c.verdict.as_ref().map_or(pending, |v| v.status_id);
            let mut case = json!({
                "index": i,
                "hidden": c.hidden,
                "points": c.points,
                "status": status_json(status_id),
            });
            if let (false, Some(v)) = (c.hidden, &c.verdict) {
                case["time"] = json!(v.time);
                case["memory"] = json!(v.memory);
                case["stdout"] = json!(v.stdout);
                case["stderr"] = json!(v.stderr);
                case["message"] = json!(v.message);
            }
            case
        })
        .collect();
    out["compile_output"] = json!(results.compile_output);
    out["cases"] = Value::Array(cases);
    Ok(out)
}

fn page(limit: Option<i64>, default: i64) -> AppResult<i64> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=100).contains(&l) => Ok(l),
        Some(_) => Err(AppError::invalid("limit", "must be from 1 to 100")),
    }
}

#[utoipa::path(get, path = "/api/v1/code-exec/exercises", tag = "code-exec", params(ListParams),
    responses((status = 200, description = "the tenant's exercises by id", body = [ExerciseOut]), (status = 422)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<CodeExecState>,
    caller: Caller,
    params: web::Query<ListParams>,
) -> AppResult<HttpResponse> {
    let limit = page(params.limit, 50)?;
    let (tenant, after) = (caller.tenant_id.clone(), params.after.clone());
    let rows = state
        .db
        .read(move |conn| super::list(conn, &tenant, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(render_summary)
            .collect::<AppResult<Vec<_>>>()?,
    ))
}

/// The exercise as stored, or every field that is wrong.
fn validate_exercise(
    state: &CodeExecState,
    caller: &Caller,
    id: &str,
    input: ExerciseIn,
) -> Result<ExerciseRow, Vec<FieldError>> {
    let mut errors = Vec::new();
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        errors.push(FieldError::new("title", "must be 1 to 200 characters"));
    }
    let mut language_ids = Vec::new();
    for (i, id) in input.language_ids.iter().enumerate() {
        match state.languages.iter().find(|l| i64::from(l.id) == *id) {
            Some(l) if !language_ids.contains(&l.id) => language_ids.push(l.id),
            Some(_) => errors.push(FieldError::new(
                format!("language_ids[{i}]"),
                "is named twice",
            )),
            None => errors.push(FieldError::new(
                format!("language_ids[{i}]"),
                format!("no language with id {id} (GET /languages lists them)"),
            )),
        }
    }
    if input.cases.is_empty() || input.cases.len() > MAX_CASES {
        errors.push(FieldError::new(
            "cases",
            format!("must hold 1 to {MAX_CASES} cases"),
        ));
    }
    let max = state.config.max_input_bytes;
    let total: usize = input
        .cases
        .iter()
        .map(|c| c.stdin.len() + c.expected_output.len())
        .sum();
    if total > MAX_CASE_BYTES {
        errors.push(FieldError::new(
            "cases",
            format!("hold {total} bytes of input and expected output; at most {MAX_CASE_BYTES}"),
        ));
    }
    let mut cases = Vec::new();
    for (i, case) in input.cases.into_iter().enumerate() {
        for (field, text) in [
            ("stdin", &case.stdin),
            ("expected_output", &case.expected_output),
        ] {
            if text.len() > max {
                errors.push(FieldError::new(
                    format!("cases[{i}].{field}"),
                    format!("is larger than {max} bytes"),
                ));
            }
        }
        let points = match case.points {
            None => 1,
            Some(p @ 1..=1000) => p as i32,
            Some(_) => {
                errors.push(FieldError::new(
                    format!("cases[{i}].points"),
                    "must be a whole number from 1 to 1000",
                ));
                1
            }
        };
        cases.push(Case {
            stdin: case.stdin,
            expected_output: case.expected_output,
            hidden: case.hidden,
            points,
        });
    }
    let limits = ExerciseLimits {
        cpu_time_limit: input.cpu_time_limit.map(|v| {
            bounded(
                "cpu_time_limit",
                Some(v),
                d::CPU_TIME_LIMIT,
                d::MAX_CPU_TIME_LIMIT,
                &mut errors,
            )
        }),
        wall_time_limit: input.wall_time_limit.map(|v| {
            bounded(
                "wall_time_limit",
                Some(v),
                d::WALL_TIME_LIMIT,
                d::MAX_WALL_TIME_LIMIT,
                &mut errors,
            )
        }),
        memory_limit: input.memory_limit.map(|v| {
            whole(
                "memory_limit",
                Some(v),
                d::MEMORY_LIMIT,
                d::MAX_MEMORY_LIMIT,
                &mut errors,
            ) as f64
        }),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let at = now();
    Ok(ExerciseRow {
        tenant_id: caller.tenant_id.clone(),
        id: id.to_owned(),
        title: title.to_owned(),
        language_ids: serde_json::to_string(&language_ids).unwrap_or_default(),
        case_count: cases.len() as i32,
        max_score: cases.iter().map(|c| c.points).sum(),
        cases: serde_json::to_string(&cases).unwrap_or_default(),
        limits: serde_json::to_string(&limits).unwrap_or_default(),
        version: 1,
        updated_by: caller.user_id.clone(),
        created_at: at,
        updated_at: at,
    })
}

#[utoipa::path(put, path = "/api/v1/code-exec/exercises/{id}", tag = "code-exec", request_body = ExerciseIn,
    params(("id" = String, Path, description = "1 to 64 letters, digits, '.', '_' or '-'")),
    responses((status = 201, description = "created", body = ExerciseOut),
        (status = 200, description = "replaced: a new version (attempts already made keep theirs)", body = ExerciseOut),
        (status = 403, description = "needs code-exec:manage"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put(
    state: web::Data<CodeExecState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<ExerciseIn>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    check_id(&id)?;
    let row = validate_exercise(&state, &caller, &id, body.0).map_err(AppError::Validation)?;
    let (row, created) = state
        .db
        .write(move |conn| {
            store::lock(conn, &super::lock_key(&row.tenant_id))?;
            super::put(conn, &row)
        })
        .await?;
    let body = render_exercise(&row, true)?;
    Ok(match created {
        true => HttpResponse::Created().json(body),
        false => HttpResponse::Ok().json(body),
    })
}

#[utoipa::path(get, path = "/api/v1/code-exec/exercises/{id}", tag = "code-exec",
    params(("id" = String, Path)),
    responses((status = 200, body = ExerciseOut), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<CodeExecState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let exercise = load(&state, &caller, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(render_exercise(&exercise, is_manager(&caller))?))
}

async fn load(state: &CodeExecState, caller: &Caller, id: String) -> AppResult<ExerciseRow> {
    let tenant = caller.tenant_id.clone();
    state
        .db
        .read(move |conn| super::get(conn, &tenant, &id))
        .await?
        .ok_or_else(|| AppError::not_found("exercise"))
}

#[utoipa::path(delete, path = "/api/v1/code-exec/exercises/{id}", tag = "code-exec",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted with its attempts"), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<CodeExecState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let (tenant, id) = (caller.tenant_id.clone(), id.into_inner());
    let deleted = state
        .db
        .write(move |conn| {
            store::lock(conn, &super::lock_key(&tenant))?;
            super::delete(conn, &tenant, &id)
        })
        .await?;
    match deleted {
        true => Ok(HttpResponse::NoContent().finish()),
        false => Err(AppError::not_found("exercise")),
    }
}

#[utoipa::path(post, path = "/api/v1/code-exec/exercises/{id}/attempts", tag = "code-exec",
    request_body = AttemptIn, params(("id" = String, Path), AttemptParams),
    responses((status = 201, description = "queued (or, with wait=true, scored)", body = AttemptOut),
        (status = 404), (status = 422), (status = 429, description = "the tenant's queue has no room for every case"),
        (status = 503, description = "this host cannot run programs")),
    security(("bearer" = [])))]
pub async fn attempt(
    state: web::Data<CodeExecState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<AttemptParams>,
    body: ValidJson<AttemptIn>,
) -> AppResult<HttpResponse> {
    runnable(&state)?;
    let exercise = load(&state, &caller, id.into_inner()).await?;
    let input = body.0;
    if exercise.case_count as u32 > state.config.max_queued_per_tenant {
        return Err(AppError::invalid(
            "cases",
            format!(
                "this exercise has {} cases and this tenant may queue {} runs at once",
                exercise.case_count, state.config.max_queued_per_tenant
            ),
        ));
    }
    let summary = exercise.summary();
    let allowed = summary.language_ids()?;
    if !allowed.is_empty() && !allowed.iter().any(|l| i64::from(*l) == input.language_id) {
        return Err(AppError::invalid(
            "language_id",
            format!("this exercise is attempted in languages {allowed:?}"),
        ));
    }
    let limits = summary.limits()?;
    let template = validate(
        &state,
        &caller,
        SubmissionIn {
            source_code: input.source_code,
            language_id: input.language_id,
            cpu_time_limit: limits.cpu_time_limit,
            wall_time_limit: limits.wall_time_limit,
            memory_limit: limits.memory_limit,
            ..SubmissionIn::default()
        },
        params.base64_encoded,
        "",
    )
    .map_err(AppError::Validation)?;
    let attempt_id = uuid::Uuid::now_v7().to_string();
    let cases = exercise.cases()?;
    let rows: Vec<SubmissionRow> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| SubmissionRow {
            token: uuid::Uuid::now_v7().to_string(),
            stdin: case.stdin.as_bytes().to_vec(),
            expected_output: Some(case.expected_output.as_bytes().to_vec()),
            attempt_id: Some(attempt_id.clone()),
            case_index: Some(i as i32),
            ..template.clone()
        })
        .collect();
    let attempt = AttemptRow {
        id: attempt_id.clone(),
        tenant_id: caller.tenant_id.clone(),
        exercise_id: exercise.id.clone(),
        exercise_version: exercise.version,
        user_id: caller.user_id.clone(),
        language_id: template.language_id,
        cases: serde_json::to_string(&AttemptResults {
            cases: cases
                .iter()
                .map(|c| AttemptCase {
                    hidden: c.hidden,
                    points: c.points,
                    verdict: None,
                })
                .collect(),
            compile_output: None,
        })
        .unwrap_or_default(),
        score: None,
        max_score: cases.iter().map(|c| c.points).sum(),
        passed: None,
        created_at: template.created_at,
        finished_at: None,
    };
    enqueue(&state, rows, Some(attempt)).await?;
    if params.wait {
        let (tenant, a) = (caller.tenant_id.clone(), attempt_id.clone());
        wait_for(&state, move |conn| {
            super::attempt_finished(conn, &tenant, &a)
        })
        .await;
    }
    let shown = read_attempt(&state, &caller, &exercise.id, &attempt_id).await?;
    Ok(HttpResponse::Created().json(shown))
}

/// The caller's attempt (or anyone's, for a manager) as shown; 404 otherwise.
async fn read_attempt(
    state: &CodeExecState,
    caller: &Caller,
    exercise_id: &str,
    attempt_id: &str,
) -> AppResult<Value> {
    let (tenant, e, a) = (
        caller.tenant_id.clone(),
        exercise_id.to_owned(),
        attempt_id.to_owned(),
    );
    let found = state
        .db
        .read(move |conn| {
            let Some(row) = super::get_attempt(conn, &tenant, &e, &a)? else {
                return Ok(None);
            };
            let started = row.finished_at.is_none() && super::started(conn, &row.id)?;
            Ok(Some((row, started)))
        })
        .await?;
    match found {
        Some((row, started)) if row.user_id == caller.user_id || is_manager(caller) => {
            render_attempt(&row, started)
        }
        _ => Err(AppError::not_found("attempt")),
    }
}

#[utoipa::path(get, path = "/api/v1/code-exec/exercises/{id}/attempts/{attempt_id}", tag = "code-exec",
    params(("id" = String, Path), ("attempt_id" = String, Path)),
    responses((status = 200, body = AttemptOut),
        (status = 404, description = "no such attempt of the caller's (managers see everyone's)")),
    security(("bearer" = [])))]
pub async fn get_attempt(
    state: web::Data<CodeExecState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (exercise_id, attempt_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(read_attempt(&state, &caller, &exercise_id, &attempt_id).await?))
}

#[utoipa::path(get, path = "/api/v1/code-exec/exercises/{id}/attempts", tag = "code-exec",
    params(("id" = String, Path), AttemptsParams),
    responses((status = 200, description = "attempts, newest first, without their cases", body = [AttemptOut]),
        (status = 403, description = "another user's attempts, asked by a non-manager"), (status = 422)),
    security(("bearer" = [])))]
pub async fn attempts(
    state: web::Data<CodeExecState>,
    caller: Caller,
    id: web::Path<String>,
    params: web::Query<AttemptsParams>,
) -> AppResult<HttpResponse> {
    let limit = page(params.limit, 20)?;
    let user = match (is_manager(&caller), params.user_id.clone()) {
        (true, user) => user,
        (false, Some(user)) if user != caller.user_id => {
            return Err(AppError::Forbidden(format!(
                "only holders of {MANAGE} may list another user's attempts"
            )));
        }
        (false, _) => Some(caller.user_id.clone()),
    };
    let (tenant, exercise) = (caller.tenant_id.clone(), id.into_inner());
    let rows = state
        .db
        .read(move |conn| super::list_attempts(conn, &tenant, &exercise, user.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(|r| {
                let state = if r.finished_at.is_some() {
                    "finished"
                } else {
                    "pending"
                };
                render_attempt_summary(r, state)
            })
            .collect::<Vec<_>>(),
    ))
}
