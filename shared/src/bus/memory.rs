//! The in-process bus for embedded mode and tests: one ordered log per topic, committed offsets
//! per consumer group, one active member per group (as one Kafka partition has one owner).
//! Like a Kafka topic, the log is retained by size, not by consumption: a group that joins
//! later still reads from the oldest retained event.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedMutexGuard};

use super::{BusError, Delivery, Event, EventBus, Subscription};

/// Events retained per topic; older ones are dropped (a group lagging further skips them).
const MAX_RETAINED: usize = 100_000;

#[derive(Default)]
struct Group {
    committed: u64,
    member: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct Topic {
    /// Offset of `log[0]`.
    base: u64,
    log: VecDeque<Event>,
    groups: HashMap<String, Group>,
    notify: Arc<Notify>,
}

impl Topic {
    fn end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Drops the oldest events beyond the retention cap.
    fn trim(&mut self) {
        while self.log.len() > MAX_RETAINED {
            self.log.pop_front();
            self.base += 1;
        }
    }
}

/// In-process implementation of [`EventBus`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct InProcessBus {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events `topic` retains, oldest first (what a new consumer group would read).
    pub fn retained(&self, topic: &str) -> Vec<Event> {
        self.with_topic(topic, |t| t.log.iter().cloned().collect())
    }

    fn with_topic<T>(&self, topic: &str, f: impl FnOnce(&mut Topic) -> T) -> T {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        f(topics.entry(topic.to_owned()).or_default())
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, topic: &str, event: &Event) -> Result<(), BusError> {
        let notify = self.with_topic(topic, |t| {
            t.log.push_back(event.clone());
            t.trim();
            t.notify.clone()
        });
        notify.notify_waiters();
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        let member = self.with_topic(topic, |t| {
            let base = t.base;
            t.groups
                .entry(group.to_owned())
                .or_insert_with(|| Group {
                    committed: base,
                    member: Default::default(),
                })
                .member
                .clone()
        });
        Ok(Box::new(InProcessSubscription {
            bus: self.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            member,
            guard: None,
            position: 0,
        }))
    }
}

struct InProcessSubscription {
    bus: InProcessBus,
    topic: String,
    group: String,
    member: Arc<tokio::sync::Mutex<()>>,
    /// Held while this subscription is the group's active member.
    guard: Option<OwnedMutexGuard<()>>,
    position: u64,
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        if self.guard.is_none() {
            self.guard = Some(self.member.clone().lock_owned().await);
            // A new owner resumes after the group's last commit: uncommitted events come again.
            self.position = self.bus.with_topic(&self.topic, |t| {
                t.groups
                    .get(&self.group)
                    .map_or(t.base, |g| g.committed.max(t.base))
            });
        }
        loop {
            let (found, notify) = self.bus.with_topic(&self.topic, |t| {
                self.position = self.position.max(t.base);
                let found = (self.position < t.end())
                    .then(|| t.log[(self.position - t.base) as usize].clone());
                (found, t.notify.clone())
            });
            if let Some(event) = found {
                let offset = self.position;
                self.position += 1;
                return Ok(Delivery {
                    topic: self.topic.clone(),
                    partition: 0,
                    offset,
                    event,
                });
            }
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after registering so a publish in between is not missed.
            let more = self
                .bus
                .with_topic(&self.topic, |t| self.position < t.end());
            if !more {
                notified.await;
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.bus.with_topic(&self.topic, |t| {
            if let Some(g) = t.groups.get_mut(&self.group) {
                g.committed = g.committed.max(delivery.offset + 1);
            }
        });
        Ok(())
    }
}
