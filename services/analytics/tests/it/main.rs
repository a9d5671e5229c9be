//! Integration tests of the analytics service: black-box over HTTP (through the gateway), gRPC
//! and the bus, with the real auth, tickets and inventory-sync services.

mod support;

mod cost;
mod history;
mod inventory;
mod isolation;
mod live;
