//! gRPC `agora.auth.v1.AuthService` for other services.

use std::sync::Arc;

use tonic::{Request, Response, Status, service::Routes};

use agora_proto::auth::v1::{
    self as pb,
    auth_service_server::{AuthService, AuthServiceServer},
};
use agora_shared::{
    AppError,
    config::{PEER_SECRET_HEADER, Secret},
    grpc,
    http::{ApiKeyResolver, Authenticator, Credential, PageParams},
};

use crate::{
    AuthState,
    store::{self, teams::TeamRow, users::UserRow},
};

/// The service implementation.
pub struct Grpc {
    state: Arc<AuthState>,
    auth: Authenticator,
    /// What a peer presents to verify API keys (`auth_peer.secret`).
    peer_secret: Option<Secret>,
}

/// gRPC routes of the auth service, with `grpc.health.v1`.
pub fn routes(state: Arc<AuthState>, auth: Authenticator, peer_secret: Option<Secret>) -> Routes {
    let (reporter, health) = grpc::health();
    tokio::spawn(async move { reporter.set_serving::<AuthServiceServer<Grpc>>().await });
    Routes::new(health).add_service(AuthServiceServer::new(Grpc {
        state,
        auth,
        peer_secret,
    }))
}

impl Grpc {
    /// Refuses callers without the peer secret (constant-time comparison): these RPCs are for
    /// the services, not a credential oracle for whoever reaches this port.
    fn require_peer<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request
            .metadata()
            .get(PEER_SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        match &self.peer_secret {
            Some(secret) if secret.matches(presented) => Ok(()),
            _ => Err(Status::unauthenticated(
                "auth's RPCs are for Agora's services: present the peer secret (auth_peer.secret)",
            )),
        }
    }
}

fn user_message(u: &UserRow) -> pb::User {
    pb::User {
        id: u.id.clone(),
        tenant_id: u.tenant_id.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        role: u.role.to_string(),
        status: u.status.clone(),
        permissions: u.permissions(),
    }
}

fn team_message(t: &TeamRow, member_ids: Vec<String>) -> pb::Team {
    pb::Team {
        id: t.id.clone(),
        tenant_id: t.tenant_id.clone(),
        name: t.name.clone(),
        zone: t.zone.clone(),
        skills: t.skills.0.clone(),
        daily_capacity: t.daily_capacity,
        member_ids,
    }
}

#[tonic::async_trait]
impl AuthService for Grpc {
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.require_peer(&request)?;
        let caller = grpc::caller(&self.auth, &request).await?;
        let id = request.into_inner().user_id;
        let user = self
            .state
            .db
            .read(move |conn| store::users::get(conn, &id))
            .await?
            .filter(|u| caller.can_access_tenant(&u.tenant_id))
            .ok_or_else(|| AppError::not_found("user"))?;
        Ok(Response::new(user_message(&user)))
    }

    async fn get_team(
        &self,
        request: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::Team>, Status> {
        self.require_peer(&request)?;
        let caller = grpc::caller(&self.auth, &request).await?;
        let id = request.into_inner().team_id;
        let team = self
            .state
            .db
            .read(move |conn| {
                let team = store::teams::get(conn, &caller.tenant_id, &id)?
                    .ok_or_else(|| AppError::not_found("team"))?;
                let members = store::teams::members(conn, &team.id)?;
                Ok(team_message(&team, members))
            })
            .await?;
        Ok(Response::new(team))
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        self.require_peer(&request)?;
        let caller = grpc::caller(&self.auth, &request).await?;
        let req = request.into_inner();
        let page = PageParams {
            limit: (req.limit > 0).then_some(req.limit.into()),
            cursor: (!req.cursor.is_empty()).then_some(req.cursor),
        };
        let (limit, after) = (page.limit()?, page.after()?);
        let zone = (!req.zone.is_empty()).then_some(req.zone);
        let resp = self
            .state
            .db
            .read(move |conn| {
                let rows = store::teams::list(
                    conn,
                    &caller.tenant_id,
                    zone.as_deref(),
                    after.as_deref(),
                    limit,
                )?;
                let page = agora_shared::http::Page::from_rows(rows, limit, |t| t.id.clone());
                let mut teams = Vec::with_capacity(page.items.len());
                for t in &page.items {
                    teams.push(team_message(t, store::teams::members(conn, &t.id)?));
                }
                Ok(pb::ListTeamsResponse {
                    teams,
                    next_cursor: page.next_cursor.unwrap_or_default(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn verify_api_key(
        &self,
        request: Request<pb::VerifyApiKeyRequest>,
    ) -> Result<Response<pb::VerifyApiKeyResponse>, Status> {
        self.require_peer(&request)?;
        let key = request.into_inner().key;
        let resp = match self.state.resolve(&key).await? {
            Some(caller) => pb::VerifyApiKeyResponse {
                valid: true,
                key_id: match caller.credential {
                    Credential::ApiKey { key_id, .. } => key_id,
                    Credential::Jwt { .. } => String::new(),
                },
                tenant_id: caller.tenant_id,
                role: caller.role.as_str().into(),
                permissions: caller.permissions,
                user_id: caller.user_id,
                email: caller.email,
            },
            None => pb::VerifyApiKeyResponse::default(),
        };
        Ok(Response::new(resp))
    }

    async fn get_jwks(
        &self,
        _: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json: self.state.keyring.jwks().to_string(),
        }))
    }
}
