//! Stripe's side: the tenant's own secret key calls Stripe's API (form-encoded bodies, a
//! Bearer key, an `Idempotency-Key` on every POST so that a retried or repeated call acts
//! once), and Stripe's webhooks are checked on their raw bytes the way Stripe's libraries
//! check them: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of `"{t}.{body}"`
//! under the endpoint's signing secret, compared in constant time against every `v1`, and
//! refused when `t` is older than the tolerance.

use crate::answer::ReadError;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::StripeConfig;

/// Largest answer read from Stripe (its objects are a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Attempts at one call that Stripe asks to retry (429, 5xx, a busy idempotency key, no
/// answer), with the same idempotency key each time.
const ATTEMPTS: u32 = 3;

/// What went wrong at Stripe.
#[derive(Debug, Clone, PartialEq)]
pub enum StripeError {
    /// The key was refused (401): rolled, deleted or mistyped; the tenant gives a new one.
    Unauthorized(String),
    /// Stripe refused the request: its error's code, message and the parameter at fault.
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
        param: Option<String>,
    },
    /// Still failing after the retries Stripe asked for.
    Unavailable(String),
}

impl std::fmt::Display for StripeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthorized(why) => write!(f, "Stripe refused the secret key ({why})"),
            Self::Refused { message, .. } => write!(f, "Stripe refused the request: {message}"),
            Self::Unavailable(why) => write!(f, "Stripe cannot be reached now: {why}"),
        }
    }
}

/// `{"error": {type, code, message, param}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

/// The account a key belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: String,
}

/// A payment intent or charge (the fields Agora checks).
#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    pub id: String,
    /// ISO 4217, lower case.
    pub currency: String,
}

/// A refund or a dispute: its id, status, and the claim Agora tagged it with.
#[derive(Debug, Clone, Deserialize)]
pub struct Object {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, serde_json::Value>,
}

impl Object {
    /// The claim Agora tagged it with (`metadata.agora_claim_id`).
    pub fn claim_id(&self) -> Option<&str> {
        self.metadata.get("agora_claim_id").and_then(|v| v.as_str())
    }
}

#[derive(Debug, Deserialize)]
struct List {
    data: Vec<Object>,
}

/// What a Stripe claim acts on, from the id the tenant gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    PaymentIntent,
    Charge,
    Dispute,
}

impl Target {
    /// The kind of Stripe object `id` names, by its prefix.
    pub fn of(id: &str) -> Option<Self> {
        let (prefix, rest) = id.split_once('_')?;
        if rest.is_empty()
            || rest.len() > 250
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        match prefix {
            "pi" => Some(Self::PaymentIntent),
            "ch" | "py" => Some(Self::Charge),
            "dp" | "du" => Some(Self::Dispute),
            _ => None,
        }
    }
}

