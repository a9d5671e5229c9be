//! Diesel access to the analytics store (schema.rs beside it). Dynamic queries (the query
//! engine's GROUP BYs and filters) are built by `sql::Sql` with every value bound.

pub mod activities;
pub mod code;
pub mod factors;
pub mod facts;
pub mod inventory;
pub mod rollups;
pub mod sql;
