//! Amazon's side: Login with Amazon (a seller's refresh token for an access token) and the
//! Selling Partner API's FBA inventory (`getInventorySummaries`, paged by `nextToken`), over
//! HTTP with the endpoints from configuration. Errors say what the caller should do: reconnect
//! (`invalid_grant`), wait and retry (429, 5xx), or give up.

use crate::answer::ReadError;
use std::time::Duration;

use serde::Deserialize;

use crate::config::AmazonConfig;

/// Largest answer read from Amazon (a page of 50 summaries is a few tens of KiB).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// What went wrong at Amazon.
#[derive(Debug, Clone, PartialEq)]
pub enum AmazonError {
    /// The refresh token is revoked, expired or not this application's: reconnect.
    InvalidGrant(String),
    /// The access token was refused (expired early, say): refresh it and try again.
    Unauthorized,
    /// 429 or 5xx or no answer: try again, after `Retry-After` when given.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Anything else: retrying will not help.
    Failed(String),
    /// The application has no LWA credentials in configuration.
    NotConfigured,
}

impl std::fmt::Display for AmazonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidGrant(why) => write!(
                f,
                "Amazon refused the seller's authorization ({why}); reconnect"
            ),
            Self::Unauthorized => f.write_str("Amazon refused the access token"),
            Self::Retry { reason, .. } => write!(f, "Amazon asked to retry: {reason}"),
            Self::Failed(why) => write!(f, "Amazon: {why}"),
            Self::NotConfigured => f.write_str(
                "Amazon is not configured (inventory_sync.amazon.client_id and client_secret)",
            ),
        }
    }
}

/// An access token and how long it lives.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: Duration,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

