//! Secrets at rest: values sealed with AES-256-GCM under a key-encryption key from
//! configuration, stored as `sealed:v2:<base64(nonce || ciphertext)>`. Each value is bound to
//! what it belongs to (associated data, e.g. the id of its row), so a sealed value copied onto
//! another row does not open there. `sealed:v1:` values (no associated data) still open.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};

const PREFIX: &str = "sealed:v2:";
const PREFIX_V1: &str = "sealed:v1:";

/// Seals and opens values with one key-encryption key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// From the base64 of 32 random bytes (e.g. `openssl rand -base64 32`).
    pub fn from_base64(key: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| "must be base64".to_owned())?;
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| "must be 32 bytes (base64 of 32 random bytes)".to_owned())?;
        Ok(Self { cipher })
    }

    /// `plaintext` sealed for `bound_to` (it opens only with the same value).
    pub fn seal(&self, plaintext: &[u8], bound_to: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: bound_to.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .expect("AES-GCM encryption of a bounded value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// The plaintext of a value sealed for `bound_to`; fails for a wrong key, a value sealed
    /// for something else, or a tampered value.
    /// `open` of sealed text (a key, a token, a verifier): the text it was.
    pub fn open_text(&self, sealed: &str, bound_to: &str) -> Result<String, String> {
        String::from_utf8(self.open(sealed, bound_to)?)
            .map_err(|_| "the sealed value is not text".to_owned())
    }

    pub fn open(&self, sealed: &str, bound_to: &str) -> Result<Vec<u8>, String> {
        let (raw, aad) = match (sealed.strip_prefix(PREFIX), sealed.strip_prefix(PREFIX_V1)) {
            (Some(raw), _) => (raw, bound_to.as_bytes()),
            (None, Some(raw)) => (raw, &b""[..]),
            (None, None) => return Err("not a sealed value".into()),
        };
        let bytes = STANDARD
            .decode(raw)
            .map_err(|_| "sealed value is not base64")?;
        if bytes.len() < 12 {
            return Err("sealed value is truncated".into());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| "sealed value is truncated")?;
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        self.cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| {
                "cannot be opened with this key (wrong key, sealed for another row, or tampered)"
                    .into()
            })
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX) || value.starts_with(PREFIX_V1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse() {
        let key = STANDARD.encode([7u8; 32]);
        let sealer = Sealer::from_base64(&key).unwrap();
        let sealed = sealer.seal(b"-----BEGIN PRIVATE KEY-----", "kid-1");
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("PRIVATE"));
        assert_eq!(
            sealer.open(&sealed, "kid-1").unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert_ne!(
            sealer.seal(b"x", "a"),
            sealer.seal(b"x", "a"),
            "fresh nonce each time"
        );
        // Bound to its row: the same value under another id does not open.
        let err = sealer.open(&sealed, "kid-2").unwrap_err();
        assert!(err.contains("sealed for another row"), "{err}");
        let other = Sealer::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open(&sealed, "kid-1").is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(sealer.open(&tampered, "kid-1").is_err());
        assert!(Sealer::from_base64("short").is_err());
        assert!(format!("{sealer:?}") == "Sealer(***)");
    }

    #[test]
    fn values_of_the_first_format_still_open() {
        use aes_gcm::aead::Aead;
        let sealer = Sealer::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let nonce = [3u8; 12];
        let ciphertext = sealer
            .cipher
            .encrypt(&Nonce::from(nonce), &b"old"[..])
            .unwrap();
        let v1 = format!(
            "{PREFIX_V1}{}",
            STANDARD.encode([&nonce[..], &ciphertext].concat())
        );
        assert!(Sealer::is_sealed(&v1));
        assert_eq!(sealer.open(&v1, "any-kid").unwrap(), b"old");
    }
}
