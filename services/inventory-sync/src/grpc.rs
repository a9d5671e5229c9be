//! gRPC `agora.inventory.v1.InventoryService` for other services: the same reads as the HTTP
//! API, under the same tenant rules.

use std::sync::Arc;

use tonic::{Request, Response, Status, service::Routes};

use agora_proto::inventory::v1::{
    self as pb,
    inventory_service_server::{InventoryService, InventoryServiceServer},
};
use agora_shared::{
    AppError, grpc,
    http::{Authenticator, Caller, Page, PageParams},
};

use crate::{
    InventoryState,
    events::{discrepancy_message, item_message},
    http::{choice, load_item},
    store::{self, discrepancies::DiscrepancyFilter},
};

/// The service implementation.
pub struct Grpc {
    state: Arc<InventoryState>,
    auth: Authenticator,
}

/// gRPC routes of the inventory-sync service, with `grpc.health.v1`.
pub fn routes(state: Arc<InventoryState>, auth: Authenticator) -> Routes {
    let (reporter, health) = grpc::health();
    tokio::spawn(async move { reporter.set_serving::<InventoryServiceServer<Grpc>>().await });
    Routes::new(health).add_service(InventoryServiceServer::new(Grpc { state, auth }))
}

/// The tenant a request is about: the caller's own unless a platform admin names another.
fn tenant(caller: &Caller, requested: &str) -> Result<String, AppError> {
    caller.tenant_to_read(requested, "inventory")
}

fn text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[tonic::async_trait]
impl InventoryService for Grpc {
    async fn get_item(
        &self,
        request: Request<pb::GetItemRequest>,
    ) -> Result<Response<pb::Item>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let tenant_id = tenant(&caller, &r.tenant_id)?;
        let row = self
            .state
            .db
            .read(move |conn| load_item(conn, &tenant_id, &r.id))
            .await?;
        Ok(Response::new(item_message(&row)))
    }

    async fn list_discrepancies(
        &self,
        request: Request<pb::ListDiscrepanciesRequest>,
    ) -> Result<Response<pb::ListDiscrepanciesResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let tenant_id = tenant(&caller, &r.tenant_id)?;
        let page = PageParams {
            limit: (r.limit != 0).then_some(i64::from(r.limit)),
            cursor: text(&r.cursor),
        };
        let (limit, before) = (page.limit()?, page.after()?);
        let filter = DiscrepancyFilter {
            status: choice("status", text(&r.status).as_deref())?,
            sku: text(&r.sku),
            ..Default::default()
        };
        let page = self
            .state
            .db
            .read(move |conn| {
                let rows = store::discrepancies::list(
                    conn,
                    &tenant_id,
                    &filter,
                    before.as_deref(),
                    limit,
                )?;
                Ok(Page::from_rows(rows, limit, |r| r.id.clone()))
            })
            .await?;
        Ok(Response::new(pb::ListDiscrepanciesResponse {
            discrepancies: page.items.iter().map(discrepancy_message).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }
}
