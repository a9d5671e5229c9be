//! The gateway's word, to the service behind it, that an access token's revocation was checked
//! moments ago: header `x-agora-revocation-checked: <unix ms>.<HMAC-SHA256>` over the token id
//! and that time, keyed from the peer secret every service shares (`auth_peer.secret`). A
//! service that verifies the token's signature and finds a fresh vouch for that very token id
//! skips its own denylist lookup, so an authenticated request costs one Redis round trip on the
//! whole path (the gateway's). Without the secret a vouch cannot be made: a client's header is
//! worth nothing (the gateway also drops it), and a vouch for one token says nothing of another.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The header a vouch travels in.
pub const REVOCATION_CHECKED: &str = "x-agora-revocation-checked";

/// How long a vouch stands, either way of the verifier's clock (replicas' clocks differ a
/// little; a request reaches the service within milliseconds of the check).
pub const VOUCH_MS: i64 = 5_000;

type HmacSha256 = Hmac<Sha256>;

/// Makes and checks vouches under a key derived from the peer secret (never the secret
/// itself, which travels as a credential to auth).
#[derive(Clone)]
pub struct Vouches {
    key: [u8; 32],
}

impl std::fmt::Debug for Vouches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vouches(..)")
    }
}

impl Vouches {
    pub fn new(peer_secret: &Secret) -> Self {
        let mut mac = HmacSha256::new_from_slice(peer_secret.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"agora revocation-checked vouch key v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, jti: &str, at_ms: i64) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(at_ms.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(jti.as_bytes());
        mac
    }

    /// A vouch that `jti` was found unrevoked at `now_ms`.
    pub fn sign(&self, jti: &str, now_ms: i64) -> String {
        let tag = self.mac(jti, now_ms).finalize().into_bytes();
        format!("{now_ms}.{}", hex::encode(tag))
    }

    /// Whether `value` vouches for `jti` and is fresh at `now_ms` (compared in constant time).
    pub fn check(&self, value: &str, jti: &str, now_ms: i64) -> bool {
        let Some((at, tag)) = value.split_once('.') else {
            return false;
        };
        let (Ok(at_ms), Ok(tag)) = (at.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        if at_ms.abs_diff(now_ms) > VOUCH_MS as u64 {
            return false;
        }
        self.mac(jti, at_ms).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vouch_holds_for_its_token_its_key_and_a_few_seconds() {
        let vouches = Vouches::new(&Secret::new("peer-secret-of-this-platform-0123"));
        let now = 1_800_000_000_000;
        let v = vouches.sign("jti-1", now);
        assert!(vouches.check(&v, "jti-1", now));
        assert!(vouches.check(&v, "jti-1", now + VOUCH_MS));
        assert!(!vouches.check(&v, "jti-1", now + VOUCH_MS + 1), "stale");
        assert!(!vouches.check(&v, "jti-2", now), "another token");
        let other = Vouches::new(&Secret::new("another-platform-secret-0123456789"));
        assert!(!other.check(&v, "jti-1", now), "another key");
        // Moving the time forward breaks the tag.
        let (_, tag) = v.split_once('.').unwrap();
        assert!(!vouches.check(&format!("{}.{tag}", now + 1), "jti-1", now));
        for bogus in ["", "1", "x.y", &format!("{now}."), &format!("{now}.zz")] {
            assert!(!vouches.check(bogus, "jti-1", now), "{bogus:?}");
        }
    }
}
