//! Sessions: login with throttling, refresh-token rotation with reuse detection, logout.
//! A session is a refresh-token family; every refresh replaces the presented token with a new
//! one of the same family, and presenting a used token again revokes the family.

use std::{net::IpAddr, sync::Arc, time::Duration};

use serde_json::json;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
    http::{Caller, Credential},
    tokens::{Signer, Subject},
};

use crate::{
    AuthState, domain,
    model::{self, TokenResponse},
    store::{self, audit::Audit, sessions::RefreshRow, tenants::TenantRow, users::UserRow},
};

/// Tokens of a new or continued session.
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Issues an access token and a refresh token in `family` (a new family when `None`).
pub fn issue(
    conn: &mut DbConnection,
    signer: &Signer,
    refresh_ttl: Duration,
    user: &UserRow,
    family: Option<&str>,
) -> AppResult<Issued> {
    let family = family.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let refresh_token = domain::random_secret("rt_");
    let created = now();
    store::sessions::insert_refresh(
        conn,
        &RefreshRow {
            id: uuid::Uuid::now_v7().to_string(),
            family_id: family.clone(),
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            token_hash: domain::secret_hash(&refresh_token),
            expires_at: created + chrono::Duration::seconds(refresh_ttl.as_secs() as i64),
            used_at: None,
            revoked_at: None,
            created_at: created,
        },
    )?;
    let permissions = user.permissions();
    let plan = store::tenants::get(conn, &user.tenant_id)?.map(|t| t.plan);
    let (access_token, _) = signer.issue(&Subject {
        user_id: &user.id,
        tenant_id: &user.tenant_id,
        role: user.role.as_str(),
        permissions: &permissions,
        email: &user.email,
        session_id: Some(&family),
        plan: plan.as_deref(),
    })?;
    Ok(Issued {
        access_token,
        refresh_token,
        expires_in: signer.ttl().as_secs(),
    })
}

pub fn response(user: &UserRow, tenant: Option<&TenantRow>, issued: Issued) -> TokenResponse {
    TokenResponse {
        user: model::User::from(user),
        tenant: tenant.map(model::Tenant::from),
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        token_type: "Bearer".into(),
        expires_in: issued.expires_in,
    }
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized("invalid email or password".into())
}

enum LoginOutcome {
    Ok(Box<TokenResponse>),
    Failed,
    Suspended,
}

/// 403 for a user of a suspended tenant (told only after the right password).
pub fn tenant_suspended() -> AppError {
    AppError::Forbidden("this tenant is suspended".into()).with_code("auth.tenant_suspended")
}

