//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, checked for issuer, audience, expiry and
//! not-before with a small clock skew; the JWKS document that publishes the public keys; a key
//! source that caches a remote JWKS and refetches it, at a bounded rate, on an unknown `kid`; and
//! the denylist of revoked token ids that verifiers consult.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AppError;

mod denylist;
mod keys;
mod vouch;

pub use denylist::{Denylist, Entries, MemoryDenylist, subjects};
pub use keys::{KeySource, RemoteJwks, StaticKeys};
pub use vouch::{REVOCATION_CHECKED, VOUCH_MS, Vouches};

/// Allowed clock difference between issuer and verifier.
pub const LEEWAY_SECS: u64 = 30;

/// An Ed25519 signing key with its key id.
#[derive(Clone)]
pub struct KeyPair {
    pub kid: String,
    private_pem: String,
    public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    pub fn generate() -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_signing_key(&key)
    }

    /// From a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| format!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        Ok(Self::from_signing_key(&key))
    }

    fn from_signing_key(key: &ed25519_dalek::SigningKey) -> Self {
        let public = key.verifying_key().to_bytes();
        let private_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key always encodes as PKCS#8")
            .to_string();
        Self {
            kid: kid_for(&public),
            private_pem,
            public,
        }
    }

    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            x: URL_SAFE_NO_PAD.encode(self.public),
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ed_pem(self.private_pem.as_bytes())
            .expect("PEM produced by to_pkcs8_pem parses")
    }
}

/// The key id: the start of the SHA-256 of the public key, so every replica derives the same.
fn kid_for(public: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12])
}

/// A public verification key as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// Base64url of the 32-byte Ed25519 public key.
    pub x: String,
}

/// The JWKS document for `keys`.
pub fn jwks(keys: &[PublicKey]) -> serde_json::Value {
    serde_json::json!({
        "keys": keys.iter().map(|k| serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.x,
        })).collect::<Vec<_>>()
    })
}

/// Claims of an Agora access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    pub role: String,
    #[serde(default)]
    pub perms: Vec<String>,
    /// The tenant's plan when the token was issued (rate limits by plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    pub email: String,
    /// Session (refresh-token family) the token was issued in; logout ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

impl Claims {
    /// When the token was issued, in milliseconds: from its id (a UUIDv7 carries its creation
    /// time) so that a cut-off made in the same second as the token tells before from after;
    /// the start of `iat`'s second for an id that is not one.
    pub fn issued_ms(&self) -> i64 {
        uuid::Uuid::parse_str(&self.jti)
            .ok()
            .filter(|id| id.get_version_num() == 7)
            .and_then(|id| id.get_timestamp())
            .map(|ts| {
                let (secs, nanos) = ts.to_unix();
                secs as i64 * 1000 + i64::from(nanos / 1_000_000)
            })
            .unwrap_or(self.iat * 1000)
    }
}

/// Issuer and audience every token carries.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

/// Signs access tokens with the active key.
pub struct Signer {
    settings: TokenSettings,
    kid: String,
    key: EncodingKey,
}

/// What a token is issued for.
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub tenant_id: &'a str,
    pub role: &'a str,
    pub permissions: &'a [String],
    pub email: &'a str,
    pub session_id: Option<&'a str>,
    pub plan: Option<&'a str>,
}

impl Signer {
    pub fn new(settings: TokenSettings, key: &KeyPair) -> Self {
        Self {
            settings,
            kid: key.kid.clone(),
            key: key.encoding_key(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn ttl(&self) -> Duration {
        self.settings.access_ttl
    }

    /// Issues an access token; returns it with its claims.
    pub fn issue(&self, subject: &Subject<'_>) -> Result<(String, Claims), AppError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: subject.user_id.to_owned(),
            tid: subject.tenant_id.to_owned(),
            role: subject.role.to_owned(),
            perms: subject.permissions.to_vec(),
            plan: subject.plan.map(str::to_owned),
            email: subject.email.to_owned(),
            sid: subject.session_id.map(str::to_owned),
            jti: uuid::Uuid::now_v7().to_string(),
            iat: now,
            nbf: now,
            exp: now + self.settings.access_ttl.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing failed: {e}")))?;
        Ok((token, claims))
    }
}

/// Verifies access tokens: EdDSA only, known `kid`, issuer, audience, time, denylist.
pub struct Verifier {
    keys: Arc<dyn KeySource>,
    denylist: Arc<dyn Denylist>,
    validation: Validation,
    /// Makes and accepts the gateway's vouches that a token's revocation was checked.
    vouches: Option<Vouches>,
}

/// A token's revocation check, left to the caller to fold into a round trip of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationCheck {
    pub jti: String,
    /// The subjects whose cut-offs refuse the token (`denylist::subjects`).
    pub subjects: Vec<String>,
    pub issued_ms: i64,
}

/// What `Verifier::verify_with` does about revocation.
#[derive(Debug, Clone, Copy)]
pub enum Revocation<'a> {
    /// Asks the denylist.
    Check,
    /// Trusts a fresh vouch for this token (the header's value, when present) and otherwise
    /// asks the denylist.
    Vouched(Option<&'a str>),
    /// Leaves the check to the caller (`RevocationCheck`), who must make it before trusting
    /// the claims.
    Defer,
}

impl Verifier {
    pub fn new(
        issuer: &str,
        audience: &str,
        keys: Arc<dyn KeySource>,
        denylist: Arc<dyn Denylist>,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            keys,
            denylist,
            validation,
            vouches: None,
        }
    }

    /// Makes and accepts revocation vouches keyed from the peer secret (none without one).
    pub fn with_vouches(mut self, peer_secret: Option<&crate::config::Secret>) -> Self {
        self.vouches = peer_secret.map(Vouches::new);
        self
    }

    pub fn denylist(&self) -> &Arc<dyn Denylist> {
        &self.denylist
    }

    /// A vouch that `jti` was found unrevoked just now, when this verifier has the key.
    pub fn vouch_for(&self, jti: &str) -> Option<String> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.vouches.as_ref().map(|v| v.sign(jti, now_ms))
    }

