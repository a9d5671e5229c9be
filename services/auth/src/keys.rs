//! The signing keyring. With `auth.signing_key` configured (required in distributed mode) the
//! key comes from configuration, and `auth.previous_signing_keys` keep verifying. Otherwise
//! (embedded mode) keys are generated into the store and rotated every
//! `auth.key_rotation_days`: the new key signs while tokens of the old one verify until expiry.
//! With `auth.key_encryption_key` set, stored private keys are sealed with AES-256-GCM, each
//! bound to its key id (required for store-managed keys in distributed mode).

use std::sync::{Arc, RwLock};

use agora_shared::{
    AppError, AppResult,
    db::{Db, now},
    sealed::Sealer,
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
        /// Boxed: the cipher state is large and the enum is built once.
        sealer: Option<Box<Sealer>>,
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
                active: KeyPair::from_pem(pem.expose()).map_err(anyhow::Error::msg)?,
                previous: config
                    .previous_signing_keys
                    .iter()
                    .map(|p| KeyPair::from_pem(p.expose()).map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<_>>()?,
            },
            None => Source::Store {
                rotation_days: config.key_rotation_days,
                sealer: config.sealer().map(Box::new),
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
            Source::Store {
                rotation_days,
                sealer,
            } => load_from_store(db, &settings, *rotation_days, sealer.as_deref().cloned()).await?,
        };
        Ok(Arc::new(Self {
            verify: Arc::new(StaticKeys::new(&public)),
            settings,
            source,
            signer: RwLock::new(Arc::new(signer)),
            public: RwLock::new(public),
        }))
    }

    /// Picks up keys rotated by another process (or rotates when due), in store mode; true when
    /// the published key set changed.
    pub async fn reload(&self, db: &Db) -> anyhow::Result<bool> {
        let Source::Store {
            rotation_days,
            sealer,
        } = &self.source
        else {
            return Ok(false);
        };
        let (signer, public) = load_from_store(
            db,
            &self.settings,
            *rotation_days,
            sealer.as_deref().cloned(),
        )
        .await?;
        let kids = |keys: &[PublicKey]| {
            let mut kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
            kids.sort();
            kids
        };
        let changed = kids(&public) != kids(&self.public.read().unwrap_or_else(|p| p.into_inner()));
        self.verify.replace(&public);
        *self.public.write().unwrap_or_else(|p| p.into_inner()) = public;
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(signer);
        Ok(changed)
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
    sealer: Option<Sealer>,
) -> anyhow::Result<(Signer, Vec<PublicKey>)> {
    // A retired key verifies as long as a token it signed can live.
    let grace = chrono::Duration::seconds(
        settings.access_ttl.as_secs() as i64 + tokens::LEEWAY_SECS as i64,
    );
    let seal_with = sealer.clone();
    let due = move |rows: &[store::keys::SigningKeyRow]| match rows
        .iter()
        .find(|r| r.retired_at.is_none())
    {
        None => true,
        Some(k) => {
            rotation_days > 0 && now() - k.created_at > chrono::Duration::days(rotation_days.into())
        }
    };
    // A read first: the periodic reload of an idle service writes nothing unless a rotation is
    // due (then the write transaction checks again, so concurrent replicas rotate once).
    let rows = db
        .read(move |conn| store::keys::usable(conn, now() - grace))
        .await?;
    let rows = if due(&rows) {
        db.write(move |conn| {
            let mut rows = store::keys::usable(conn, now() - grace)?;
            if due(&rows) {
                rotate_in(conn, seal_with.as_ref())?;
                rows = store::keys::usable(conn, now() - grace)?;
            }
            Ok(rows)
        })
        .await?
    } else {
        rows
    };
    let active = rows
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or_else(|| anyhow::anyhow!("no active signing key in the store"))?;
    let pem = open_private_pem(&active.kid, &active.private_pem, sealer.as_ref())?;
    let signer = Signer::new(
        settings.clone(),
        &KeyPair::from_pem(&pem).map_err(anyhow::Error::msg)?,
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

/// The stored private key as PEM, opening it when it was sealed.
fn open_private_pem(kid: &str, stored: &str, sealer: Option<&Sealer>) -> anyhow::Result<String> {
    if !Sealer::is_sealed(stored) {
        // With a key-encryption key, a key in clear is not one this service stored: refused,
        // so that whoever can write the store cannot choose the signing key that way.
        if sealer.is_some() {
            anyhow::bail!(
                "signing key {kid} is stored in clear although auth.key_encryption_key is set; \
                 run `agora admin rotate-signing-key` (with the key-encryption key) to replace it"
            );
        }
        return Ok(stored.to_owned());
    }
    let sealer = sealer.ok_or_else(|| {
        anyhow::anyhow!(
            "invalid configuration: auth.key_encryption_key: is required, the stored signing keys are encrypted"
        )
    })?;
    let plain = sealer.open(stored, kid).map_err(|e| {
        anyhow::anyhow!("invalid configuration: auth.key_encryption_key: signing key {kid}: {e}")
    })?;
    String::from_utf8(plain).map_err(|_| anyhow::anyhow!("stored signing key is not text"))
}

fn rotate_in(
    conn: &mut agora_shared::db::DbConnection,
    sealer: Option<&Sealer>,
) -> AppResult<String> {
    let key = KeyPair::generate();
    let at = now();
    store::keys::insert(
        conn,
        &store::keys::SigningKeyRow {
            kid: key.kid.clone(),
            private_pem: match sealer {
                Some(s) => s.seal(key.private_pem().as_bytes(), &key.kid),
                None => key.private_pem().to_owned(),
            },
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
pub async fn rotate(db: &Db, sealer: Option<Sealer>) -> Result<String, AppError> {
    db.write(move |conn| rotate_in(conn, sealer.as_ref())).await
}
