//! Black-box tests of the tickets service through the gateway, with the real auth service, on
//! SQLite and (when AGORA_TEST_DATABASE_URL is set) PostgreSQL.

#[macro_use]
mod support;
mod fault;
mod life;
mod lists;
mod sla;
mod work;