/// One item of `getInventorySummaries` (the fields Agora keeps; others are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Summary {
    pub asin: Option<String>,
    pub fn_sku: Option<String>,
    pub seller_sku: Option<String>,
    pub product_name: Option<String>,
    pub total_quantity: Option<i64>,
    pub inventory_details: Option<Details>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Details {
    pub fulfillable_quantity: Option<i64>,
    pub inbound_working_quantity: Option<i64>,
    pub inbound_shipped_quantity: Option<i64>,
    pub inbound_receiving_quantity: Option<i64>,
    pub reserved_quantity: Option<Total>,
    pub unfulfillable_quantity: Option<Total>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Total {
    #[serde(rename = "totalReservedQuantity", alias = "totalUnfulfillableQuantity")]
    pub total: Option<i64>,
}

/// A page of summaries and the token of the next one.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub summaries: Vec<Summary>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageAnswer {
    pagination: Option<Pagination>,
    payload: Option<Payload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Pagination {
    next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Payload {
    inventory_summaries: Vec<Summary>,
}

/// Amazon's endpoints with this application's credentials.
#[derive(Clone)]
pub struct Amazon {
    http: reqwest::Client,
    config: AmazonConfig,
}

impl Amazon {
    pub fn new(config: AmazonConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("agora-inventory-sync/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            // A token endpoint that redirects is not followed: the refresh token stays here.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &AmazonConfig {
        &self.config
    }

    /// Exchanges a seller's refresh token for an access token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<AccessToken, AmazonError> {
        let (Some(id), Some(secret)) = (&self.config.client_id, &self.config.client_secret) else {
            return Err(AmazonError::NotConfigured);
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", id.as_str()),
            ("client_secret", secret.expose()),
        ];
        let resp = self
            .http
            .post(&self.config.lwa_url)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let after = retry_after(&resp);
        let body = read(resp).await?;
        if status.is_success() {
            let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
                AmazonError::Failed(format!("LWA answered an unreadable token: {e}"))
            })?;
            // An expiry Amazon would never give is kept within a minute and a day.
            return Ok(AccessToken {
                token: answer.access_token,
                expires_in: Duration::from_secs(
                    answer.expires_in.unwrap_or(3600).clamp(60, 86_400),
                ),
            });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(AmazonError::Retry {
                reason: format!("LWA answered {status}"),
                after,
            });
        }
        match serde_json::from_slice::<TokenError>(&body) {
            Ok(e) if e.error == "invalid_grant" => Err(AmazonError::InvalidGrant(
                e.error_description.unwrap_or(e.error),
            )),
            // The application's own credentials are wrong: the operator's to fix, not the
            // sellers' (their connections stay as they are).
            Ok(e) if e.error == "invalid_client" || e.error == "unauthorized_client" => {
                Err(AmazonError::NotConfigured)
            }
            Ok(e) => Err(AmazonError::Failed(format!(
                "LWA refused the token request: {}",
                e.error
            ))),
            Err(_) => Err(AmazonError::Failed(format!("LWA answered {status}"))),
        }
    }

    /// One page of the marketplace's FBA inventory summaries (with details), after
    /// `next_token`.
    pub async fn inventory_page(
        &self,
        access_token: &str,
        marketplace: &str,
        next_token: Option<&str>,
    ) -> Result<Page, AmazonError> {
        let url = format!(
            "{}/fba/inventory/v1/summaries",
            self.config.sp_api_url.trim_end_matches('/')
        );
        let mut query = vec![
            ("details", "true"),
            ("granularityType", "Marketplace"),
            ("granularityId", marketplace),
            ("marketplaceIds", marketplace),
        ];
        if let Some(token) = next_token {
            query.push(("nextToken", token));
        }
        let resp = self
            .http
            .get(url)
            .query(&query)
            .header("x-amz-access-token", access_token)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let after = retry_after(&resp);
        let body = read(resp).await?;
        match status.as_u16() {
            200 => {
                let answer: PageAnswer = serde_json::from_slice(&body).map_err(|e| {
                    AmazonError::Failed(format!("getInventorySummaries answered unreadably: {e}"))
                })?;
                Ok(Page {
                    summaries: answer.payload.unwrap_or_default().inventory_summaries,
                    next_token: answer
                        .pagination
                        .and_then(|p| p.next_token)
                        .filter(|t| !t.is_empty()),
                })
            }
            401 | 403 => Err(AmazonError::Unauthorized),
            429 => Err(AmazonError::Retry {
                reason: "throttled (429)".into(),
                after,
            }),
            s if s >= 500 => Err(AmazonError::Retry {
                reason: format!("getInventorySummaries answered {status}"),
                after,
            }),
            _ => Err(AmazonError::Failed(format!(
                "getInventorySummaries answered {status}: {}",
                error_message(&body)
            ))),
        }
    }
}

fn transport(e: reqwest::Error) -> AmazonError {
    AmazonError::Retry {
        reason: format!(
            "no answer ({})",
            if e.is_timeout() {
                "timed out"
            } else {
                "connection failed"
            }
        ),
        after: None,
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

async fn read(resp: reqwest::Response) -> Result<Vec<u8>, AmazonError> {
    crate::answer::read_capped(resp, MAX_BODY)
        .await
        .map_err(|e| match e {
            ReadError::BrokeOff(e) => transport(e),
            ReadError::TooLarge => AmazonError::Failed("the answer is larger than 8 MiB".into()),
        })
}

/// The first message of an SP-API `{"errors": [{code, message}]}` body.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(Deserialize)]
    struct Error {
        code: String,
        message: String,
    }
    serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| format!("{}: {}", e.code, e.message))
        .unwrap_or_else(|| "no error message".into())
}

impl Summary {
    /// Inbound units: working + shipped + receiving.
    pub fn inbound(&self) -> i64 {
        self.inventory_details.as_ref().map_or(0, |d| {
            d.inbound_working_quantity
                .unwrap_or(0)
                .saturating_add(d.inbound_shipped_quantity.unwrap_or(0))
                .saturating_add(d.inbound_receiving_quantity.unwrap_or(0))
        })
    }
}
