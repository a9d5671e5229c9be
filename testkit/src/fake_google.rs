//! A local Google for tests, speaking its documented OAuth 2.0 and Gmail protocols: the
//! consent a seller gives in the browser (`consent`, checking the authorization URL's
//! parameters as Google's page does), `POST /token` (`authorization_code` with PKCE S256 and
//! the same `redirect_uri`; `refresh_token`; client authentication by HTTP Basic or form;
//! `invalid_grant` / "Token has been expired or revoked."), `POST /revoke` (RFC 7009), and
//! Gmail's `users/me/profile`, `users/me/messages` (search, paged) and
//! `users/me/messages/{id}?format=full` (base64url parts) under Bearer access tokens.

// Handlers answer early with Google's error responses; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Messages per page of a search, whatever `maxResults` asks (to exercise paging).
const PAGE: usize = 2;

#[derive(Default)]
struct State {
    client_id: String,
    client_secret: String,
    email: String,
    /// Code -> (PKCE challenge, redirect URI).
    codes: HashMap<String, (String, String)>,
    refresh_tokens: HashSet<String>,
    access_tokens: HashSet<String>,
    revoked: Vec<String>,
    /// Messages, oldest first.
    mail: Vec<Mail>,
    issued: u64,
}

/// A message in the fake mailbox.
#[derive(Debug, Clone)]
struct Mail {
    id: String,
    from: String,
    /// Whether Gmail found it really from its sender's domain (DMARC pass).
    authentic: bool,
    subject: String,
    text: String,
}

/// Amazon's reimbursement sender, as Amazon signs it.
pub const AMAZON: &str = "Amazon Seller Central <seller-notification@amazon.com>";

#[derive(Clone)]
pub struct FakeGoogle {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeGoogle {
    /// Starts it for an OAuth client, with the mailbox of `email`.
    pub fn start(client_id: &str, client_secret: &str, email: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            email: email.into(),
            ..Default::default()
        }));
        let url = crate::fake_server::serve(state.clone(), 1, routes);
        Self { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake google state"))
    }

    /// The seller approves on Google's consent page reached by `authorization_url`: checks
    /// what Google's page checks and answers the (code, state) Google's redirect carries.
    pub fn consent(&self, authorization_url: &str) -> (String, String) {
        let url = reqwest::Url::parse(authorization_url).expect("an authorization URL");
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        self.with(|s| {
            assert_eq!(get("client_id"), s.client_id, "client_id");
            assert_eq!(get("response_type"), "code");
            assert!(
                get("scope")
                    .split(' ')
                    .any(|sc| sc == "https://www.googleapis.com/auth/gmail.readonly"),
                "scope {}",
                get("scope")
            );
            assert_eq!(get("code_challenge_method"), "S256");
            assert_eq!(get("access_type"), "offline");
            assert_eq!(get("prompt"), "consent");
            assert!(get("code_challenge").len() >= 43, "a S256 challenge");
            assert!(get("state").len() >= 16, "an unguessable state");
            s.issued += 1;
            let code = format!("4/fake-code-{}", s.issued);
            s.codes
                .insert(code.clone(), (get("code_challenge"), get("redirect_uri")));
            (code, get("state"))
        })
    }

    /// A message from Amazon, authentic, in the mailbox (newest last).
    pub fn mail(&self, id: &str, subject: &str, text: &str) {
        self.mail_from(id, AMAZON, true, subject, text);
    }

    /// A message from `from`, which Gmail found authentic or not (a spoofed sender).
    pub fn mail_from(&self, id: &str, from: &str, authentic: bool, subject: &str, text: &str) {
        self.with(|s| {
            s.mail.push(Mail {
                id: id.into(),
                from: from.into(),
                authentic,
                subject: subject.into(),
                text: text.into(),
            })
        });
    }

    /// The seller revokes the application in their Google account.
    pub fn revoke_grants(&self) {
        self.with(|s| {
            s.refresh_tokens.clear();
            s.access_tokens.clear();
        });
    }

    /// Access tokens stop working before their time.
    pub fn expire_access_tokens(&self) {
        self.with(|s| s.access_tokens.clear());
    }

    /// Tokens revoked through `/revoke`, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.with(|s| s.revoked.clone())
    }
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}))
}

/// Client credentials from HTTP Basic or the form.
fn client_of(req: &HttpRequest, form: &BTreeMap<String, String>) -> (String, String) {
    if let Some(basic) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        && let Some((id, secret)) = basic.split_once(':')
    {
        return (url_decode(id), url_decode(secret));
    }
    (
        form.get("client_id").cloned().unwrap_or_default(),
        form.get("client_secret").cloned().unwrap_or_default(),
    )
}

fn url_decode(s: &str) -> String {
    reqwest::Url::parse(&format!("http://x/?v={s}"))
        .ok()
        .and_then(|u| u.query_pairs().next().map(|(_, v)| v.into_owned()))
        .unwrap_or_default()
}

async fn token(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    let mut s = state.lock().expect("state");
    let form = form.into_inner();
    let (id, secret) = client_of(&req, &form);
    if id != s.client_id || secret != s.client_secret {
        return HttpResponse::Unauthorized()
            .json(json!({"error": "invalid_client", "error_description": "Unauthorized"}));
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let refresh = match field("grant_type").as_str() {
        "authorization_code" => {
            let Some((challenge, redirect)) = s.codes.remove(&field("code")) else {
                return oauth_error("invalid_grant", "Malformed auth code.");
            };
            let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(field("code_verifier").as_bytes()));
            if derived != challenge {
                return oauth_error("invalid_grant", "Invalid code verifier.");
            }
            if field("redirect_uri") != redirect {
                return oauth_error("redirect_uri_mismatch", "Bad Request");
            }
            s.issued += 1;
            let refresh = format!("1//fake-refresh-{}", s.issued);
            s.refresh_tokens.insert(refresh.clone());
            Some(refresh)
        }
        "refresh_token" => {
            if !s.refresh_tokens.contains(&field("refresh_token")) {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            }
            None
        }
        _ => return oauth_error("unsupported_grant_type", "Invalid grant_type"),
    };
    s.issued += 1;
    let access = format!("ya29.fake-{}", s.issued);
    s.access_tokens.insert(access.clone());
    let mut answer = json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer",
        "scope": "https://www.googleapis.com/auth/gmail.readonly"});
    if let Some(refresh) = refresh {
        answer["refresh_token"] = json!(refresh);
    }
    HttpResponse::Ok().json(answer)
}

