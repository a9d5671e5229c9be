//! The authenticated caller. A request proves who it is with an access JWT
//! (`Authorization: Bearer <jwt>`) or an API key (`Authorization: Bearer agk_...` or
//! `X-API-Key: agk_...`); presenting two different credentials is refused.

use std::{fmt, future::Future, pin::Pin, str::FromStr, sync::Arc};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    error::AppError,
    tokens::{REVOCATION_CHECKED, Revocation, RevocationCheck, Verifier},
};

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "agk_";

/// Platform-wide roles (stored as text: see [`crate::text_column!`]).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    TenantUser,
    TenantAdmin,
    PlatformAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "PLATFORM_ADMIN",
            Self::TenantAdmin => "TENANT_ADMIN",
            Self::TenantUser => "TENANT_USER",
        }
    }
}

crate::text_column!(Role);

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PLATFORM_ADMIN" => Ok(Self::PlatformAdmin),
            "TENANT_ADMIN" => Ok(Self::TenantAdmin),
            "TENANT_USER" => Ok(Self::TenantUser),
            _ => Err("must be one of PLATFORM_ADMIN, TENANT_ADMIN, TENANT_USER".into()),
        }
    }
}

/// How the caller authenticated. `Debug` never shows the secret itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token with its id and expiry (unix seconds).
    Jwt {
        jti: String,
        exp: i64,
        session_id: Option<String>,
        token: String,
    },
    /// An API key: its id, and the key itself so calls made on the caller's behalf can
    /// present it again.
    ApiKey { key_id: String, key: String },
}

impl Credential {
    /// The credential as an `Authorization` header value, to forward on the caller's behalf.
    pub fn authorization(&self) -> String {
        match self {
            Self::Jwt { token, .. } => format!("Bearer {token}"),
            Self::ApiKey { key, .. } => format!("Bearer {key}"),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwt {
                jti,
                exp,
                session_id,
                ..
            } => f
                .debug_struct("Jwt")
                .field("jti", jti)
                .field("exp", exp)
                .field("session_id", session_id)
                .finish_non_exhaustive(),
            Self::ApiKey { key_id, .. } => f
                .debug_struct("ApiKey")
                .field("key_id", key_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Who is calling, as proven by a verified credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user (for API keys: the user who created the key).
    pub user_id: String,
    pub tenant_id: String,
    pub role: Role,
    pub permissions: Vec<String>,
    pub email: String,
    /// The tenant's plan, when the credential says.
    pub plan: Option<String>,
    pub credential: Credential,
}

impl Caller {
    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::PlatformAdmin
    }

    /// At least `role` (platform admin > tenant admin > tenant user).
    pub fn require_role(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("requires role {role}")))
        }
    }

    /// A signed-in user, not an API key: what hands out access (inviting users, changing roles,
    /// minting keys) is never done by a key, so a key cannot outgrow the rights it was made with.
    pub fn require_session(&self, action: &str) -> Result<(), AppError> {
        match self.credential {
            Credential::Jwt { .. } => Ok(()),
            Credential::ApiKey { .. } => Err(AppError::Forbidden(format!(
                "{action} needs a signed-in user, not an API key"
            ))
            .with_code("auth.session_required")),
        }
    }

    /// Tenant admin (or above) or holder of `permission`.
    pub fn require_permission(&self, permission: &str) -> Result<(), AppError> {
        if self.role >= Role::TenantAdmin || self.permissions.iter().any(|p| p == permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "requires TENANT_ADMIN or permission {permission}"
            )))
        }
    }

    /// The tenant a read is about: the caller's own when `requested` is empty or theirs, another
    /// only for a platform admin (403 naming `what` otherwise).
    pub fn tenant_to_read(&self, requested: &str, what: &str) -> Result<String, AppError> {
        if requested.is_empty() || requested == self.tenant_id {
            Ok(self.tenant_id.clone())
        } else if self.is_platform_admin() {
            Ok(requested.to_owned())
        } else {
            Err(AppError::Forbidden(format!(
                "only platform admins may read another tenant's {what}"
            )))
        }
    }

    /// Whether the caller may act within `tenant_id`.
    pub fn can_access_tenant(&self, tenant_id: &str) -> bool {
        self.is_platform_admin() || self.tenant_id == tenant_id
    }
}

