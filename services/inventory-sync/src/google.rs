//! Google's side: OAuth 2.0 for a seller's Gmail (`gmail.readonly`, offline access, PKCE S256
//! and a state, through the `oauth2` crate; refresh too), revocation (RFC 7009), and Gmail's API (the
//! profile, a message search, a message). The token client follows no redirect: codes,
//! verifiers and refresh tokens go to Google's token endpoint and nowhere else.

use crate::answer::ReadError;
use std::time::Duration;

use base64::Engine;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
    basic::{BasicClient, BasicErrorResponseType},
};
use serde::Deserialize;

use crate::config::GoogleConfig;

/// Gmail, read only: what reimbursement and case mails need.
pub const SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";

/// Largest answer read from Gmail (a message with its parts).
const MAX_BODY: usize = 8 * 1024 * 1024;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// What went wrong at Google.
#[derive(Debug, Clone, PartialEq)]
pub enum GoogleError {
    /// The code or refresh token was refused (expired, revoked, used, another client's):
    /// `invalid_grant`. Not retried; the seller consents again.
    InvalidGrant(String),
    /// An access token was refused (401).
    Unauthorized,
    /// No answer, 429 or 5xx.
    Unavailable(String),
    /// Anything else.
    Failed(String),
    /// The application has no Google OAuth client in configuration.
    NotConfigured,
}

impl std::fmt::Display for GoogleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidGrant(why) => write!(f, "Google refused the authorization ({why})"),
            Self::Unauthorized => f.write_str("Google refused the access token"),
            Self::Unavailable(why) => write!(f, "Google cannot be reached now: {why}"),
            Self::Failed(why) => write!(f, "Google: {why}"),
            Self::NotConfigured => f.write_str(
                "Google is not configured (inventory_sync.google.client_id, client_secret and redirect_url)",
            ),
        }
    }
}

/// Tokens from the token endpoint.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Duration,
}

/// The start of a consent: where to send the seller, and what to keep until they return.
#[derive(Debug, Clone)]
pub struct Consent {
    pub url: String,
    pub state: String,
    pub verifier: String,
}

/// A mail, as far as evidence needs it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub id: String,
    pub subject: String,
    pub from: String,
    pub date: String,
    /// The topmost `Authentication-Results` header: the one Gmail's own servers added.
    pub authentication: String,
    /// The text parts (or the snippet when there are none), decoded.
    pub text: String,
}

#[derive(Clone)]
pub struct Google {
    http: reqwest::Client,
    config: GoogleConfig,
}

fn token_error(
    e: RequestTokenError<
        oauth2::HttpClientError<reqwest::Error>,
        oauth2::StandardErrorResponse<BasicErrorResponseType>,
    >,
) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => GoogleError::InvalidGrant(
                r.error_description()
                    .cloned()
                    .unwrap_or_else(|| "invalid_grant".into()),
            ),
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                GoogleError::NotConfigured
            }
            other => GoogleError::Failed(format!("the token endpoint refused: {other}")),
        },
        RequestTokenError::Request(_) => GoogleError::Unavailable("no answer".into()),
        RequestTokenError::Parse(_, _) => {
            GoogleError::Unavailable("the token endpoint answered unreadably".into())
        }
        RequestTokenError::Other(why) => GoogleError::Unavailable(why),
    }
}

