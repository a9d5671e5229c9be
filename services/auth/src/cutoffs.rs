//! Cut-offs: every access token of a user, a session or a tenant issued before a moment is
//! refused from then on — deactivation, demotion, deletion, password change or reset, logout,
//! suspension. A cut-off is written to the store in the transaction of the change that causes
//! it, then handed to the denylist that every verifier consults (shared in process, or in
//! Redis) and told to every cache of API-key verifications. Reloaded at start.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{
    AppResult,
    db::{DbConnection, now},
    tokens::LEEWAY_SECS,
};

use crate::{AuthState, schema::token_cutoffs};

/// A cut-off recorded in the store, to [`Cut::apply`] once its transaction has committed.
#[derive(Debug, Clone)]
#[must_use = "a recorded cut-off takes effect only once applied"]
pub struct Cut {
    pub subject: String,
    pub at_ms: i64,
    /// When the last token it refuses has expired (Unix seconds).
    pub until: i64,
}

/// Records that `subject`'s tokens issued until now are refused, for as long as an access
/// token (`ttl`) lives.
pub fn record(conn: &mut DbConnection, ttl: Duration, subject: String) -> AppResult<Cut> {
    let at = now();
    let expires = at + chrono::Duration::seconds((ttl.as_secs() + LEEWAY_SECS) as i64);
    let cut = Cut {
        at_ms: at.and_utc().timestamp_millis(),
        until: expires.and_utc().timestamp(),
        subject,
    };
    diesel::delete(token_cutoffs::table.find(&cut.subject)).execute(conn)?;
    diesel::insert_into(token_cutoffs::table)
        .values((
            token_cutoffs::subject.eq(&cut.subject),
            token_cutoffs::cut_at_ms.eq(cut.at_ms),
            token_cutoffs::expires_at.eq(expires),
        ))
        .execute(conn)?;
    Ok(cut)
}

impl Cut {
    /// Makes every verifier refuse the tokens and every cache forget the subject's keys.
    pub async fn apply(self, state: &AuthState) {
        state
            .denylist
            .cut_off(&self.subject, self.at_ms, self.until)
            .await;
        // Key verifications are cached per creator and tenant; sessions have no keys.
        if !self.subject.starts_with("session:") {
            state.invalidations.publish(&self.subject).await;
        }
    }
}

/// Applies `cuts` in order.
pub async fn apply_all(cuts: Vec<Cut>, state: &AuthState) {
    for cut in cuts {
        cut.apply(state).await;
    }
}

/// The cut-offs still in force (expired ones are dropped).
pub fn live(conn: &mut DbConnection) -> AppResult<Vec<Cut>> {
    let at = now();
    diesel::delete(token_cutoffs::table.filter(token_cutoffs::expires_at.lt(at))).execute(conn)?;
    let rows: Vec<(String, i64, NaiveDateTime)> = token_cutoffs::table
        .select((
            token_cutoffs::subject,
            token_cutoffs::cut_at_ms,
            token_cutoffs::expires_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(subject, at_ms, expires)| Cut {
            subject,
            at_ms,
            until: expires.and_utc().timestamp(),
        })
        .collect())
}
