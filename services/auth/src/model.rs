//! Request and response bodies of the HTTP API (the wire contract), with their OpenAPI schemas.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use agora_shared::db::utc;
use validator::ValidationError;

use crate::store::{api_keys::ApiKeyRow, teams::TeamRow, tenants::TenantRow, users::UserRow};

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// PLATFORM_ADMIN, TENANT_ADMIN or TENANT_USER.
    pub role: String,
    pub tenant_id: String,
    /// ACTIVE, INACTIVE or INVITED.
    pub status: String,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&UserRow> for User {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role.to_string(),
            tenant_id: u.tenant_id.clone(),
            status: u.status.clone(),
            permissions: u.permissions(),
            created_at: utc(u.created_at),
            updated_at: utc(u.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// FREE, STARTER, PROFESSIONAL or ENTERPRISE.
    pub plan: String,
    /// ACTIVE or SUSPENDED.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&TenantRow> for Tenant {
    fn from(t: &TenantRow) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            plan: t.plan.clone(),
            status: t.status.clone(),
            created_at: utc(t.created_at),
            updated_at: utc(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub zone: String,
    pub skills: Vec<String>,
    pub daily_capacity: i32,
    pub member_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Team {
    pub fn new(t: &TeamRow, member_ids: Vec<String>) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            zone: t.zone.clone(),
            skills: t.skills.0.clone(),
            daily_capacity: t.daily_capacity,
            member_ids,
            created_at: utc(t.created_at),
            updated_at: utc(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&ApiKeyRow> for ApiKey {
    fn from(k: &ApiKeyRow) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            role: k.role.to_string(),
            expires_at: k.expires_at.map(utc),
            last_used_at: k.last_used_at.map(utc),
            created_at: utc(k.created_at),
        }
    }
}

/// A new API key; `key` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    pub name: String,
    pub key: String,
    pub prefix: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Tenant>,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitedUser {
    pub user: User,
    /// Single-use token for POST /auth/accept-invite; shown once.
    pub invitation_token: String,
    pub invitation_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    pub items: Vec<Tenant>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamPage {
    pub items: Vec<Team>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKey>,
    pub next_cursor: Option<String>,
}

/// The password policy as a field check: one message naming every broken rule.
fn password_policy(password: &str) -> Result<(), ValidationError> {
    let broken = crate::domain::check_password("password", password);
    if broken.is_empty() {
        return Ok(());
    }
    let rules: Vec<String> = broken.into_iter().map(|e| e.message).collect();
    Err(ValidationError::new("password_policy").with_message(rules.join("; ").into()))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    pub email: String,
    /// 8-128 characters with a lower-case letter, an upper-case letter, a digit and a symbol.
    #[validate(custom(function = "password_policy"))]
    pub password: String,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: String,
    #[validate(length(min = 2, max = 100, message = "must be 2 to 100 characters"))]
    pub tenant_name: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 254, message = "must be 1 to 254 characters"))]
    pub email: String,
    #[validate(length(min = 1, max = 1024, message = "must be 1 to 1024 characters"))]
    pub password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 512, message = "must be 1 to 512 characters"))]
    pub refresh_token: String,
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[validate(length(min = 1, max = 512, message = "must be 1 to 512 characters"))]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[validate(length(min = 1, max = 1024, message = "must be 1 to 1024 characters"))]
    pub current_password: String,
    #[validate(custom(function = "password_policy"))]
    pub new_password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    #[validate(email(message = "must be an email address"))]
    pub email: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[validate(length(min = 1, max = 512, message = "must be 1 to 512 characters"))]
    pub token: String,
    #[validate(custom(function = "password_policy"))]
    pub new_password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    #[validate(length(min = 1, max = 512, message = "must be 1 to 512 characters"))]
    pub token: String,
    #[validate(custom(function = "password_policy"))]
    pub password: String,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    #[validate(length(min = 2, max = 100, message = "must be 2 to 100 characters"))]
    pub name: String,
    /// Defaults to STARTER.
    pub plan: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    #[validate(length(min = 2, max = 100, message = "must be 2 to 100 characters"))]
    pub name: Option<String>,
    /// Platform admins only.
    pub plan: Option<String>,
    /// Platform admins only: ACTIVE or SUSPENDED.
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUserRequest {
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    pub email: String,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: String,
    /// TENANT_ADMIN or TENANT_USER.
    pub role: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: Option<String>,
    /// TENANT_ADMIN or TENANT_USER.
    pub role: Option<String>,
    /// ACTIVE or INACTIVE.
    pub status: Option<String>,
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: String,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub zone: String,
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 skills"))]
    pub skills: Vec<String>,
    /// Tickets a day the team can take; default 5.
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    pub daily_capacity: Option<i32>,
    #[serde(default)]
    #[validate(length(max = 500, message = "at most 500 members"))]
    pub member_ids: Vec<String>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeamRequest {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: Option<String>,
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub zone: Option<String>,
    #[validate(length(max = 50, message = "at most 50 skills"))]
    pub skills: Option<Vec<String>>,
    #[validate(range(min = 1, max = 1000, message = "must be between 1 and 1000"))]
    pub daily_capacity: Option<i32>,
    #[validate(length(max = 500, message = "at most 500 members"))]
    pub member_ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    #[validate(length(min = 1, max = 64, message = "must be a user id"))]
    pub user_id: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[validate(length(min = 1, max = 100, message = "must be 1 to 100 characters"))]
    pub name: String,
    /// TENANT_ADMIN or TENANT_USER, at most the creator's own role.
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
}
