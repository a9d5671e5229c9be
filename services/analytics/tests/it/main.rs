//! Integration tests of the analytics service: black-box over HTTP (through the gateway), gRPC
//! and the bus, with the real auth and tickets services.

mod support;

mod cost;
mod history;
mod isolation;
mod live;