/// Checks the password (off the async runtime) and opens a session. Unknown emails and wrong
/// passwords answer the same 401 after the same work; repeated failures lock the email out for
/// a doubling time (429 with Retry-After). Each attempt is reserved before its password is
/// checked, so concurrent guesses get no more tries than sequential ones.
pub async fn login(
    state: &Arc<AuthState>,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> AppResult<TokenResponse> {
    let email = domain::normalize_email(email);
    let lookup = email.clone();
    // Lockouts are per account and client address, so that nobody can lock anyone out.
    let key = store::sessions::throttle_key(&email, ip);
    let throttled = key.clone();
    let threshold = state.config.lockout_threshold as i32;
    let base = chrono::Duration::seconds(state.config.lockout_base_secs as i64);
    let (attempt, user) = state
        .db
        .write(move |conn| {
            let attempt = store::sessions::reserve_attempt(conn, &throttled, threshold, base)?;
            Ok((attempt, store::users::find_by_email(conn, &lookup)?))
        })
        .await?;
    if let store::sessions::Attempt::Refused { until } = attempt {
        let retry_after_secs = (until - now()).num_seconds().max(1) as u64;
        return Err(AppError::TooManyRequests {
            detail: "too many failed logins for this account; retry later".into(),
            retry_after_secs,
        });
    }
    let password = password.to_owned();
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches =
        tokio::task::spawn_blocking(move || domain::verify_password(&password, stored.as_deref()))
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
    let ok = matches && user.as_ref().is_some_and(UserRow::is_active);
    let signer = state.keyring.signer();
    let config = state.config.clone();
    let ip = ip.map(|i| i.to_string());
    let outcome = state
        .db
        .write(move |conn| {
            let ip = ip.as_deref();
            if !ok {
                let failures = store::sessions::count_failure(conn, &key)?;
                let lock = domain::lockout(
                    failures as u32,
                    config.lockout_threshold,
                    Duration::from_secs(config.lockout_base_secs),
                    Duration::from_secs(config.lockout_max_secs),
                );
                if let Some(d) = lock {
                    let until = now() + chrono::Duration::seconds(d.as_secs() as i64);
                    store::sessions::lock_until(conn, &key, until)?;
                }
                store::audit::record(
                    conn,
                    Audit {
                        action: "login.failed",
                        tenant_id: user.as_ref().map(|u| u.tenant_id.as_str()),
                        user_id: user.as_ref().map(|u| u.id.as_str()),
                        subject: &email,
                        client_ip: ip,
                        detail: json!({"failures": failures, "locked": lock.is_some()}),
                    },
                )?;
                return Ok(LoginOutcome::Failed);
            }
            let user = user.expect("ok implies a user");
            store::sessions::clear_throttle(conn, &key)?;
            if !store::tenants::is_active(conn, &user.tenant_id)? {
                return Ok(LoginOutcome::Suspended);
            }
            let issued = issue(
                conn,
                &signer,
                Duration::from_secs(config.refresh_ttl_secs),
                &user,
                None,
            )?;
            store::audit::record(
                conn,
                Audit {
                    action: "login.succeeded",
                    tenant_id: Some(&user.tenant_id),
                    user_id: Some(&user.id),
                    subject: &user.id,
                    client_ip: ip,
                    detail: json!({}),
                },
            )?;
            let tenant = store::tenants::get(conn, &user.tenant_id)?;
            Ok(LoginOutcome::Ok(Box::new(response(
                &user,
                tenant.as_ref(),
                issued,
            ))))
        })
        .await?;
    match outcome {
        LoginOutcome::Ok(resp) => Ok(*resp),
        LoginOutcome::Failed => Err(invalid_credentials()),
        LoginOutcome::Suspended => Err(tenant_suspended()),
    }
}

enum RefreshOutcome {
    Ok(Box<TokenResponse>),
    Reused,
    Invalid,
}

/// Rotates a refresh token. Exactly one of concurrent uses of one token succeeds; a token used
/// before revokes its whole family.
pub async fn refresh(
    state: &Arc<AuthState>,
    token: &str,
    ip: Option<IpAddr>,
) -> AppResult<TokenResponse> {
    let hash = domain::secret_hash(token);
    let signer = state.keyring.signer();
    let ttl = Duration::from_secs(state.config.refresh_ttl_secs);
    let ip = ip.map(|i| i.to_string());
    let outcome = state
        .db
        .write(move |conn| {
            if store::sessions::claim_refresh(conn, &hash)? {
                let row = store::sessions::find_refresh(conn, &hash)?
                    .ok_or_else(|| AppError::not_found("session"))?;
                let user = match store::users::get(conn, &row.user_id)? {
                    Some(u) if u.is_active() && store::tenants::is_active(conn, &u.tenant_id)? => u,
                    _ => {
                        store::sessions::revoke_family(conn, &row.family_id)?;
                        return Ok(RefreshOutcome::Invalid);
                    }
                };
                let issued = issue(conn, &signer, ttl, &user, Some(&row.family_id))?;
                store::audit::record(
                    conn,
                    Audit {
                        action: "token.refreshed",
                        tenant_id: Some(&user.tenant_id),
                        user_id: Some(&user.id),
                        subject: &row.family_id,
                        client_ip: ip.as_deref(),
                        detail: json!({}),
                    },
                )?;
                return Ok(RefreshOutcome::Ok(Box::new(response(&user, None, issued))));
            }
            match store::sessions::find_refresh(conn, &hash)? {
                Some(row) if row.used_at.is_some() => {
                    let revoked = store::sessions::revoke_family(conn, &row.family_id)?;
                    store::audit::record(
                        conn,
                        Audit {
                            action: "refresh.reuse_detected",
                            tenant_id: Some(&row.tenant_id),
                            user_id: Some(&row.user_id),
                            subject: &row.family_id,
                            client_ip: ip.as_deref(),
                            detail: json!({"revoked_tokens": revoked}),
                        },
                    )?;
                    Ok(RefreshOutcome::Reused)
                }
                _ => Ok(RefreshOutcome::Invalid),
            }
        })
        .await?;
    match outcome {
        RefreshOutcome::Ok(resp) => Ok(*resp),
        RefreshOutcome::Reused => Err(AppError::Unauthorized(
            "refresh token was already used; the session has been revoked".into(),
        )),
        RefreshOutcome::Invalid => Err(AppError::Unauthorized(
            "invalid or expired refresh token".into(),
        )),
    }
}

/// Ends the caller's session: the access token is denylisted until it expires and its
/// refresh-token family (and that of `refresh_token`, if it is the caller's) is revoked.
pub async fn logout(
    state: &Arc<AuthState>,
    caller: &Caller,
    refresh_token: Option<&str>,
    ip: Option<IpAddr>,
) -> AppResult<()> {
    let Credential::Jwt {
        jti,
        exp,
        session_id,
        ..
    } = caller.credential.clone()
    else {
        return Err(AppError::BadRequest(
            "logout needs an access token, not an API key".into(),
        ));
    };
    let hash = refresh_token.map(domain::secret_hash);
    let user_id = caller.user_id.clone();
    let tenant_id = caller.tenant_id.clone();
    let ip = ip.map(|i| i.to_string());
    let deny_jti = jti.clone();
    let ttl = state.config.access_ttl();
    let cuts = state
        .db
        .write(move |conn| {
            let expires =
                chrono::DateTime::from_timestamp(exp, 0).map_or_else(now, |d| d.naive_utc());
            store::sessions::deny_access_token(conn, &deny_jti, expires)?;
            let mut families: Vec<String> = session_id.into_iter().collect();
            if let Some(hash) = hash
                && let Some(row) = store::sessions::find_refresh(conn, &hash)?
                && row.user_id == user_id
            {
                families.push(row.family_id);
            }
            for family in &families {
                store::sessions::revoke_family(conn, family)?;
            }
            store::audit::record(
                conn,
                Audit {
                    action: "logout",
                    tenant_id: Some(&tenant_id),
                    user_id: Some(&user_id),
                    subject: &user_id,
                    client_ip: ip.as_deref(),
                    detail: json!({"sessions": families}),
                },
            )?;
            // Every access token the ended sessions were refreshed into stops, not only this one.
            families
                .into_iter()
                .map(|sid| crate::cutoffs::record(conn, ttl, format!("session:{sid}")))
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    state.denylist.deny(&jti, exp).await;
    crate::cutoffs::apply_all(cuts, state).await;
    Ok(())
}
