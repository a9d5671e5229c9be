//! The signing keyring. With `auth.signing_key` configured (required in distributed mode) the
//! key comes from configuration, and `auth.previous_signing_keys` keep verifying. Otherwise
//! (embedded mode) keys are generated into the store and rotated every
//! `auth.key_rotation_days`: the new key signs while tokens of the old one verify until expiry.

use std::sync::{Arc, RwLock};

use agora_shared::{
    AppError, AppResult,
    db::{Db, now},
    tokens::{self, KeyPair, PublicKey, Signer, StaticKeys, TokenSettings},
};

use crate::{config::AuthConfig, store};

enum Source {
    Config {
        active: KeyPair,
        previous: Vec<KeyPair>,
    },
    Store {
        rotation_days: u32,
    },
}

/// Active signer plus every public key that still verifies.
pub struct Keyring {
    settings: TokenSettings,
    source: Source,
    signer: RwLock<Arc<Signer>>,
    public: RwLock<Vec<PublicKey>>,
    verify: Arc<StaticKeys>,
}

impl Keyring {
    /// Loads (and in store mode, creates or rotates) the keys.
    pub async fn load(db: &Db, config: &AuthConfig) -> anyhow::Result<Arc<Self>> {
        let settings = config.token_settings();
        let source = match &config.signing_key {
            Some(pem) => Source::Config {
                active: KeyPair::from_pem(pem).map_err(anyhow::Error::msg)?,
                previous: config
                    .previous_signing_keys
                    .iter()
                    .map(|p| KeyPair::from_pem(p).map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<_>>()?,
            },
            None => Source::Store {
                rotation_days: config.key_rotation_days,
            },
        };
        let (signer, public) = match &source {
            Source::Config { active, previous } => {
                let public = std::iter::once(active)
                    .chain(previous)
                    .map(KeyPair::public_key)
                    .collect();
                (Signer::new(settings.clone(), active), public)
            }
            Source::Store { rotation_days } => {
                load_from_store(db, &settings, *rotation_days).await?
            }
        };
        Ok(Arc::new(Self {
            verify: Arc::new(StaticKeys::new(&public)),
            settings,
            source,
            signer: RwLock::new(Arc::new(signer)),
            public: RwLock::new(public),
        }))
    }

    /// Picks up keys rotated by another process (or rotates when due), in store mode.
    pub async fn reload(&self, db: &Db) -> anyhow::Result<()> {
        let Source::Store { rotation_days } = self.source else {
            return Ok(());
        };
        let (signer, public) = load_from_store(db, &self.settings, rotation_days).await?;
        self.verify.replace(&public);
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = public;
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(signer);
        Ok(())
    }

    pub fn signer(&self) -> Arc<Signer> {
        self.signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn jwks(&self) -> serde_json::Value {
        tokens::jwks(&self.public.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The key source for this process's verifiers.
    pub fn verify_keys(&self) -> Arc<StaticKeys> {
        self.verify.clone()
    }
}

async fn load_from_store(
    db: &Db,
    settings: &TokenSettings,
    rotation_days: u32,
) -> anyhow::Result<(Signer, Vec<PublicKey>)> {
    // A retired key verifies as long as a token it signed can live.
    let grace = chrono::Duration::seconds(
        settings.access_ttl.as_secs() as i64 + tokens::LEEWAY_SECS as i64,
    );
    let rows = db
        .write(move |conn| {
            let mut rows = store::keys::usable(conn, now() - grace)?;
            let active = rows.iter().find(|r| r.retired_at.is_none());
            let due = match active {
                None => true,
                Some(k) => {
                    rotation_days > 0
                        && now() - k.created_at > chrono::Duration::days(rotation_days.into())
                }
            };
            if due {
                rotate_in(conn)?;
                rows = store::keys::usable(conn, now() - grace)?;
            }
            Ok(rows)
        })
        .await?;
    let active = rows
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or_else(|| anyhow::anyhow!("no active signing key in the store"))?;
    let signer = Signer::new(
        settings.clone(),
        &KeyPair::from_pem(&active.private_pem).map_err(anyhow::Error::msg)?,
    );
    let public = rows
        .iter()
        .map(|r| PublicKey {
            kid: r.kid.clone(),
            x: r.public_x.clone(),
        })
        .collect();
    Ok((signer, public))
}

fn rotate_in(conn: &mut agora_shared::db::DbConnection) -> AppResult<String> {
    let key = KeyPair::generate();
    let at = now();
    store::keys::insert(
        conn,
        &store::keys::SigningKeyRow {
            kid: key.kid.clone(),
            private_pem: key.private_pem().to_owned(),
            public_x: key.public_key().x,
            created_at: at,
            retired_at: None,
        },
    )?;
    store::keys::retire_others(conn, &key.kid, at)?;
    tracing::info!(kid = %key.kid, "new token signing key in use");
    Ok(key.kid)
}

/// Generates a new signing key in the store and retires the previous one; running processes
/// pick it up at their next reload. Returns the new key id.
pub async fn rotate(db: &Db) -> Result<String, AppError> {
    db.write(rotate_in).await
}
