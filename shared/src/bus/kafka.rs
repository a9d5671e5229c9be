//! The Kafka implementation of the bus (rdkafka, bundled librdkafka): CloudEvents in binary mode
//! (`ce_*` headers plus `traceparent`, data = the protobuf payload, key = the aggregate id), an
//! idempotent producer that waits for every in-sync replica, and consumer groups that commit an
//! offset only when told to. Topics are created by `agora migrate`, never on first use.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{ClientContext, DefaultClientContext},
    consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    statistics::Statistics,
};
use serde::{Deserialize, Serialize};

use super::{BusError, Delivery, Event, EventBus, Subscription};
use crate::config::{ConfigError, Validate};

/// The `[kafka]` section (`AGORA_KAFKA__*`). Without `brokers` events stay in process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub brokers: Option<String>,
    /// Partitions and replication factor of the topics `agora migrate` creates.
    pub partitions: i32,
    pub replication: i32,
    /// How long a publish may wait for the brokers before it fails (the outbox keeps the event).
    pub publish_timeout_ms: u64,
    /// Prepended to every consumer group id, so that several platforms (or test runs) sharing
    /// one cluster read each topic independently.
    pub group_prefix: String,
    /// How often consumers look for topics they subscribed to that did not exist yet (a
    /// deployment without one service, or before its migration made the topic).
    pub topic_refresh_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: None,
            partitions: 3,
            replication: 1,
            publish_timeout_ms: 10_000,
            group_prefix: String::new(),
            topic_refresh_ms: 30_000,
        }
    }
}

impl Validate for KafkaConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if self.brokers.as_deref().is_some_and(|b| b.trim().is_empty()) {
            return Err(ConfigError::new(key("brokers"), "must not be empty"));
        }
        if self.partitions < 1 {
            return Err(ConfigError::new(key("partitions"), "must be at least 1"));
        }
        if self.replication < 1 {
            return Err(ConfigError::new(key("replication"), "must be at least 1"));
        }
        if !(1000..=3_600_000).contains(&self.topic_refresh_ms) {
            return Err(ConfigError::new(
                key("topic_refresh_ms"),
                "must be between 1000 and 3600000",
            ));
        }
        Ok(())
    }
}

