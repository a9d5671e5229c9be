//! Integration tests of the realtime service, black-box through the gateway (the native
//! protocol driven by actix's WebSocket client, HTTP and gRPC) with the real auth and tickets
//! services; two replicas on a real Redis. Socket.IO is tested with the `socket.io-client`
//! package in scripts/ci/socketio_client.mjs.

mod support;

mod engineio;
mod engines;
mod native;
mod replicas;
mod rights;
