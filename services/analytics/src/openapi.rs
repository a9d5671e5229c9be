//! The service's OpenAPI document, served at `/openapi.json` (the gateway merges it).

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{domain, http, planning, query, scrape, store};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora analytics", description = "Field-force metrics from the event bus: queries, performance, trends, zones, ageing, forecasts and dashboards."),
    paths(
        http::query_api::run,
        http::performance::performance, http::trends::trends, http::zones::zones,
        http::inventory::inventory,
        http::code::code_runs,
        http::zones::aging,
        http::forecast::get_forecast, http::forecast::get_factors, http::forecast::put_factors,
        http::dashboard::overview, http::dashboard::activities, http::dashboard::performance,
    ),
    components(schemas(
        http::query_api::QueryDoc, http::query_api::QueryResult, http::query_api::Meta, query::Row,
        http::performance::PerformanceReport, http::performance::TeamPerformance,
        http::trends::TrendReport, http::trends::TrendDay, http::trends::Trend,
        http::zones::ZoneReport, http::zones::AgingReport,
        http::inventory::InventoryReport, http::inventory::CurrencyFigures,
        http::code::CodeReport, http::code::LanguageFigures, http::code::AttemptFigures,
        planning::ForecastReport, planning::Series, planning::Point, planning::ZonePlan,
        domain::Factors, domain::Plan,
        http::dashboard::Overview, http::dashboard::EventCount, store::activities::ActivityRow, http::dashboard::ActivityPage,
        scrape::Performance, scrape::ServicePerformance, scrape::TargetStatus,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
