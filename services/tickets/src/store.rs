//! The tickets store: every SQL statement of the service, as functions over a connection so the
//! caller chooses the transaction.

pub mod assignments;
pub mod comments;
pub mod tickets;
pub mod zones;

/// JSON list stored as text.
pub fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

pub fn from_json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
