//! The inventory-sync store: every SQL statement of the service, as functions over a connection
//! so the caller chooses the transaction.

pub mod claims;
pub mod connections;
pub mod discrepancies;
pub mod gmail;
pub mod items;
pub mod snapshots;
pub mod stripe_events;
