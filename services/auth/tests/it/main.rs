//! Black-box tests of the auth service over HTTP and gRPC, on SQLite and (when
//! AGORA_TEST_DATABASE_URL is set) PostgreSQL.

mod api_keys;
mod ops;
mod sessions;
mod support;
mod teams;
mod tenants;
mod tokens;