/// Stripe's API, with keys the tenants bring.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    config: StripeConfig,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("agora-inventory-sync/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            // The key goes to Stripe's API and nowhere it redirects to.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    /// The account `key` belongs to (`GET /v1/account`): checks the key before it is kept.
    pub async fn account(&self, key: &str) -> Result<Account, StripeError> {
        self.call(key, reqwest::Method::GET, "/v1/account", None, &[])
            .await
    }

    /// The payment intent or charge `id`.
    pub async fn payment(
        &self,
        key: &str,
        target: Target,
        id: &str,
    ) -> Result<Payment, StripeError> {
        let path = match target {
            Target::PaymentIntent => format!("/v1/payment_intents/{id}"),
            _ => format!("/v1/charges/{id}"),
        };
        self.call(key, reqwest::Method::GET, &path, None, &[]).await
    }

    /// The refund of payment intent or charge `id` made for claim `claim_id`, if Stripe has
    /// one (`GET /v1/refunds`, its 100 newest): a submit whose answer was lost, or that comes
    /// back after Stripe forgot its idempotency key (24 h), finds it instead of refunding again.
    pub async fn refund_for_claim(
        &self,
        key: &str,
        target: Target,
        id: &str,
        claim_id: &str,
    ) -> Result<Option<Object>, StripeError> {
        let field = match target {
            Target::PaymentIntent => "payment_intent",
            _ => "charge",
        };
        let path = format!("/v1/refunds?{field}={id}&limit=100");
        let list: List = self
            .call(key, reqwest::Method::GET, &path, None, &[])
            .await?;
        Ok(list
            .data
            .into_iter()
            .find(|r| r.claim_id() == Some(claim_id)))
    }

    /// Dispute `id`.
    pub async fn dispute(&self, key: &str, id: &str) -> Result<Object, StripeError> {
        self.call(
            key,
            reqwest::Method::GET,
            &format!("/v1/disputes/{id}"),
            None,
            &[],
        )
        .await
    }

    /// Refunds `amount` (minor units) of payment intent or charge `id` for claim `claim_id`
    /// (`POST /v1/refunds`). The same `idempotency_key` makes one refund however often it is
    /// sent.
    pub async fn refund(
        &self,
        key: &str,
        idempotency_key: &str,
        target: Target,
        id: &str,
        amount: i64,
        claim_id: &str,
    ) -> Result<Object, StripeError> {
        let field = match target {
            Target::PaymentIntent => "payment_intent",
            _ => "charge",
        };
        let amount = amount.to_string();
        let form = [
            (field, id),
            ("amount", amount.as_str()),
            ("metadata[agora_claim_id]", claim_id),
        ];
        self.call(
            key,
            reqwest::Method::POST,
            "/v1/refunds",
            Some(idempotency_key),
            &form,
        )
        .await
    }

    /// Answers dispute `id` with `evidence` and submits it (`POST /v1/disputes/{id}`,
    /// `submit=true`: Stripe sends it to the bank, which cannot be undone).
    pub async fn answer_dispute(
        &self,
        key: &str,
        idempotency_key: &str,
        id: &str,
        evidence: &str,
        claim_id: &str,
    ) -> Result<Object, StripeError> {
        let form = [
            ("evidence[uncategorized_text]", evidence),
            ("metadata[agora_claim_id]", claim_id),
            ("submit", "true"),
        ];
        self.call(
            key,
            reqwest::Method::POST,
            &format!("/v1/disputes/{id}"),
            Some(idempotency_key),
            &form,
        )
        .await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        idempotency_key: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<T, StripeError> {
        let mut wait = Duration::from_millis(500);
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(key);
            if let Some(k) = idempotency_key {
                request = request.header("Idempotency-Key", k);
            }
            if method == reqwest::Method::POST {
                request = request.form(form);
            }
            let (status, retry, body) = match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // Stripe says whether a retry can help; without the header, 409 (a
                    // concurrent request with the key), 429 and 5xx may be retried.
                    let retry = match resp
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                    {
                        Some("true") => true,
                        Some("false") => false,
                        _ => status == 409 || status == 429 || status >= 500,
                    };
                    (status, retry, read(resp).await)
                }
                Err(e) => (
                    0,
                    true,
                    Err(if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection failed".into()
                    }),
                ),
            };
            match (status, body) {
                (200..=299, Ok(body)) => {
                    return serde_json::from_slice(&body).map_err(|e| {
                        StripeError::Unavailable(format!("{path} answered unreadably: {e}"))
                    });
                }
                (401, Ok(body)) => {
                    return Err(StripeError::Unauthorized(
                        error_of(&body).message.unwrap_or_else(|| "401".into()),
                    ));
                }
                (status, Ok(body)) if !retry || attempt == ATTEMPTS => {
                    let e = error_of(&body);
                    if retry {
                        return Err(StripeError::Unavailable(format!(
                            "{path} answered {status}"
                        )));
                    }
                    return Err(StripeError::Refused {
                        status,
                        code: e.code,
                        message: e
                            .message
                            .unwrap_or_else(|| format!("{path} answered {status}")),
                        param: e.param,
                    });
                }
                (status, Ok(_)) => last = format!("{path} answered {status}"),
                (_, Err(why)) => last = format!("{path}: {why}"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(StripeError::Unavailable(last))
    }
}

fn error_of(body: &[u8]) -> ErrorDetail {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default()
}

async fn read(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    crate::answer::read_capped(resp, MAX_BODY)
        .await
        .map_err(|e| match e {
            ReadError::BrokeOff(_) => "the answer broke off".to_owned(),
            ReadError::TooLarge => "the answer is larger than 1 MiB".to_owned(),
        })
}

/// Why a webhook's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No `t=` with a number, or no `v1=` signature.
    Malformed,
    /// No `v1` signature is the payload's under the secret.
    Mismatch,
    /// Signed longer ago than the tolerance.
    TooOld { age_secs: i64 },
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => {
                f.write_str("the Stripe-Signature header has no timestamp (t=) or no v1 signature")
            }
            Self::Mismatch => f.write_str("no v1 signature matches the payload"),
            Self::TooOld { age_secs } => write!(
                f,
                "the signature was made {age_secs} s ago, more than the tolerance allows"
            ),
        }
    }
}

