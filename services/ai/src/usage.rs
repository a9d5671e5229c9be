//! A model call's meter: its budget reservation, what it used and what that cost, recorded
//! when it ends (settled budget, usage record and `agora.ai.usage.recorded` event, in one
//! transaction). A meter dropped before it was recorded (a client that left mid-stream)
//! records itself.

use std::{sync::Arc, time::Instant};

use diesel::prelude::*;
use prost::Message;

use agora_proto::events::v1 as ev;
use agora_shared::{
    AppResult,
    bus::{Event, Outbox, topic_for},
    db::DbConnection,
};

use crate::{AiState, budget::Reservation, schema::usage_records};

pub const SOURCE: &str = "agora/ai";

/// The most tokens one call is counted for, in or out.
const MAX_TOKENS: i64 = 1_000_000_000;

pub fn topic() -> String {
    topic_for(crate::NAME)
}

/// Who answered and at what price.
#[derive(Debug, Clone, Default)]
pub struct Answerer {
    pub provider: String,
    pub provider_model: String,
    pub input_cost_per_million: i64,
    pub output_cost_per_million: i64,
}

/// A call being measured.
pub struct Meter {
    state: Arc<AiState>,
    inner: Option<Reading>,
}

#[derive(Debug, Clone)]
struct Reading {
    reservation: Reservation,
    user_id: String,
    model: String,
    kind: &'static str,
    answerer: Answerer,
    tokens_in: i64,
    tokens_out: i64,
    status: String,
    started: Instant,
}

impl Meter {
    pub fn new(
        state: Arc<AiState>,
        reservation: Reservation,
        user_id: &str,
        model: &str,
        kind: &'static str,
    ) -> Self {
        Self {
            state,
            inner: Some(Reading {
                reservation,
                user_id: user_id.to_owned(),
                model: model.to_owned(),
                kind,
                answerer: Answerer::default(),
                tokens_in: 0,
                tokens_out: 0,
                // Until told otherwise: the client left before the end.
                status: "client_closed".into(),
                started: Instant::now(),
            }),
        }
    }

    pub fn answered_by(&mut self, answerer: Answerer) {
        if let Some(r) = &mut self.inner {
            r.answerer = answerer;
        }
    }

    /// What the call used (a provider's figures, bounded: no answer is a billion tokens).
    pub fn tokens(&mut self, tokens_in: i64, tokens_out: i64) {
        if let Some(r) = &mut self.inner {
            r.tokens_in = tokens_in.clamp(0, MAX_TOKENS);
            r.tokens_out = tokens_out.clamp(0, MAX_TOKENS);
        }
    }

    pub fn status(&mut self, status: &str) {
        if let Some(r) = &mut self.inner {
            r.status = status.to_owned();
        }
    }

    /// Records a call that failed with `status`: nothing used, its reservation given back.
    pub async fn fail(mut self, status: &str) -> AppResult<()> {
        self.tokens(0, 0);
        self.status(status);
        self.record().await
    }

    /// Records the call now, in a task of its own: a caller that goes away while it is
    /// written (a deadline, a client hanging up) does not stop it half way, which would
    /// leave the reservation held.
    pub async fn record(mut self) -> AppResult<()> {
        let Some(reading) = self.inner.take() else {
            return Ok(());
        };
        let state = self.state.clone();
        tokio::spawn(async move { write(&state, reading).await })
            .await
            .map_err(|e| anyhow::anyhow!("recording usage failed: {e}"))?
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(reading) = self.inner.take() {
            let state = self.state.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(err) = write(&state, reading).await {
                        tracing::warn!(error = %err, "usage not recorded");
                    }
                });
            }
        }
    }
}

/// Records a call, trying again a few times: a reservation left unsettled would hold the
/// tenant's budget until the period ends.
async fn write(state: &AiState, r: Reading) -> AppResult<()> {
    let mut attempt = 0;
    loop {
        match write_once(state, r.clone()).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 4 => {
                attempt += 1;
                tracing::warn!(error = %err, attempt, "usage not recorded yet; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn write_once(state: &AiState, r: Reading) -> AppResult<()> {
    let cost = r
        .tokens_in
        .saturating_mul(r.answerer.input_cost_per_million)
        .saturating_add(
            r.tokens_out
                .saturating_mul(r.answerer.output_cost_per_million),
        )
        .saturating_add(500_000)
        / 1_000_000;
    let now = agora_shared::db::now();
    let id = uuid::Uuid::now_v7().to_string();
    let latency = r.started.elapsed().as_millis() as i64;
    state
        .db
        .write(move |conn| {
            crate::budget::settle(conn, &r.reservation, r.tokens_in + r.tokens_out, cost)?;
            diesel::insert_into(usage_records::table)
                .values((
                    usage_records::id.eq(&id),
                    usage_records::tenant_id.eq(&r.reservation.tenant_id),
                    usage_records::user_id.eq(&r.user_id),
                    usage_records::model.eq(&r.model),
                    usage_records::provider.eq(&r.answerer.provider),
                    usage_records::provider_model.eq(&r.answerer.provider_model),
                    usage_records::kind.eq(r.kind),
                    usage_records::tokens_in.eq(r.tokens_in),
                    usage_records::tokens_out.eq(r.tokens_out),
                    usage_records::latency_ms.eq(latency),
                    usage_records::cost_minor.eq(cost),
                    usage_records::status.eq(&r.status),
                    usage_records::created_at.eq(now),
                ))
                .execute(conn)?;
            emit(
                conn,
                &ev::UsageRecorded {
                    id: id.clone(),
                    tenant_id: r.reservation.tenant_id.clone(),
                    user_id: r.user_id.clone(),
                    model: r.model.clone(),
                    provider: r.answerer.provider.clone(),
                    provider_model: r.answerer.provider_model.clone(),
                    kind: r.kind.into(),
                    tokens_in: r.tokens_in,
                    tokens_out: r.tokens_out,
                    latency_ms: latency,
                    cost_minor: cost,
                    status: r.status.clone(),
                    at: agora_shared::db::rfc3339(now),
                },
            )
        })
        .await
}

fn emit(conn: &mut DbConnection, message: &ev::UsageRecorded) -> AppResult<()> {
    let event = Event::new(
        SOURCE,
        "agora.ai.usage.recorded",
        &message.id,
        Some(message.tenant_id.clone()),
        message.encode_to_vec(),
    );
    Outbox::enqueue(conn, &topic(), &event)
}