impl Google {
    pub fn new(config: GoogleConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("agora-inventory-sync/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            // The oauth2 crate's advice: a token endpoint that redirects is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &GoogleConfig {
        &self.config
    }

    fn client(&self) -> Result<Client, GoogleError> {
        let c = &self.config;
        let (Some(id), Some(secret), Some(redirect)) =
            (&c.client_id, &c.client_secret, &c.redirect_url)
        else {
            return Err(GoogleError::NotConfigured);
        };
        let bad =
            |what: &str| GoogleError::Failed(format!("inventory_sync.google.{what} is not a URL"));
        Ok(BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret.expose().to_owned()))
            .set_auth_uri(AuthUrl::new(c.auth_url.clone()).map_err(|_| bad("auth_url"))?)
            .set_token_uri(TokenUrl::new(c.token_url.clone()).map_err(|_| bad("token_url"))?)
            .set_redirect_uri(RedirectUrl::new(redirect.clone()).map_err(|_| bad("redirect_url"))?))
    }

    /// Where to send the seller to consent: offline access (a refresh token), consent asked
    /// again (so Google hands out a refresh token every time), PKCE S256, a random state.
    pub fn consent(&self) -> Result<Consent, GoogleError> {
        let client = self.client()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new(SCOPE.into()))
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .add_extra_param("include_granted_scopes", "false")
            .set_pkce_challenge(challenge)
            .url();
        Ok(Consent {
            url: url.to_string(),
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code Google gave the seller's browser, with the consent's verifier.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<Tokens, GoogleError> {
        let answer = self
            .client()?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(&answer))
    }

    /// A fresh access token for a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, GoogleError> {
        let token = RefreshToken::new(refresh_token.to_owned());
        let answer = self
            .client()?
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(tokens(&answer))
    }

    /// Revokes the seller's grant (the refresh token and every access token from it), as
    /// Google documents it (`POST revoke` with the token form-encoded; RFC 7009). A token
    /// Google no longer knows counts as revoked. (The oauth2 crate's revocation insists on an
    /// https URL, which a local Google in tests is not; `revoke_url` is https outside
    /// embedded mode by configuration.)
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), GoogleError> {
        if self.config.client_id.is_none() {
            return Err(GoogleError::NotConfigured);
        }
        let resp = self
            .http
            .post(&self.config.revoke_url)
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await
            .map_err(|_| {
                GoogleError::Unavailable("the revocation endpoint did not answer".into())
            })?;
        let status = resp.status();
        let body = read(resp).await?;
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
        }
        match status.as_u16() {
            200 => Ok(()),
            400 if serde_json::from_slice::<OAuthError>(&body)
                .is_ok_and(|e| e.error == "invalid_token" || e.error == "invalid_grant") =>
            {
                Ok(())
            }
            429 | 500.. => Err(GoogleError::Unavailable(format!(
                "revocation answered {status}"
            ))),
            _ => Err(GoogleError::Failed(format!("revocation answered {status}"))),
        }
    }

    async fn get(
        &self,
        access: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, GoogleError> {
        let url = format!("{}{path}", self.config.gmail_url.trim_end_matches('/'));
        let resp = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(access)
            .send()
            .await
            .map_err(|_| GoogleError::Unavailable("Gmail did not answer".into()))?;
        let status = resp.status();
        let body = read(resp).await?;
        match status.as_u16() {
            200 => Ok(body),
            401 => Err(GoogleError::Unauthorized),
            429 | 500.. => Err(GoogleError::Unavailable(format!("Gmail answered {status}"))),
            _ => Err(GoogleError::Failed(format!("Gmail answered {status}"))),
        }
    }

    /// The mailbox's address.
    pub async fn profile(&self, access: &str) -> Result<String, GoogleError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Profile {
            email_address: String,
        }
        let body = self.get(access, "/gmail/v1/users/me/profile", &[]).await?;
        serde_json::from_slice::<Profile>(&body)
            .map(|p| p.email_address)
            .map_err(|_| GoogleError::Failed("Gmail's profile is unreadable".into()))
    }

    /// Ids of the newest messages matching `query`, `max` at most.
    pub async fn search(
        &self,
        access: &str,
        query: &str,
        max: u32,
    ) -> Result<Vec<String>, GoogleError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct List {
            messages: Vec<Id>,
            next_page_token: Option<String>,
        }
        #[derive(Deserialize, Default)]
        struct Id {
            id: String,
        }
        let mut ids = Vec::new();
        let mut page: Option<String> = None;
        // A Gmail that keeps handing out tokens for empty pages is stopped.
        for _ in 0..20 {
            let left = (max as usize)
                .saturating_sub(ids.len())
                .min(500)
                .to_string();
            let mut q = vec![("q", query), ("maxResults", left.as_str())];
            if let Some(token) = &page {
                q.push(("pageToken", token));
            }
            let body = self.get(access, "/gmail/v1/users/me/messages", &q).await?;
            let list: List = serde_json::from_slice(&body)
                .map_err(|_| GoogleError::Failed("Gmail's message list is unreadable".into()))?;
            ids.extend(list.messages.into_iter().map(|m| m.id));
            match list.next_page_token {
                Some(next) if ids.len() < max as usize && Some(&next) != page.as_ref() => {
                    page = Some(next)
                }
                _ => break,
            }
        }
        ids.truncate(max as usize);
        Ok(ids)
    }

    /// Message `id` (`format=full`): its headers and text.
    pub async fn message(&self, access: &str, id: &str) -> Result<Mail, GoogleError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(GoogleError::Failed(
                "Gmail named a message id that is not one".into(),
            ));
        }
        let body = self
            .get(
                access,
                &format!("/gmail/v1/users/me/messages/{id}"),
                &[("format", "full")],
            )
            .await?;
        let message: Message = serde_json::from_slice(&body)
            .map_err(|_| GoogleError::Failed("a Gmail message is unreadable".into()))?;
        let header = |name: &str| {
            message
                .payload
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.clone())
                .unwrap_or_default()
        };
        let mut text = String::new();
        collect_text(&message.payload, &mut text, 0);
        if text.trim().is_empty() {
            text = message.snippet.clone();
        }
        Ok(Mail {
            id: message.id.clone(),
            subject: header("Subject"),
            from: header("From"),
            date: header("Date"),
            authentication: header("Authentication-Results"),
            text,
        })
    }
}