/// Checks a `Stripe-Signature` header against the raw `payload` and the endpoint's `secret`
/// (`whsec_...`, used whole as the HMAC key) at unix time `now`, as Stripe's libraries do:
/// every `v1` is tried, in constant time; other schemes (`v0`) are ignored; a timestamp more
/// than `tolerance_secs` old is refused (as theirs, a later one is not). Answers the signed
/// timestamp.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    payload: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    // As Stripe's libraries read it: items split at `,`, the value is what follows the first
    // `=` up to any next one, the first `t` wins.
    for item in header.split(',') {
        let mut parts = item.split('=');
        let key = parts.next().unwrap_or_default();
        let value = parts.next();
        match (key, value) {
            ("t", Some(value)) if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            ("t", None) if timestamp.is_none() => return Err(SignatureError::Malformed),
            ("v1", Some(value)) => signatures.push(value),
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    // HMAC takes keys of any length; an error here is impossible, and would be a refusal.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // Lower-case hex, compared as text (an upper-case spelling is not Stripe's).
    let expected = hex::encode(mac.finalize().into_bytes());
    // Every signature is compared, each in constant time.
    let mut matched = false;
    for signature in signatures {
        matched |= bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            signature.as_bytes(),
        ));
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age_secs = now.saturating_sub(t);
    if age_secs > i64::try_from(tolerance_secs).unwrap_or(i64::MAX) {
        return Err(SignatureError::TooOld { age_secs });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"refund.updated"}"#;
    // HMAC-SHA256 of "1700000000." + BODY under SECRET and under "whsec_old", computed
    // outside this code (Python's hmac); CI checks the same against Stripe's own library.
    const V1: &str = "42e3cfc9bb3059c16a968030c277da3c18f1524fc11ecf5775f90973a4f10e56";
    const V1_OLD: &str = "078af437e55bd5648e7e39e6bab2807bdf0cc6a5acc9c3f0ba87b2898cf6e870";

    #[test]
    fn a_header_stripe_makes_verifies() {
        let header = format!("t=1700000000,v1={V1}");
        assert_eq!(
            verify_signature(SECRET, &header, BODY, 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
        // Stripe's own example layout: v0 first, two v1 while a secret is rolled.
        let both = format!("t=1700000000,v0=abcdef,v1={V1_OLD},v1={V1}");
        assert_eq!(
            verify_signature(SECRET, &both, BODY, 1_700_000_000, 300),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn forged_stale_and_malformed_headers_are_refused() {
        let header = format!("t=1700000000,v1={V1}");
        // Another secret, another body, another timestamp.
        assert_eq!(
            verify_signature(b"whsec_other", &header, BODY, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, &header, b"{\"id\":\"evt_2\"}", 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_signature(SECRET, &moved, BODY, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        // Right signature, too old; exactly at the tolerance still passes.
        assert_eq!(
            verify_signature(SECRET, &header, BODY, 1_700_000_301, 300),
            Err(SignatureError::TooOld { age_secs: 301 })
        );
        assert!(verify_signature(SECRET, &header, BODY, 1_700_000_300, 300).is_ok());
        // Only v0, no timestamp, no signature, garbage.
        let v0 = header.replace("v1=", "v0=");
        for bad in [
            v0.as_str(),
            "v1=00",
            "t=1700000000",
            "",
            "t=x,v1=00",
            "garbage",
        ] {
            assert_eq!(
                verify_signature(SECRET, bad, BODY, 1_700_000_000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A truncated, upper-case or padded v1 matches nothing.
        let short = &header[..header.len() - 2];
        let upper = format!("t=1700000000,v1={}", V1.to_uppercase());
        let padded = format!("t=1700000000,v1={V1}=x0");
        for bad in [short, upper.as_str()] {
            assert_eq!(
                verify_signature(SECRET, bad, BODY, 1_700_000_000, 300),
                Err(SignatureError::Mismatch),
                "{bad}"
            );
        }
        // What follows a second `=` is not part of the value (Stripe's reading).
        assert!(verify_signature(SECRET, &padded, BODY, 1_700_000_000, 300).is_ok());
        // A bare `t` is no timestamp, even with one after it.
        let bare = format!("t,t=1700000000,v1={V1}");
        assert_eq!(
            verify_signature(SECRET, &bare, BODY, 1_700_000_000, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn targets_by_prefix() {
        assert_eq!(Target::of("pi_3Mtw"), Some(Target::PaymentIntent));
        assert_eq!(Target::of("ch_1"), Some(Target::Charge));
        assert_eq!(Target::of("dp_1"), Some(Target::Dispute));
        for bad in ["re_1", "pi_", "pi", "pi_1/../x", "pi_1?x=y", ""] {
            assert_eq!(Target::of(bad), None, "{bad}");
        }
    }
}
