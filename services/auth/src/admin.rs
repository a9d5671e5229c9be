//! Administrative operations used by the `agora` binary: the first platform admin and
//! `agora admin create-user`.

use agora_shared::{
    AppError, AppResult,
    db::{Db, now},
    http::Role,
};

use crate::{
    domain, events,
    store::{self, tenants::TenantRow, users::UserRow},
};

/// Creates the platform tenant and a platform admin unless one exists. Returns the password
/// when it was generated (to be printed once).
pub async fn bootstrap_platform_admin(
    db: &Db,
    email: Option<&str>,
    password: Option<&str>,
) -> anyhow::Result<Option<(String, Option<String>)>> {
    if db.read(store::users::any_platform_admin).await? {
        return Ok(None);
    }
    let email = email.map_or_else(|| "admin@agora.local".to_owned(), domain::normalize_email);
    let (password, generated) = match password {
        Some(p) => (p.to_owned(), None),
        None => {
            let p = format!("Ag{}!1", &domain::random_secret("")[..20]);
            (p.clone(), Some(p))
        }
    };
    create_user(
        db,
        &email,
        &password,
        "Platform admin",
        Role::PlatformAdmin,
        domain::PLATFORM_TENANT,
    )
    .await?;
    Ok(Some((email, generated)))
}

/// Creates an active user with a password in tenant `tenant_name` (created if missing).
pub async fn create_user(
    db: &Db,
    email: &str,
    password: &str,
    name: &str,
    role: Role,
    tenant_name: &str,
) -> anyhow::Result<String> {
    let broken = domain::check_password("password", password);
    if !broken.is_empty() {
        let rules: Vec<_> = broken.iter().map(|e| e.message.as_str()).collect();
        anyhow::bail!("password {}", rules.join(", "));
    }
    let email = domain::normalize_email(email);
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || domain::hash_password(&owned)).await??;
    let (name, tenant_name) = (name.to_owned(), tenant_name.to_owned());
    let id = db
        .write(move |conn| -> AppResult<String> {
            let tenant = match store::tenants::find_by_name(conn, &tenant_name)? {
                // Never hand a platform admin to a tenant that holds anyone else.
                Some(t)
                    if role == Role::PlatformAdmin
                        && store::users::holds_others_than_platform_admins(conn, &t.id)? =>
                {
                    return Err(AppError::Conflict(format!(
                        "tenant {tenant_name:?} holds users who are not platform admins"
                    )));
                }
                Some(t) => t,
                None => {
                    let t = TenantRow {
                        id: uuid::Uuid::now_v7().to_string(),
                        name: tenant_name.clone(),
                        name_key: store::tenants::name_key(&tenant_name),
                        plan: if role == Role::PlatformAdmin {
                            "ENTERPRISE".into()
                        } else {
                            domain::DEFAULT_PLAN.into()
                        },
                        status: domain::TENANT_ACTIVE.into(),
                        created_at: now(),
                        updated_at: now(),
                    };
                    store::tenants::insert(conn, &t)?;
                    events::tenant_changed(conn, "tenant.created", &t)?;
                    t
                }
            };
            if store::users::email_taken(conn, &email)? {
                return Err(AppError::Conflict(format!(
                    "a user with email {email} already exists"
                )));
            }
            let user = UserRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.id,
                email,
                name,
                password_hash: Some(hash),
                role,
                status: domain::USER_ACTIVE.into(),
                permissions: Default::default(),
                created_at: now(),
                updated_at: now(),
            };
            store::users::insert(conn, &user)?;
            events::user_changed(conn, "user.created", &user, None)?;
            Ok(user.id)
        })
        .await?;
    Ok(id)
}

/// Issues short-lived platform-admin access tokens for another service of this process, so it
/// can call peers' gRPC APIs on its own behalf (embedded mode: analytics backfilling from
/// tickets). Each call signs a fresh token with the current key; the subject is
/// `service:<name>`, a principal no user can log in as.
pub fn service_token_issuer(
    keyring: std::sync::Arc<crate::keys::Keyring>,
    service: &str,
) -> impl Fn() -> anyhow::Result<String> + Send + Sync + 'static {
    let subject = format!("service:{service}");
    move || {
        let signer = keyring.signer();
        let (token, _) = signer.issue(&agora_shared::tokens::Subject {
            user_id: &subject,
            tenant_id: domain::PLATFORM_TENANT,
            role: Role::PlatformAdmin.as_str(),
            permissions: &[],
            email: "",
            session_id: None,
            plan: None,
        })?;
        Ok(token)
    }
}
