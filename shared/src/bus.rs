//! The event bus port: CloudEvents envelopes on topics, consumer groups, at-least-once delivery.
//! Producers write events to their store's outbox in the same transaction as the state change
//! (`outbox`); a relay publishes them. Consumers record handled event ids in an inbox so a
//! redelivered event is skipped (`consumer`).

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub mod consumer;
pub mod kafka;
pub mod memory;
pub mod outbox;

pub use consumer::{BatchHandler, Handler, run_batch_consumer, run_consumer};
pub use memory::InProcessBus;
pub use outbox::{Outbox, run_relay};

/// A CloudEvents 1.0 event. `data` is a protobuf message from `proto/agora/events/v1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `ce_id`: unique per event (UUIDv7).
    pub id: String,
    /// `ce_source`: the producing service, e.g. `agora/auth`.
    pub source: String,
    /// `ce_type`: e.g. `agora.auth.user.registered`.
    pub event_type: String,
    pub time: DateTime<Utc>,
    /// `ce_tenantid` extension.
    pub tenant_id: Option<String>,
    /// W3C trace context of the request that caused the event.
    pub traceparent: Option<String>,
    /// Partition key: the aggregate id. Events with one key are delivered in order.
    pub key: String,
    pub data: Vec<u8>,
}

impl Event {
    pub fn new(
        source: &str,
        event_type: &str,
        key: impl Into<String>,
        tenant_id: Option<String>,
        data: Vec<u8>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            time: Utc::now(),
            tenant_id,
            traceparent: crate::telemetry::current_traceparent(),
            key: key.into(),
            data,
        }
    }
}

/// An event handed to a consumer, with its position for committing.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub event: Event,
}

/// Bus failures; the caller retries (the outbox keeps events until published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusError {
    Unavailable(String),
    Closed,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "bus unavailable: {why}"),
            Self::Closed => write!(f, "bus closed"),
        }
    }
}

impl std::error::Error for BusError {}

/// The port every bus implementation (in-process, Kafka) provides.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one event; returns once the bus has accepted it durably.
    async fn publish(&self, topic: &str, event: &Event) -> Result<(), BusError>;

    /// Publishes events in the given order, several in flight at once where the bus allows
    /// (events of one key still arrive in order); one outcome per event. A failed event makes
    /// the caller retry it and everything after it.
    async fn publish_all(&self, events: &[(String, Event)]) -> Vec<Result<(), BusError>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for (topic, event) in events {
            outcomes.push(self.publish(topic, event).await);
        }
        outcomes
    }

    /// Joins consumer group `group` on `topic`. Within a group each event goes to one member;
    /// events not committed when a member leaves are delivered again.
    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError>;
}

/// One member of a consumer group.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next event.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// Marks `delivery` and everything before it on its partition as handled by the group.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// `commit` for the last delivery of each partition of a handled batch, at once where the
    /// bus can (Kafka: one offset commit for all partitions).
    async fn commit_all(&mut self, last_per_partition: &[&Delivery]) -> Result<(), BusError> {
        for delivery in last_per_partition {
            self.commit(delivery).await?;
        }
        Ok(())
    }
}

/// Shared handle to a bus.
pub type SharedBus = Arc<dyn EventBus>;

/// Topic a service publishes on: `agora.<service>.events`.
pub fn topic_for(service: &str) -> String {
    format!("agora.{service}.events")
}
