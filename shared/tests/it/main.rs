//! The kernel's conformance suites: the outbox relay and inbox on SQLite and PostgreSQL, and
//! the bus port on the in-process bus and Kafka (when AGORA_TEST_KAFKA_BROKERS names a broker).

mod buses;
mod jwks;
mod outbox;
mod redis_server;
mod store;
