//! Channel names. Clients name channels without their tenant (`ticket:<id>`); the tenant comes
//! from the credential, and every channel's state is kept under `(tenant, name)`, so no
//! spelling of a name reaches another tenant's channel. A name is accepted in exactly one
//! spelling: lower-case kind, one colon, an id of `[A-Za-z0-9._-]` (at most 128).

use std::fmt;

/// What a channel is about, and so who may use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An AI agents conversation (messages and agent replies).
    Conversation(String),
    /// A field-force ticket (its changes; published by the tickets service's events).
    Ticket(String),
    /// A live tutoring session (chat, typing, emotion feedback, WebRTC signalling).
    Session(String),
    /// One user's own notifications.
    User(String),
    /// A Judge0 submission's verdict, for whoever holds its token (as Judge0's own
    /// `GET /submissions/{token}` is).
    Submission(String),
    /// Everyone in the tenant.
    Tenant,
    /// The tenant's live dashboards (ticket changes as they happen).
    Dashboard,
}

/// A channel of one tenant.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Key {
    pub tenant: String,
    pub channel: String,
}

impl Key {
    pub fn new(tenant: &str, channel: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            channel: channel.to_owned(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.channel)
    }
}

/// Longest id in a channel name.
pub const MAX_ID: usize = 128;

/// The channel `name` names, or why it names none.
pub fn parse(name: &str) -> Result<Kind, String> {
    match name {
        "tenant" => return Ok(Kind::Tenant),
        "dashboard" => return Ok(Kind::Dashboard),
        _ => {}
    }
    let Some((kind, id)) = name.split_once(':') else {
        return Err(format!(
            "unknown channel {name:?}: channels are conversation:<id>, ticket:<id>, session:<id>, user:<id>, submission:<token>, tenant and dashboard"
        ));
    };
    if id.is_empty()
        || id.len() > MAX_ID
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "channel {name:?}: the id must be 1 to {MAX_ID} of A-Z, a-z, 0-9, '.', '_' and '-'"
        ));
    }
    let id = id.to_owned();
    match kind {
        "conversation" => Ok(Kind::Conversation(id)),
        "ticket" => Ok(Kind::Ticket(id)),
        "session" => Ok(Kind::Session(id)),
        "user" => Ok(Kind::User(id)),
        "submission" => Ok(Kind::Submission(id)),
        _ => Err(format!(
            "unknown channel kind {kind:?}: use conversation, ticket, session, user or submission"
        )),
    }
}

impl Kind {
    /// Whether clients publish here (chat): conversations and sessions. Everything else is
    /// published by services and admins.
    pub fn clients_publish(&self) -> bool {
        matches!(self, Self::Conversation(_) | Self::Session(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_channel() {
        assert_eq!(parse("ticket:abc-1"), Ok(Kind::Ticket("abc-1".into())));
        assert_eq!(parse("tenant"), Ok(Kind::Tenant));
        for bad in [
            "Ticket:abc",
            "ticket: abc",
            "ticket:abc ",
            "ticket:",
            "ticket:a:b",
            "ticket:a/b",
            "ticket:%61",
            "TENANT",
            "dashboard:x",
            "tenant:other",
            "",
            "ticket:\u{0430}bc",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse(&format!("user:{}", "a".repeat(MAX_ID))).is_ok());
        assert!(parse(&format!("user:{}", "a".repeat(MAX_ID + 1))).is_err());
    }
}