async fn revoke(
    state: web::Data<Mutex<State>>,
    query: web::Query<BTreeMap<String, String>>,
    form: Option<web::Form<BTreeMap<String, String>>>,
) -> HttpResponse {
    let mut s = state.lock().expect("state");
    let token = form
        .and_then(|f| f.get("token").cloned())
        .or_else(|| query.get("token").cloned())
        .unwrap_or_default();
    if s.refresh_tokens.remove(&token) || s.access_tokens.remove(&token) {
        s.revoked.push(token);
        HttpResponse::Ok().finish()
    } else {
        oauth_error("invalid_token", "Token expired or revoked")
    }
}

fn bearer(s: &State, req: &HttpRequest) -> Result<(), HttpResponse> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if s.access_tokens.contains(token) {
        Ok(())
    } else {
        Err(HttpResponse::Unauthorized().json(json!({"error": {"code": 401,
            "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})))
    }
}

async fn profile(state: web::Data<Mutex<State>>, req: HttpRequest) -> HttpResponse {
    let s = state.lock().expect("state");
    if let Err(e) = bearer(&s, &req) {
        return e;
    }
    HttpResponse::Ok().json(
        json!({"emailAddress": s.email, "messagesTotal": s.mail.len(),
        "threadsTotal": s.mail.len(), "historyId": "1"}),
    )
}

async fn messages(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let s = state.lock().expect("state");
    if let Err(e) = bearer(&s, &req) {
        return e;
    }
    let max: usize = query
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    let start: usize = query
        .get("pageToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    // `from:(a OR b)` keeps the mail of those addresses (spoofed or not, as Gmail's search
    // does); the rest of the query is not interpreted.
    let senders: Option<Vec<String>> = query.get("q").and_then(|q| {
        let list = q.split_once("from:(")?.1.split_once(')')?.0;
        Some(
            list.split(" OR ")
                .map(|a| a.trim().to_ascii_lowercase())
                .collect(),
        )
    });
    let address = |from: &str| {
        from.rsplit_once('<')
            .and_then(|(_, a)| a.split_once('>'))
            .map_or(from, |(a, _)| a)
            .to_ascii_lowercase()
    };
    // Newest first, as Gmail lists.
    let ids: Vec<&String> = s
        .mail
        .iter()
        .rev()
        .filter(|m| {
            senders
                .as_ref()
                .is_none_or(|list| list.contains(&address(&m.from)))
        })
        .map(|m| &m.id)
        .collect();
    let page: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(max.min(PAGE))
        .map(|id| json!({"id": id, "threadId": id}))
        .collect();
    let next = start + page.len();
    let mut answer = json!({"messages": page, "resultSizeEstimate": ids.len()});
    if next < ids.len() {
        answer["nextPageToken"] = json!(next.to_string());
    }
    HttpResponse::Ok().json(answer)
}

async fn message(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let s = state.lock().expect("state");
    if let Err(e) = bearer(&s, &req) {
        return e;
    }
    let Some(Mail {
        id,
        from,
        authentic,
        subject,
        text,
    }) = s.mail.iter().find(|m| m.id == id.as_str())
    else {
        return HttpResponse::NotFound()
            .json(json!({"error": {"code": 404, "message": "Requested entity was not found."}}));
    };
    let b64 = |t: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
    HttpResponse::Ok().json(json!({
        "id": id, "threadId": id, "labelIds": ["INBOX"],
        "snippet": text.chars().take(100).collect::<String>(),
        "payload": {
            "mimeType": "multipart/alternative",
            "headers": [
                // Gmail's own verdict comes first; a sender's forged one can only follow it.
                {"name": "Authentication-Results", "value": if *authentic {
                    "mx.google.com; dkim=pass header.i=@amazon.com header.s=x; spf=pass smtp.mailfrom=bounces@amazon.com; dmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from=amazon.com"
                } else {
                    "mx.google.com; dkim=none; spf=softfail smtp.mailfrom=x@evil.example; dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) header.from=amazon.com"
                }},
                {"name": "Authentication-Results", "value": "mx.google.com; dmarc=pass header.from=amazon.com"},
                {"name": "From", "value": from},
                {"name": "Subject", "value": subject},
                {"name": "Date", "value": "Sat, 5 Dec 2026 09:00:00 +0000"},
            ],
            "body": {"size": 0},
            "parts": [
                {"mimeType": "text/plain", "body": {"size": text.len(), "data": b64(text)}},
                {"mimeType": "text/html", "body": {"size": text.len(),
                    "data": b64(&format!("<html><body><p>{}</p></body></html>", text.replace('\n', "<br>")))}},
            ],
        },
    }))
}

/// Its routes, as the real API lays them out.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/token", web::post().to(token))
        .route("/revoke", web::post().to(revoke))
        .route("/gmail/v1/users/me/profile", web::get().to(profile))
        .route("/gmail/v1/users/me/messages", web::get().to(messages))
        .route("/gmail/v1/users/me/messages/{id}", web::get().to(message));
}
