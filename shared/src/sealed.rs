//! Secrets at rest: values sealed with AES-256-GCM under a key-encryption key from
//! configuration, stored as `sealed:v1:<base64(nonce || ciphertext)>`.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use base64::{Engine, engine::general_purpose::STANDARD};

const PREFIX: &str = "sealed:v1:";

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

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("AES-GCM encryption of a bounded value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// The plaintext of a sealed value; fails for a wrong key or a tampered value.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, String> {
        let raw = sealed.strip_prefix(PREFIX).ok_or("not a sealed value")?;
        let bytes = STANDARD
            .decode(raw)
            .map_err(|_| "sealed value is not base64")?;
        if bytes.len() < 12 {
            return Err("sealed value is truncated".into());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| "sealed value is truncated")?;
        self.cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| "cannot be opened with this key (wrong key or tampered value)".into())
    }

    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse() {
        let key = STANDARD.encode([7u8; 32]);
        let sealer = Sealer::from_base64(&key).unwrap();
        let sealed = sealer.seal(b"-----BEGIN PRIVATE KEY-----");
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("PRIVATE"));
        assert_eq!(
            sealer.open(&sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert_ne!(
            sealer.seal(b"x"),
            sealer.seal(b"x"),
            "fresh nonce each time"
        );
        let other = Sealer::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(sealer.open(&tampered).is_err());
        assert!(Sealer::from_base64("short").is_err());
        assert!(format!("{sealer:?}") == "Sealer(***)");
    }
}
