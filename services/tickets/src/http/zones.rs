//! `/tickets/zones`: the tenant's zones (defaults: Northern, Southern, Central, East Coast,
//! Borneo). Everyone reads; replacing them needs TENANT_ADMIN or `tickets:manage`.

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    http::{Caller, ValidJson},
};

use super::MANAGE;
use crate::{TicketsState, model::Zones, store};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tickets/zones", web::get().to(list))
        .route("/tickets/zones", web::put().to(replace));
}

#[utoipa::path(get, path = "/api/v1/tickets/zones", tag = "tickets",
    responses((status = 200, body = Zones)), security(("bearer" = [])))]
pub async fn list(state: web::Data<TicketsState>, caller: Caller) -> AppResult<HttpResponse> {
    let zones = state
        .db
        .read(move |conn| store::zones::list(conn, &caller.tenant_id))
        .await?;
    Ok(HttpResponse::Ok().json(Zones { zones }))
}

#[utoipa::path(put, path = "/api/v1/tickets/zones", tag = "tickets", request_body = Zones,
    responses((status = 200, body = Zones), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn replace(
    state: web::Data<TicketsState>,
    caller: Caller,
    body: ValidJson<Zones>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let mut zones: Vec<String> = Vec::new();
    for z in &body.0.zones {
        let z = z.trim();
        if z.is_empty() || z.chars().count() > 100 {
            return Err(AppError::invalid(
                "zones",
                "each zone must be 1 to 100 characters",
            ));
        }
        if !zones.iter().any(|have| have == z) {
            zones.push(z.to_owned());
        }
    }
    let saved = zones.clone();
    state
        .db
        .write(move |conn| store::zones::replace(conn, &caller.tenant_id, &saved))
        .await?;
    Ok(HttpResponse::Ok().json(Zones { zones }))
}