fn tokens(answer: &oauth2::basic::BasicTokenResponse) -> Tokens {
    Tokens {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|t| t.secret().clone()),
        // An expiry Google would never give is kept within a minute and a day.
        expires_in: answer
            .expires_in()
            .unwrap_or(Duration::from_secs(3600))
            .clamp(Duration::from_secs(60), Duration::from_secs(86_400)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    id: String,
    snippet: String,
    payload: Part,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Part {
    mime_type: String,
    headers: Vec<Header>,
    body: Body,
    parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Body {
    data: Option<String>,
}

/// The text/plain parts under `part` (text/html ones, tags dropped, when there is no plain
/// one), decoded from Gmail's base64url; nesting is followed 10 deep at most.
fn collect_text(part: &Part, out: &mut String, depth: usize) {
    if depth > 10 || out.len() > 1024 * 1024 {
        return;
    }
    let decoded = part.body.data.as_deref().and_then(|d| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(d.trim_end_matches('='))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    });
    match (part.mime_type.as_str(), decoded) {
        ("text/plain", Some(text)) => {
            out.push_str(&text);
            out.push('\n');
        }
        // Reached only when no plain sibling was (the parent skips html beside plain).
        ("text/html", Some(html)) => {
            out.push_str(&strip_tags(&html));
            out.push('\n');
        }
        _ => {}
    }
    let plain = part.parts.iter().any(|p| p.mime_type == "text/plain");
    for child in &part.parts {
        if plain && child.mime_type == "text/html" {
            continue;
        }
        collect_text(child, out, depth + 1);
    }
}

/// Text of an HTML part: block tags (`p`, `div`, `br`, `tr`, `li`...) end lines, other tags
/// are spaces; the entities for `&`, `<`, `>` and spaces are read.
fn strip_tags(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "br", "p", "div", "tr", "li", "table", "h1", "h2", "h3", "h4",
    ];
    let mut out = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for c in html.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (Some(name), '>') => {
                let name = name
                    .trim_start_matches('/')
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                out.push(if BLOCKS.contains(&name.as_str()) {
                    '\n'
                } else {
                    ' '
                });
                tag = None;
            }
            (Some(name), c) => {
                if name.len() < 16 {
                    name.push(c);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

async fn read(resp: reqwest::Response) -> Result<Vec<u8>, GoogleError> {
    crate::answer::read_capped(resp, MAX_BODY)
        .await
        .map_err(|e| match e {
            ReadError::BrokeOff(_) => GoogleError::Unavailable("the answer broke off".into()),
            ReadError::TooLarge => GoogleError::Failed("the answer is larger than 8 MiB".into()),
        })
}

/// The address of a `From` header (`Name <a@b>` or `a@b`), lower-cased.
pub fn sender_address(from: &str) -> Option<String> {
    let address = match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => &from[open + 1..close],
        _ => from,
    }
    .trim()
    .to_ascii_lowercase();
    let (local, domain) = address.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace))
        .then_some(address)
}

/// Whether Gmail itself found the mail really from `sender`'s domain: its
/// `Authentication-Results` (authserv-id `mx.google.com`, the topmost header, which a sender
/// cannot put above Gmail's) says `dmarc=pass` for `header.from=<that domain>`.
pub fn authenticated(mail: &Mail, sender: &str) -> bool {
    let Some((_, domain)) = sender.split_once('@') else {
        return false;
    };
    let results = mail.authentication.to_ascii_lowercase();
    let mut parts = results.split(';').map(str::trim);
    if parts.next() != Some("mx.google.com") {
        return false;
    }
    parts.any(|p| {
        p.starts_with("dmarc=pass")
            && p.split_whitespace()
                .any(|w| w == format!("header.from={domain}"))
    })
}

/// What a mail from Amazon says, read from its `Label: value` lines (case-insensitive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notice {
    pub reimbursement_id: Option<String>,
    pub case_id: Option<String>,
    pub skus: Vec<String>,
    pub amount: Option<String>,
}

