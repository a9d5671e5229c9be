//! `/analytics/code`: what code-exec's events say of a tenant's programs — submissions and
//! their acceptance rate per language, and exercise attempts with their pass rate and score.

use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::Serialize;

use agora_shared::{AppResult, db::now, http::Caller};

use super::Scope;
use crate::{AnalyticsState, store::code};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/code", web::get().to(code_runs));
}

/// One language's Judge0 submissions in the range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LanguageFigures {
    pub language_id: i32,
    /// The language's name with its version, as code-exec last named it.
    pub language: String,
    pub runs: i64,
    /// Runs with status Accepted (3).
    pub accepted: i64,
    /// accepted / runs, 0-100.
    pub acceptance_rate_pct: f64,
    /// Mean CPU seconds a run.
    pub mean_cpu_time: Option<f64>,
}

/// Exercise attempts in the range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptFigures {
    pub attempts: i64,
    /// Attempts with every case accepted.
    pub passed: i64,
    /// passed / attempts, 0-100; null without attempts.
    pub pass_rate_pct: Option<f64>,
    /// Points scored over points possible, 0-100; null without attempts.
    pub mean_score_pct: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeReport {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub runs: i64,
    pub accepted: i64,
    /// Over every language, 0-100; null without runs.
    pub acceptance_rate_pct: Option<f64>,
    pub languages: Vec<LanguageFigures>,
    pub attempts: AttemptFigures,
}

fn pct(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 10_000.0 / whole as f64).round() / 100.0)
}

#[utoipa::path(get, path = "/api/v1/analytics/code", tag = "analytics", params(Scope),
    responses((status = 200, body = CodeReport), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn code_runs(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    scope: web::Query<Scope>,
) -> AppResult<HttpResponse> {
    let tenant_id = scope.tenant(&caller)?;
    let (from, to, window) = scope.window(now().date(), "30d")?;
    let (languages, attempts) = state
        .db
        .read(move |conn| {
            Ok((
                code::languages(conn, &tenant_id, window)?,
                code::attempts(conn, &tenant_id, window)?,
            ))
        })
        .await?;
    let runs: i64 = languages.iter().map(|l| l.runs).sum();
    let accepted: i64 = languages.iter().map(|l| l.accepted).sum();
    Ok(HttpResponse::Ok().json(CodeReport {
        from,
        to,
        runs,
        accepted,
        acceptance_rate_pct: pct(accepted, runs),
        languages: languages
            .into_iter()
            .map(|l| LanguageFigures {
                acceptance_rate_pct: pct(l.accepted, l.runs).unwrap_or(0.0),
                language_id: l.language_id,
                language: l.language,
                runs: l.runs,
                accepted: l.accepted,
                mean_cpu_time: l.mean_cpu_time.map(|t| (t * 1000.0).round() / 1000.0),
            })
            .collect(),
        attempts: AttemptFigures {
            pass_rate_pct: pct(attempts.passed, attempts.attempts),
            mean_score_pct: pct(attempts.score, attempts.max_score),
            attempts: attempts.attempts,
            passed: attempts.passed,
        },
    }))
}