/// Resolves API keys to callers (the auth service locally; others over gRPC).
#[async_trait]
pub trait ApiKeyResolver: Send + Sync {
    /// `Ok(None)` for unknown, revoked or expired keys.
    async fn resolve(&self, key: &str) -> Result<Option<Caller>, AppError>;
}

/// Verifies credentials; placed in app data as `web::Data<Authenticator>`.
#[derive(Clone)]
pub struct Authenticator {
    pub verifier: Arc<Verifier>,
    pub api_keys: Option<Arc<dyn ApiKeyResolver>>,
}

impl Authenticator {
    /// Authenticates from raw header values.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
    ) -> Result<Caller, AppError> {
        self.authenticate_with(authorization, x_api_key, Revocation::Check)
            .await
            .map(|(caller, _)| caller)
    }

    /// `authenticate`, with what `revocation` says about an access token's revocation check
    /// (returned when deferred; API keys are checked by auth and never defer).
    pub async fn authenticate_with(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
        revocation: Revocation<'_>,
    ) -> Result<(Caller, Option<RevocationCheck>), AppError> {
        let bearer = match authorization {
            Some(value) => {
                let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
                if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
                    return Err(AppError::Unauthorized(
                        "Authorization must be `Bearer <token>`".into(),
                    ));
                }
                Some(rest.trim())
            }
            None => None,
        };
        let credential = match (bearer, x_api_key.map(str::trim)) {
            (Some(a), Some(b)) if a != b => {
                return Err(AppError::Unauthorized(
                    "two different credentials presented".into(),
                ));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => return Err(AppError::Unauthorized("authentication required".into())),
        };
        if credential.starts_with(API_KEY_PREFIX) {
            let resolver = self
                .api_keys
                .as_ref()
                .ok_or_else(|| AppError::Unauthorized("API keys are not accepted here".into()))?;
            return resolver
                .resolve(credential)
                .await?
                .map(|caller| (caller, None))
                .ok_or_else(|| AppError::Unauthorized("invalid API key".into()));
        }
        if bearer.is_none() {
            return Err(AppError::Unauthorized(
                "X-API-Key must hold an API key".into(),
            ));
        }
        let (claims, check) = self.verifier.verify_with(credential, revocation).await?;
        let role = claims
            .role
            .parse()
            .map_err(|_| AppError::Unauthorized("invalid access token: unknown role".into()))?;
        let caller = Caller {
            user_id: claims.sub,
            tenant_id: claims.tid,
            role,
            permissions: claims.perms,
            email: claims.email,
            plan: claims.plan,
            credential: Credential::Jwt {
                jti: claims.jti,
                exp: claims.exp,
                session_id: claims.sid,
                token: credential.to_owned(),
            },
        };
        Ok((caller, check))
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let auth = req
            .app_data::<actix_web::web::Data<Authenticator>>()
            .cloned();
        let header_value = |name| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
        };
        let authorization = header_value(header::AUTHORIZATION);
        let api_key = header_value(header::HeaderName::from_static("x-api-key"));
        let vouch = header_value(header::HeaderName::from_static(REVOCATION_CHECKED));
        Box::pin(async move {
            let auth = auth.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("Authenticator missing from app data"))
            })?;
            let (caller, _) = auth
                .authenticate_with(
                    authorization.as_deref(),
                    api_key.as_deref(),
                    Revocation::Vouched(vouch.as_deref()),
                )
                .await?;
            Ok(caller)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let jwt = Credential::Jwt {
            jti: "j".into(),
            exp: 1,
            session_id: None,
            token: "secret-token".into(),
        };
        let key = Credential::ApiKey {
            key_id: "k".into(),
            key: "agk_secret".into(),
        };
        assert!(!format!("{jwt:?}{key:?}").contains("secret"));
        assert_eq!(key.authorization(), "Bearer agk_secret");
    }

    #[test]
    fn role_order_and_parse() {
        assert!(Role::PlatformAdmin > Role::TenantAdmin);
        assert!(Role::TenantAdmin > Role::TenantUser);
        assert_eq!("TENANT_ADMIN".parse::<Role>(), Ok(Role::TenantAdmin));
        assert!("ROOT".parse::<Role>().is_err());
    }
}
