//! Connection tokens in the service's store: single-use, short-lived, kept as their SHA-256
//! with the identity they were issued for (so that any replica sharing the store redeems them).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use agora_shared::{
    AppResult,
    db::DbConnection,
    http::{Caller, Credential, Role},
    tokens::RevocationCheck,
};

use crate::schema::connection_tokens;

/// Prefix of every connection token (what tells it from an access token or an API key).
pub const PREFIX: &str = "rtc_";

/// What a connection token stands for: the caller and the access token it was traded for
/// (its expiry, and what refuses it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub role: Role,
    pub permissions: Vec<String>,
    pub email: String,
    pub plan: Option<String>,
    pub jti: String,
    pub exp: i64,
    pub session_id: Option<String>,
    pub subjects: Vec<String>,
    pub issued_ms: i64,
}

/// A redeemed token: the caller (with no credential to forward) and how to tell later that
/// the access token behind it was revoked.
pub struct Redeemed {
    pub caller: Caller,
    pub revocation: RevocationCheck,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn internal(err: serde_json::Error) -> agora_shared::AppError {
    agora_shared::AppError::Internal(err.into())
}

/// Stores a new token for `caller` (signed in with an access token, checked as `check`),
/// valid until `expires_at`; returns the token.
pub fn issue(
    conn: &mut DbConnection,
    caller: &Caller,
    check: &RevocationCheck,
    expires_at: NaiveDateTime,
) -> AppResult<String> {
    let Credential::Jwt {
        jti,
        exp,
        session_id,
        ..
    } = &caller.credential
    else {
        return Err(agora_shared::AppError::Forbidden(
            "connection tokens are for signed-in users; an API key connects with itself".into(),
        ));
    };
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!(
        "{PREFIX}{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    );
    let identity = Identity {
        role: caller.role,
        permissions: caller.permissions.clone(),
        email: caller.email.clone(),
        plan: caller.plan.clone(),
        jti: jti.clone(),
        exp: *exp,
        session_id: session_id.clone(),
        subjects: check.subjects.clone(),
        issued_ms: check.issued_ms,
    };
    diesel::insert_into(connection_tokens::table)
        .values((
            connection_tokens::token_hash.eq(hash(&token)),
            connection_tokens::tenant_id.eq(&caller.tenant_id),
            connection_tokens::user_id.eq(&caller.user_id),
            connection_tokens::identity.eq(serde_json::to_string(&identity).map_err(internal)?),
            connection_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Takes the token out of the store: the caller it stands for, or `None` when it is unknown,
/// used or expired. Of two redemptions at once, one wins.
pub fn redeem(
    conn: &mut DbConnection,
    token: &str,
    now: NaiveDateTime,
) -> AppResult<Option<Redeemed>> {
    let key = hash(token);
    let row: Option<(String, String, String, NaiveDateTime)> = connection_tokens::table
        .find(&key)
        .select((
            connection_tokens::tenant_id,
            connection_tokens::user_id,
            connection_tokens::identity,
            connection_tokens::expires_at,
        ))
        .first(conn)
        .optional()?;
    let Some((tenant_id, user_id, identity, expires_at)) = row else {
        return Ok(None);
    };
    let taken = diesel::delete(connection_tokens::table.find(&key)).execute(conn)?;
    if taken != 1 || expires_at <= now {
        return Ok(None);
    }
    let identity: Identity = serde_json::from_str(&identity).map_err(internal)?;
    Ok(Some(Redeemed {
        revocation: RevocationCheck {
            jti: identity.jti.clone(),
            subjects: identity.subjects,
            issued_ms: identity.issued_ms,
        },
        caller: Caller {
            user_id,
            tenant_id,
            role: identity.role,
            permissions: identity.permissions,
            email: identity.email,
            plan: identity.plan,
            credential: Credential::Jwt {
                jti: identity.jti,
                exp: identity.exp,
                session_id: identity.session_id,
                token: String::new(),
            },
        },
    }))
}

/// Drops expired tokens; how many.
pub fn forget_expired(conn: &mut DbConnection, now: NaiveDateTime) -> AppResult<usize> {
    Ok(
        diesel::delete(connection_tokens::table.filter(connection_tokens::expires_at.le(now)))
            .execute(conn)?,
    )
}
