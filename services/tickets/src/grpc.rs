//! gRPC `agora.tickets.v1.TicketService` for analytics and ai: the same reads as the HTTP API,
//! under the same tenant rules.

use std::sync::Arc;

use tonic::{Request, Response, Status, service::Routes};

use agora_proto::tickets::v1::{
    self as pb,
    ticket_service_server::{TicketService, TicketServiceServer},
};
use agora_shared::{
    AppError, grpc,
    http::{Authenticator, Caller, PageParams},
};

use crate::{
    TicketsState,
    events::ticket_message,
    listing::{self, ListQuery},
    model::Summary,
    store,
};

/// The service implementation.
pub struct Grpc {
    state: Arc<TicketsState>,
    auth: Authenticator,
}

/// gRPC routes of the tickets service, with `grpc.health.v1`.
pub fn routes(state: Arc<TicketsState>, auth: Authenticator) -> Routes {
    let (reporter, health) = grpc::health();
    tokio::spawn(async move { reporter.set_serving::<TicketServiceServer<Grpc>>().await });
    Routes::new(health).add_service(TicketServiceServer::new(Grpc { state, auth }))
}

/// The tenant a request is about: the caller's own unless a platform admin names another.
fn tenant(caller: &Caller, requested: &str) -> Result<String, AppError> {
    caller.tenant_to_read(requested, "tickets")
}

fn joined(values: &[String]) -> Option<String> {
    (!values.is_empty()).then(|| values.join(","))
}

fn text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

impl From<&pb::ListTicketsRequest> for ListQuery {
    fn from(r: &pb::ListTicketsRequest) -> Self {
        Self {
            status: joined(&r.status),
            priority: joined(&r.priority),
            category: joined(&r.category),
            zone: text(&r.zone),
            team_id: text(&r.team_id),
            assignee_id: text(&r.assignee_id),
            sla_status: text(&r.sla_status),
            created_from: text(&r.created_from),
            created_to: text(&r.created_to),
            q: text(&r.q),
            sort: text(&r.sort),
            page: PageParams {
                limit: (r.limit != 0).then_some(i64::from(r.limit)),
                cursor: text(&r.cursor),
            },
        }
    }
}

#[tonic::async_trait]
impl TicketService for Grpc {
    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let tenant_id = tenant(&caller, &r.tenant_id)?;
        let row = self
            .state
            .db
            .read(move |conn| crate::http::load(conn, &tenant_id, &r.id))
            .await?;
        Ok(Response::new(ticket_message(&row, agora_shared::db::now())))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let tenant_id = tenant(&caller, &r.tenant_id)?;
        let listing = ListQuery::from(&r).parse()?;
        let at = agora_shared::db::now();
        let page = listing::load(&self.state.db, tenant_id, listing, at).await?;
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: page.items.iter().map(|t| ticket_message(t, at)).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::TicketStats>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let tenant_id = tenant(&caller, &request.get_ref().tenant_id)?;
        let at = agora_shared::db::now();
        let stats = self
            .state
            .db
            .read(move |conn| store::tickets::stats(conn, &tenant_id, at))
            .await?;
        let mean = stats.mean_time_to_complete_secs.unwrap_or(0.0);
        let s = Summary::from(stats);
        let map = |m: std::collections::BTreeMap<String, i64>| m.into_iter().collect();
        Ok(Response::new(pb::TicketStats {
            total: s.total,
            by_status: map(s.by_status),
            by_priority: map(s.by_priority),
            by_category: map(s.by_category),
            by_zone: map(s.by_zone),
            by_sla_status: map(s.by_sla_status),
            completed: s.completed,
            mean_time_to_complete_secs: mean,
        }))
    }

    async fn list_ticket_tenants(
        &self,
        request: Request<pb::ListTicketTenantsRequest>,
    ) -> Result<Response<pb::ListTicketTenantsResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        if !caller.is_platform_admin() {
            return Err(AppError::Forbidden("only platform admins may list tenants".into()).into());
        }
        let tenant_ids = self.state.db.read(store::tickets::tenants).await?;
        Ok(Response::new(pb::ListTicketTenantsResponse { tenant_ids }))
    }
}