/// Producer and consumer factory for one cluster.
pub struct KafkaBus {
    brokers: String,
    group_prefix: String,
    topic_refresh_ms: u64,
    producer_config: ClientConfig,
    /// Replaced after a failed publish: an idempotent producer whose in-flight records timed
    /// out must re-register with the cluster, and one that lost its broker may never get its
    /// producer id back (the relay publishes again from the first failed event).
    producer: std::sync::RwLock<Arc<FutureProducer>>,
    publish_timeout: Duration,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl KafkaBus {
    pub fn new(config: &KafkaConfig) -> anyhow::Result<Self> {
        let brokers = config
            .brokers
            .clone()
            .ok_or_else(|| ConfigError::new("kafka.brokers", "is required"))?;
        let mut producer_config = ClientConfig::new();
        producer_config
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.publish_timeout_ms.to_string());
        let producer: FutureProducer = producer_config.create()?;
        Ok(Self {
            brokers,
            topic_refresh_ms: config.topic_refresh_ms,
            group_prefix: config.group_prefix.clone(),
            producer_config,
            producer: std::sync::RwLock::new(Arc::new(producer)),
            publish_timeout: Duration::from_millis(config.publish_timeout_ms),
        })
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts over with a new producer (see `producer`).
    fn renew_producer(&self) {
        match self.producer_config.create::<FutureProducer>() {
            Ok(fresh) => {
                *self.producer.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
            }
            Err(err) => tracing::warn!(error = %err, "kafka producer not recreated"),
        }
    }

    async fn send(
        &self,
        producer: &FutureProducer,
        topic: &str,
        event: &Event,
    ) -> Result<(), BusError> {
        let record = FutureRecord::to(topic)
            .key(&event.key)
            .payload(&event.data)
            .headers(headers(event));
        producer
            .send(record, self.publish_timeout)
            .await
            .map(|_| ())
            .map_err(|(err, _)| unavailable(err))
    }

    /// Creates `topics` (those that exist are left as they are).
    pub async fn create_topics(
        &self,
        topics: &[String],
        partitions: i32,
        replication: i32,
    ) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
            .collect();
        // Brokers that do not answer fail the call within the publish timeout.
        let options = AdminOptions::new()
            .request_timeout(Some(self.publish_timeout))
            .operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}

fn headers(event: &Event) -> OwnedHeaders {
    let time = event.time.to_rfc3339();
    let mut h = OwnedHeaders::new()
        .insert(Header {
            key: "ce_specversion",
            value: Some("1.0"),
        })
        .insert(Header {
            key: "ce_id",
            value: Some(&event.id),
        })
        .insert(Header {
            key: "ce_type",
            value: Some(&event.event_type),
        })
        .insert(Header {
            key: "ce_source",
            value: Some(&event.source),
        })
        .insert(Header {
            key: "ce_time",
            value: Some(&time),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/protobuf"),
        });
    if let Some(tenant) = &event.tenant_id {
        h = h.insert(Header {
            key: "ce_tenantid",
            value: Some(tenant),
        });
    }
    if let Some(tp) = &event.traceparent {
        h = h.insert(Header {
            key: "traceparent",
            value: Some(tp),
        });
    }
    h
}

/// The event a record carries; records without CloudEvents headers are refused.
fn event_of(msg: &impl Message) -> Result<Event, String> {
    let mut get = std::collections::HashMap::new();
    if let Some(h) = msg.headers() {
        for header in h.iter() {
            if let Some(v) = header.value {
                get.insert(header.key, String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    let need = |k: &str| get.get(k).cloned().ok_or(format!("no {k} header"));
    Ok(Event {
        id: need("ce_id")?,
        source: need("ce_source")?,
        event_type: need("ce_type")?,
        time: get
            .get("ce_time")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
        tenant_id: get.get("ce_tenantid").cloned(),
        traceparent: get.get("traceparent").cloned(),
        key: msg
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        data: msg.payload().unwrap_or_default().to_vec(),
    })
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn publish(&self, topic: &str, event: &Event) -> Result<(), BusError> {
        let outcome = self.send(&self.producer(), topic, event).await;
        if outcome.is_err() {
            self.renew_producer();
        }
        outcome
    }

    async fn publish_all(&self, events: &[(String, Event)]) -> Vec<Result<(), BusError>> {
        // Polled in order, so the records are queued in order; the idempotent producer keeps
        // each partition's order with several batches in flight.
        let producer = self.producer();
        let outcomes = futures::future::join_all(
            events
                .iter()
                .map(|(topic, event)| self.send(&producer, topic, event)),
        )
        .await;
        if outcomes.iter().any(Result::is_err) {
            self.renew_producer();
        }
        outcomes
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        let group = format!("{}{group}", self.group_prefix);
        let consumer: StreamConsumer<LagReporter> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .set(
                "topic.metadata.refresh.interval.ms",
                self.topic_refresh_ms.to_string(),
            )
            .set("statistics.interval.ms", "5000")
            // A broker answers a fetch as soon as there is data; one that holds every fetch for
            // the full wait (tansu does) would otherwise add up to 500 ms per delivery.
            .set("fetch.wait.max.ms", "100")
            .create_with_context(LagReporter {
                group: group.to_owned(),
            })
            .map_err(unavailable)?;
        consumer.subscribe(&[topic]).map_err(unavailable)?;
        Ok(Box::new(KafkaSubscription {
            consumer: Arc::new(consumer),
            topic: topic.to_owned(),
            missing_topic_reported: false,
        }))
    }
}

struct KafkaSubscription {
    consumer: Arc<StreamConsumer<LagReporter>>,
    topic: String,
    /// Whether the topic was reported missing (until a record arrives).
    missing_topic_reported: bool,
}

/// Reports the group's lag per topic from librdkafka's periodic statistics.
struct LagReporter {
    group: String,
}

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in statistics.topics {
            let behind: i64 = t
                .partitions
                .values()
                .filter(|p| p.partition >= 0)
                .map(|p| p.consumer_lag.max(0))
                .sum();
            lag().with_label_values(&[&topic, &self.group]).set(behind);
        }
    }
}

impl ConsumerContext for LagReporter {}

/// `agora_bus_consumer_lag{topic, group}`: events the group is behind the newest.
fn lag() -> &'static prometheus::IntGaugeVec {
    static LAG: std::sync::OnceLock<prometheus::IntGaugeVec> = std::sync::OnceLock::new();
    LAG.get_or_init(|| {
        let gauge = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "agora_bus_consumer_lag",
                "Events a consumer group is behind the newest on a topic",
            ),
            &["topic", "group"],
        )
        .expect("metric definition is valid");
        let _ = crate::telemetry::metrics()
            .registry
            .register(Box::new(gauge.clone()));
        gauge
    })
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let msg = match self.consumer.recv().await {
                Ok(msg) => msg,
                // A topic not made yet (a deployment without its service, or before its
                // migration ran): waited for, not fatal; librdkafka picks it up once it exists.
                Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                )) => {
                    if !self.missing_topic_reported {
                        tracing::warn!(topic = %self.topic,
                            "the subscribed topic does not exist yet; waiting for it");
                        self.missing_topic_reported = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(unavailable(e)),
            };
            if self.missing_topic_reported {
                tracing::info!(topic = %self.topic, "the subscribed topic exists now");
                self.missing_topic_reported = false;
            }
            match event_of(&msg) {
                Ok(event) => {
                    return Ok(Delivery {
                        topic: msg.topic().to_owned(),
                        partition: msg.partition().max(0) as u32,
                        offset: msg.offset().max(0) as u64,
                        event,
                    });
                }
                Err(why) => {
                    // Not ours to handle; skip it rather than stall the partition.
                    tracing::warn!(topic = msg.topic(), offset = msg.offset(), %why, "record is not a CloudEvent; skipped");
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        msg.topic(),
                        msg.partition(),
                        Offset::Offset(msg.offset() + 1),
                    )
                    .map_err(unavailable)?;
                    self.consumer
                        .commit(&tpl, CommitMode::Async)
                        .map_err(unavailable)?;
                }
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.commit_all(&[delivery]).await
    }

    async fn commit_all(&mut self, last_per_partition: &[&Delivery]) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        for delivery in last_per_partition {
            tpl.add_partition_offset(
                &delivery.topic,
                delivery.partition as i32,
                Offset::Offset(delivery.offset as i64 + 1),
            )
            .map_err(unavailable)?;
        }
        // One request for every partition; synchronous (the group's offsets are stored when
        // this returns), on the blocking pool so the runtime never waits on the broker.
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }
}
