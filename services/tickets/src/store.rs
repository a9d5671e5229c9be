//! The tickets store: every SQL statement of the service, as functions over a connection so the
//! caller chooses the transaction.

pub mod assignments;
pub mod comments;
pub mod tickets;
pub mod zones;
