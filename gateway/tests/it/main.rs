//! The gateway in front of the real auth service and a small test upstream.

mod edge;
mod goaway;
mod limits;
mod proxying;
mod replicas;
mod stores;
mod support;
mod upstream;
