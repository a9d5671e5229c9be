//! Black-box tests of the tickets service through the gateway, with the real auth service, on
//! SQLite and (when AGORA_TEST_DATABASE_URL is set) PostgreSQL.

mod fault;
mod life;
mod lists;
mod sla;
mod support;
mod suspension;
mod work;
