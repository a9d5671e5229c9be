//! `spawn_app`: the platform test kit with the real auth service alone (no gateway), on a
//! fresh store, lockout after 3 failures.

use std::{ops::Deref, sync::Arc};

use agora_auth::AuthState;

use agora_shared::{bus::Event, testing::TestDb};

pub use agora_shared::testing::{Call, problem};
pub use agora_testkit::{PASSWORD, Session, fake_smtp, fields};

pub struct TestApp {
    kit: agora_testkit::Platform,
    pub grpc: String,
    pub db_url: String,
    pub state: Arc<AuthState>,
}

impl Deref for TestApp {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// Options for [`spawn_with`].
#[derive(Default)]
pub struct Options {
    /// Sign with a configured key (otherwise keys are generated into the store).
    pub configured_key: bool,
    pub extra_toml: String,
}

pub async fn spawn(db: TestDb) -> TestApp {
    let options = Options {
        configured_key: true,
        ..Default::default()
    };
    spawn_with(db, options).await
}

pub async fn spawn_with(db: TestDb, options: Options) -> TestApp {
    let db_url = db.url.clone();
    let mut kit = agora_testkit::Platform::builder(TestDb::sqlite)
        .auth_store(db)
        .auth("lockout_threshold = 3\nlockout_base_secs = 60")
        .auth(&options.extra_toml);
    if options.configured_key {
        kit = kit.configured_key();
    }
    let kit = kit.start().await;
    TestApp {
        grpc: kit.auth_grpc.clone(),
        state: kit.auth.clone(),
        db_url,
        kit,
    }
}

impl TestApp {
    /// Waits (up to 5 s) for the first event on the auth topic matching `pred`.
    pub async fn event(&self, pred: impl Fn(&Event) -> bool) -> Event {
        self.kit.event("agora.auth.events", pred).await
    }

    /// Every event of `event_type` on the auth topic so far.
    pub async fn events_of(&self, event_type: &str) -> Vec<Event> {
        self.kit
            .events_of(&self.state.db, "agora.auth.events", event_type)
            .await
    }
}

/// The session in a login, register or accept-invite answer.
pub fn session(body: serde_json::Value) -> Session {
    Session::from_body(&body)
}
