//! The kernel every Agora service stands on: configuration, errors, storage, the event bus,
//! tokens, telemetry, and the HTTP and gRPC plumbing that every service shares.

pub mod bus;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod http;
pub mod invalidation;
pub mod outbound;
pub mod peer_auth;
pub mod redis;
pub mod sealed;
pub mod service;
pub mod telemetry;
/// Test support (fresh stores, infrastructure checks, load generation): compiled only for
/// tests and benches (feature `testing`), never into the binary.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;

pub use error::{AppError, AppResult, FieldError};
