//! Integration tests of the analytics service: black-box over HTTP (through the gateway), gRPC
//! and the bus, with the real auth and tickets services.

#[macro_use]
mod support;

mod history;
mod live;