    /// Verified claims, or 401 naming the reason in general terms.
    pub async fn verify(&self, token: &str) -> Result<Claims, AppError> {
        self.verify_with(token, Revocation::Check)
            .await
            .map(|(claims, _)| claims)
    }

    /// Verified claims, with the revocation check when `revocation` defers it.
    pub async fn verify_with(
        &self,
        token: &str,
        revocation: Revocation<'_>,
    ) -> Result<(Claims, Option<RevocationCheck>), AppError> {
        let unauthorized =
            |why: &str| AppError::Unauthorized(format!("invalid access token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(unauthorized("unsupported algorithm"));
        }
        let kid = header.kid.ok_or_else(|| unauthorized("no key id"))?;
        let key = self
            .keys
            .key(&kid)
            .await
            .ok_or_else(|| unauthorized("unknown key id"))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthorized("expired"),
                ErrorKind::ImmatureSignature => unauthorized("not yet valid"),
                ErrorKind::InvalidAudience => unauthorized("wrong audience"),
                ErrorKind::InvalidIssuer => unauthorized("wrong issuer"),
                _ => unauthorized("bad signature or claims"),
            }
        })?;
        let c = &data.claims;
        let vouched = match (revocation, &self.vouches) {
            (Revocation::Vouched(Some(value)), Some(vouches)) => {
                vouches.check(value, &c.jti, chrono::Utc::now().timestamp_millis())
            }
            _ => false,
        };
        let check = RevocationCheck {
            jti: c.jti.clone(),
            subjects: denylist::subjects(&c.sub, &c.tid, c.sid.as_deref()),
            issued_ms: c.issued_ms(),
        };
        if vouched {
            // What this process knows costs nothing to ask, and holds even where the shared
            // list lost an entry (a Redis restart, an eviction, a write that failed).
            if self
                .denylist
                .refuses_locally(&check.jti, &check.subjects, check.issued_ms)
            {
                return Err(revoked());
            }
            return Ok((data.claims, None));
        }
        if let Revocation::Defer = revocation {
            return Ok((data.claims, Some(check)));
        }
        if self
            .denylist
            .refuses(&check.jti, &check.subjects, check.issued_ms)
            .await?
        {
            return Err(revoked());
        }
        Ok((data.claims, None))
    }
}

/// Why a revoked token is refused.
pub const REVOKED: &str = "invalid access token: revoked";

/// The refusal of a revoked token.
pub fn revoked() -> AppError {
    AppError::Unauthorized(REVOKED.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "agora".into(),
            audience: "agora-api".into(),
            access_ttl: Duration::from_secs(900),
        }
    }

    fn subject() -> Subject<'static> {
        Subject {
            user_id: "u1",
            tenant_id: "t1",
            role: "TENANT_USER",
            permissions: &[],
            email: "a@b.c",
            session_id: None,
            plan: None,
        }
    }

    fn verifier_for(keys: &[PublicKey]) -> Verifier {
        Verifier::new(
            "agora",
            "agora-api",
            Arc::new(StaticKeys::new(keys)),
            Arc::new(MemoryDenylist::default()),
        )
    }

    #[tokio::test]
    async fn round_trip_and_denylist() {
        let key = KeyPair::generate();
        let signer = Signer::new(settings(), &key);
        let verifier = verifier_for(&[key.public_key()]);
        let (token, claims) = signer.issue(&subject()).unwrap();
        let verified = verifier.verify(&token).await.unwrap();
        assert_eq!(verified, claims);
        verifier.denylist().deny(&claims.jti, claims.exp).await;
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(err.to_string().contains("revoked"));
    }

    #[tokio::test]
    async fn rejects_foreign_keys_and_audiences() {
        let key = KeyPair::generate();
        let other = KeyPair::generate();
        let (token, _) = Signer::new(settings(), &other).issue(&subject()).unwrap();
        // Unknown kid.
        assert!(
            verifier_for(&[key.public_key()])
                .verify(&token)
                .await
                .is_err()
        );
        // Same kid published with the wrong public key: bad signature.
        let forged = PublicKey {
            kid: other.kid.clone(),
            x: key.public_key().x,
        };
        assert!(verifier_for(&[forged]).verify(&token).await.is_err());
        let mut s = settings();
        s.audience = "elsewhere".into();
        let (token, _) = Signer::new(s, &key).issue(&subject()).unwrap();
        let err = verifier_for(&[key.public_key()])
            .verify(&token)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("audience"));
    }

    #[test]
    fn pem_round_trip_keeps_kid() {
        let key = KeyPair::generate();
        let again = KeyPair::from_pem(key.private_pem()).unwrap();
        assert_eq!(again.kid, key.kid);
        assert!(KeyPair::from_pem("not a key").is_err());
    }
}
