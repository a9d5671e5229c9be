//! Auth rules without I/O: password policy and hashing, token generation, lockout backoff, and
//! the enumerations stored as text.

use std::{sync::OnceLock, time::Duration};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

use agora_shared::{AppError, FieldError};

/// Tenant plans.
pub const PLANS: [&str; 4] = ["FREE", "STARTER", "PROFESSIONAL", "ENTERPRISE"];
pub const DEFAULT_PLAN: &str = "STARTER";
pub const TENANT_ACTIVE: &str = "ACTIVE";
pub const TENANT_SUSPENDED: &str = "SUSPENDED";
pub const TENANT_STATUSES: [&str; 2] = ["ACTIVE", "SUSPENDED"];

pub const USER_ACTIVE: &str = "ACTIVE";
pub const USER_INACTIVE: &str = "INACTIVE";
pub const USER_INVITED: &str = "INVITED";

pub const PURPOSE_RESET: &str = "PASSWORD_RESET";
pub const PURPOSE_INVITE: &str = "INVITATION";

/// Name of the tenant that holds platform administrators.
pub const PLATFORM_TENANT: &str = "platform";

/// The platform admins' tenant name is reserved: a tenant registered or renamed "Platform"
/// before the first platform admin is created would otherwise receive them.
pub fn reserved_tenant_name(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case(PLATFORM_TENANT)
}

/// 409 for a reserved tenant name.
pub fn tenant_name_reserved() -> agora_shared::AppError {
    agora_shared::AppError::Conflict("this tenant name is reserved".into())
        .with_code("auth.tenant_name_reserved")
}

pub const RESET_TTL: Duration = Duration::from_secs(30 * 60);
pub const INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks the password policy: 8-128 characters with a lower-case letter, an upper-case letter,
/// a digit and a symbol. Returns the broken rules for field `field`.
pub fn check_password(field: &str, password: &str) -> Vec<FieldError> {
    let mut broken = Vec::new();
    let len = password.chars().count();
    let mut rule = |ok: bool, message: &str| {
        if !ok {
            broken.push(FieldError::new(field, message));
        }
    };
    rule((8..=128).contains(&len), "must be 8 to 128 characters long");
    rule(
        password.chars().any(|c| c.is_lowercase()),
        "must contain a lower-case letter",
    );
    rule(
        password.chars().any(|c| c.is_uppercase()),
        "must contain an upper-case letter",
    );
    rule(
        password.chars().any(|c| c.is_ascii_digit()),
        "must contain a digit",
    );
    rule(
        password
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace()),
        "must contain a symbol",
    );
    broken
}

/// Argon2id with the library's defaults (19 MiB, 2 passes). CPU-bound: call off the runtime.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}

/// Verifies `password` against a stored hash; `None` runs a dummy verification so unknown
/// accounts take as long as known ones.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let stored = stored.unwrap_or_else(|| dummy_hash());
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && stored != dummy_hash()
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("dummy-Password-1!").expect("hashing a constant works"))
}

/// A random secret: `prefix` + 32 random bytes in base64url.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// How high-entropy secrets (refresh, reset, invitation tokens and API keys) are stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Lockout after `failures` consecutive failed logins: none below `threshold`, then `base`
/// doubling per further failure, capped at `max`.
pub fn lockout(failures: u32, threshold: u32, base: Duration, max: Duration) -> Option<Duration> {
    if failures < threshold {
        return None;
    }
    let doublings = (failures - threshold).min(20);
    Some(base.saturating_mul(1 << doublings).min(max))
}

/// Lower-cased, trimmed email.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Permissions are `service:action` words.
pub fn check_permissions(field: &str, permissions: &[String]) -> Vec<FieldError> {
    permissions
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let Some((svc, action)) = p.split_once(':') else {
                return true;
            };
            let word = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
            };
            !(word(svc) && word(action))
        })
        .map(|(i, _)| FieldError::new(format!("{field}[{i}]"), "must look like `service:action`"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy_names_each_rule() {
        assert!(check_password("password", "Str0ng!pass").is_empty());
        let broken = check_password("password", "short");
        let messages: Vec<_> = broken.iter().map(|e| e.message.as_str()).collect();
        assert!(messages.contains(&"must be 8 to 128 characters long"));
        assert!(messages.contains(&"must contain an upper-case letter"));
        assert!(messages.contains(&"must contain a digit"));
        assert!(messages.contains(&"must contain a symbol"));
        assert!(!messages.contains(&"must contain a lower-case letter"));
        assert_eq!(check_password("p", &"Aa1!".repeat(33)).len(), 1);
    }

    #[test]
    fn hashes_verify_and_dummy_never_matches() {
        let hash = hash_password("Str0ng!pass").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("Str0ng!pass", Some(&hash)));
        assert!(!verify_password("wrong", Some(&hash)));
        assert!(!verify_password("dummy-Password-1!", None));
    }

    #[test]
    fn lockout_backs_off_and_caps() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(900);
        assert_eq!(lockout(4, 5, base, max), None);
        assert_eq!(lockout(5, 5, base, max), Some(Duration::from_secs(30)));
        assert_eq!(lockout(6, 5, base, max), Some(Duration::from_secs(60)));
        assert_eq!(lockout(40, 5, base, max), Some(max));
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = random_secret("agk_");
        assert!(a.starts_with("agk_") && a.len() > 40);
        assert_ne!(a, random_secret("agk_"));
        assert_eq!(secret_hash(&a).len(), 64);
    }

    #[test]
    fn permission_format() {
        assert!(check_permissions("p", &["tickets:manage".into()]).is_empty());
        assert_eq!(
            check_permissions("p", &["admin".into(), "x:Y".into()]).len(),
            2
        );
    }
}