/// Reads Amazon's reimbursement notices ("Reimbursement ID: ...", "MSKU: ...", "Amount: ...")
/// and case mails ("Case ID: ...").
pub fn notice(text: &str) -> Notice {
    let mut n = Notice::default();
    for line in text.lines().take(5000) {
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        let label = label.trim().to_ascii_lowercase();
        let value = value.trim();
        let first = value.split_whitespace().next().unwrap_or_default();
        let word = first.trim_end_matches([',', '.', ';']);
        if word.is_empty() || word.len() > 64 {
            continue;
        }
        match label.as_str() {
            "reimbursement id" if n.reimbursement_id.is_none() => {
                n.reimbursement_id = Some(word.to_owned())
            }
            "case id" | "case number" if n.case_id.is_none() => n.case_id = Some(word.to_owned()),
            "msku" | "sku" | "seller sku" | "merchant sku"
                if !n.skus.iter().any(|s| s == word) && n.skus.len() < 50 =>
            {
                n.skus.push(word.to_owned());
            }
            "amount" | "amount total" | "total amount" if n.amount.is_none() => {
                n.amount = Some(value.chars().take(40).collect())
            }
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_and_gmail_authentication() {
        assert_eq!(
            sender_address("Amazon Seller Central <Seller-Notification@amazon.com>").as_deref(),
            Some("seller-notification@amazon.com")
        );
        assert_eq!(sender_address("x@y.com").as_deref(), Some("x@y.com"));
        assert_eq!(sender_address("Amazon.com"), None);
        let mail = |auth: &str| Mail {
            authentication: auth.into(),
            ..Default::default()
        };
        let gmail = "mx.google.com; dkim=pass header.i=@amazon.com header.s=x; \
                     spf=pass smtp.mailfrom=a@amazon.com; \
                     dmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from=amazon.com";
        assert!(authenticated(
            &mail(gmail),
            "seller-notification@amazon.com"
        ));
        // Another domain's pass, a failed DMARC, or results not from Gmail prove nothing.
        assert!(!authenticated(
            &mail(gmail),
            "seller-notification@amazon.co.uk"
        ));
        assert!(!authenticated(
            &mail(&gmail.replace("dmarc=pass", "dmarc=fail")),
            "seller-notification@amazon.com"
        ));
        assert!(!authenticated(
            &mail(&gmail.replace("mx.google.com", "mx.evil.example")),
            "seller-notification@amazon.com"
        ));
        assert!(!authenticated(
            &mail(&gmail.replace(
                "header.from=amazon.com",
                "header.from=amazon.com.evil.example"
            )),
            "seller-notification@amazon.com"
        ));
        assert!(!authenticated(&mail(""), "seller-notification@amazon.com"));
    }

    #[test]
    fn reads_amazon_notices() {
        let text = "Hello,\r\n\r\nWe have reimbursed you for lost inventory.\r\n\
                    Reimbursement ID: 2846571093\r\nMSKU: JAR-1\r\nFNSKU: X00ABC\r\n\
                    Quantity: 150\r\nAmount: $3,000.00 USD\r\n\r\nCase ID: 1234567890.\r\n";
        assert_eq!(
            notice(text),
            Notice {
                reimbursement_id: Some("2846571093".into()),
                case_id: Some("1234567890".into()),
                skus: vec!["JAR-1".into()],
                amount: Some("$3,000.00 USD".into()),
            }
        );
        assert_eq!(notice("nothing here: at all\nno labels"), Notice::default());
    }

    #[test]
    fn text_of_nested_parts() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let message = Part {
            mime_type: "multipart/mixed".into(),
            parts: vec![Part {
                mime_type: "multipart/alternative".into(),
                parts: vec![
                    Part {
                        mime_type: "text/plain".into(),
                        body: Body {
                            data: Some(b64("Case ID: 77")),
                        },
                        ..Default::default()
                    },
                    Part {
                        mime_type: "text/html".into(),
                        body: Body {
                            data: Some(b64("<p>Case ID: 88</p>")),
                        },
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut text = String::new();
        collect_text(&message, &mut text, 0);
        assert_eq!(notice(&text).case_id.as_deref(), Some("77"), "{text}");
        let html = Part {
            mime_type: "text/html".into(),
            body: Body {
                data: Some(b64("<div>Reimbursement ID: <b>55</b></div>")),
            },
            ..Default::default()
        };
        let mut text = String::new();
        collect_text(&html, &mut text, 0);
        assert_eq!(
            notice(&text).reimbursement_id.as_deref(),
            Some("55"),
            "{text}"
        );
    }
}
