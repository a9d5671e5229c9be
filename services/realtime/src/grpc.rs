//! gRPC `agora.realtime.v1.RealtimeService`: what other services publish to live clients.
//! Each call acts within its caller's tenant (a platform admin may name another) and needs the
//! same right as the HTTP admin API.

use std::sync::Arc;

use tonic::{Request, Response, Status, service::Routes};

use agora_proto::realtime::v1::{
    self as pb,
    realtime_service_server::{RealtimeService, RealtimeServiceServer},
};
use agora_shared::{
    AppError, grpc,
    http::{Authenticator, Caller},
};

use crate::{
    RealtimeState,
    channel::Key,
    hub::{ClientInfo, Position},
};

pub struct Grpc {
    state: Arc<RealtimeState>,
    auth: Authenticator,
}

/// gRPC routes of the realtime service, with `grpc.health.v1`.
pub fn routes(state: Arc<RealtimeState>, auth: Authenticator) -> Routes {
    let (reporter, health) = grpc::health();
    tokio::spawn(async move { reporter.set_serving::<RealtimeServiceServer<Grpc>>().await });
    Routes::new(health).add_service(RealtimeServiceServer::new(Grpc { state, auth }))
}

fn key(caller: &Caller, tenant: &str, name: &str) -> Result<Key, Status> {
    Ok(crate::http::managed(caller, tenant, name)?)
}

fn internal(err: anyhow::Error) -> Status {
    crate::http::unavailable(err).into()
}

fn info(i: ClientInfo) -> pb::ClientInfo {
    pb::ClientInfo {
        client: i.client,
        user_id: i.user_id,
        transport: i.transport,
    }
}

impl Grpc {
    fn data(&self, event: &str, data_json: &str) -> Result<serde_json::Value, Status> {
        if data_json.len() > self.state.config.max_message_bytes {
            return Err(AppError::invalid("data_json", "is too big").into());
        }
        let data = serde_json::from_str(data_json)
            .map_err(|e| AppError::invalid("data_json", format!("is not JSON: {e}")))?;
        crate::http::check_publication(&self.state.config, event, &data, "data_json")?;
        Ok(data)
    }
}

#[tonic::async_trait]
impl RealtimeService for Grpc {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let key = key(&caller, &r.tenant_id, &r.channel)?;
        let data = self.data(&r.event, &r.data_json)?;
        let (p, epoch) = self
            .state
            .hub
            .engine
            .publish(&key, &r.event, data, None)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::PublishResponse {
            offset: p.offset,
            epoch,
        }))
    }

    async fn broadcast(
        &self,
        request: Request<pb::BroadcastRequest>,
    ) -> Result<Response<pb::BroadcastResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        if r.channels.is_empty() || r.channels.len() > 100 {
            return Err(AppError::invalid("channels", "must name 1 to 100 channels").into());
        }
        let keys = r
            .channels
            .iter()
            .map(|c| key(&caller, &r.tenant_id, c))
            .collect::<Result<Vec<_>, _>>()?;
        let data = self.data(&r.event, &r.data_json)?;
        let mut positions = Vec::with_capacity(keys.len());
        for key in keys {
            let (p, epoch) = self
                .state
                .hub
                .engine
                .publish(&key, &r.event, data.clone(), None)
                .await
                .map_err(internal)?;
            positions.push(pb::PublishResponse {
                offset: p.offset,
                epoch,
            });
        }
        Ok(Response::new(pb::BroadcastResponse { positions }))
    }

    async fn presence(
        &self,
        request: Request<pb::PresenceRequest>,
    ) -> Result<Response<pb::PresenceResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let key = key(&caller, &r.tenant_id, &r.channel)?;
        let clients = self
            .state
            .hub
            .engine
            .presence(&key)
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::PresenceResponse {
            clients: clients.into_iter().map(info).collect(),
        }))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let key = key(&caller, &r.tenant_id, &r.channel)?;
        let since = (!r.since_epoch.is_empty()).then(|| Position {
            offset: r.since_offset,
            epoch: r.since_epoch.clone(),
        });
        // proto3's 0 is "not set": everything kept.
        let asked = (r.limit != 0).then_some(r.limit as usize);
        let limit = self.state.config.history_limit(asked);
        let h = self
            .state
            .hub
            .engine
            .history(&key, since.as_ref(), limit)
            .await
            .map_err(internal)?;
        if since.is_some() && !h.complete {
            return Err(Status::failed_precondition(crate::http::LOST_POSITION));
        }
        Ok(Response::new(pb::HistoryResponse {
            publications: h
                .publications
                .into_iter()
                .map(|p| pb::Publication {
                    offset: p.offset,
                    event: p.event,
                    data_json: p.data.to_string(),
                    info: p.info.map(info),
                })
                .collect(),
            offset: h.position.offset,
            epoch: h.position.epoch,
        }))
    }
}
