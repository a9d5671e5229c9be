//! Integration tests of the analytics service: black-box over HTTP (through the gateway), gRPC
//! and the bus, with the real auth, tickets, inventory-sync and code-exec services.

mod support;

mod code;
mod cost;
mod history;
mod inventory;
mod isolation;
mod live;
