//! Black-box tests of the inventory-sync service through the gateway, with the real auth
//! service, on SQLite and (when AGORA_TEST_DATABASE_URL is set) PostgreSQL.

mod concurrency;
mod flow;
mod gmail;
mod isolation;
mod rules;
mod stripe;
mod support;
mod sync;
mod validation;
