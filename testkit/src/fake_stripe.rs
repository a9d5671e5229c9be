//! A local Stripe for tests, speaking its documented API: Bearer secret keys (401
//! `invalid_request_error` for an unknown one), form-encoded POST bodies with `metadata[k]`,
//! `Idempotency-Key` (the same key with the same parameters answers the first answer again,
//! with other parameters 400 `idempotency_error`), `GET /v1/account`,
//! `GET /v1/payment_intents/{id}`, `GET /v1/charges/{id}`, `POST /v1/refunds` (refusing more
//! than what is left to refund), `POST /v1/disputes/{id}` (evidence, `submit=true`), errors as
//! `{"error": {type, code, message, param}}`. It also signs events the way Stripe's webhooks
//! do (`Stripe-Signature: t=...,v1=HMAC-SHA256("t.body")`) — its own implementation, not the
//! service's.

// Handlers answer early with Stripe's error responses; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Default)]
struct State {
    /// Secret key -> account id.
    keys: HashMap<String, String>,
    /// Payment intents and charges: id -> (currency, amount, refunded).
    payments: BTreeMap<String, (String, i64, i64)>,
    /// Disputes: id -> (status, metadata).
    disputes: BTreeMap<String, (String, Value)>,
    refunds: BTreeMap<String, Value>,
    /// Idempotency key -> (the request's method, path and parameters, the answer).
    idempotent: HashMap<(String, String), (String, u16, Value)>,
    /// Status of new refunds (`pending` unless set).
    refund_status: Option<String>,
    /// Statuses to answer the next POSTs with, in order.
    inject: Vec<u16>,
    /// A refusal (code, message) the next refund gets, as Stripe refuses one it cannot make.
    refuse: Option<(String, String)>,
    /// POSTs to carry out whose answers are then lost (a 500, kept for their idempotency
    /// key, as Stripe keeps every first answer).
    lose: u32,
    posts: u64,
    dispute_answers: Vec<(String, BTreeMap<String, String>)>,
}

/// A running fake; stops with the test process.
#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeStripe {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let url = crate::fake_server::serve(state.clone(), 2, routes);
        Self { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake stripe state"))
    }

    /// `key` is a secret key of account `account`.
    pub fn key(&self, key: &str, account: &str) {
        self.with(|s| s.keys.insert(key.into(), account.into()));
    }

    /// `key` is rolled: Stripe answers 401 to it from now on.
    pub fn roll(&self, key: &str) {
        self.with(|s| s.keys.remove(key));
    }

    /// A payment intent or charge of `amount` minor units of `currency` (lower case).
    pub fn payment(&self, id: &str, currency: &str, amount: i64) {
        self.with(|s| s.payments.insert(id.into(), (currency.into(), amount, 0)));
    }

    /// A dispute waiting for an answer (`needs_response`).
    pub fn dispute(&self, id: &str) {
        self.with(|s| {
            s.disputes
                .insert(id.into(), ("needs_response".into(), json!({})))
        });
    }

    /// The next refund is refused with Stripe's `code` (`balance_insufficient`...).
    pub fn refuse_next_refund(&self, code: &str, message: &str) {
        self.with(|s| s.refuse = Some((code.into(), message.into())));
    }

    /// The next `n` POSTs are carried out but their answers lost.
    pub fn lose_answers(&self, n: u32) {
        self.with(|s| s.lose = n);
    }

    /// Stripe forgets every idempotency key (it keeps them 24 hours).
    pub fn forget_idempotency_keys(&self) {
        self.with(|s| s.idempotent.clear());
    }

    /// New refunds are created in this status (`pending`, `succeeded`...).
    pub fn refund_status(&self, status: &str) {
        self.with(|s| s.refund_status = Some(status.into()));
    }

    /// The next POSTs are answered with these statuses (500, 429...), in order, each with
    /// `Stripe-Should-Retry: true`.
    pub fn inject(&self, statuses: &[u16]) {
        self.with(|s| s.inject.extend_from_slice(statuses));
    }

    /// Refunds made, as Stripe holds them.
    pub fn refunds(&self) -> Vec<Value> {
        self.with(|s| s.refunds.values().cloned().collect())
    }

    /// POST requests received (retries and idempotent repeats included).
    pub fn posts(&self) -> u64 {
        self.with(|s| s.posts)
    }

    /// The dispute answers received: (dispute, form fields).
    pub fn dispute_answers(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.with(|s| s.dispute_answers.clone())
    }

    /// A Stripe event of `kind` about `object`, as its webhook delivers it.
    pub fn event(kind: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": format!("evt_{}", uuid::Uuid::now_v7().simple()),
            "object": "event",
            "api_version": "2024-06-20",
            "created": chrono::Utc::now().timestamp(),
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind,
            "data": {"object": object},
        }))
        .expect("json")
    }

    /// The `Stripe-Signature` header Stripe sends with `payload` signed at `timestamp`.
    pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        )
    }
}

fn error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header((
            "request-id",
            format!("req_{}", uuid::Uuid::now_v7().simple()),
        ))
        .json(json!({"error": {"type": kind, "code": code, "message": message, "param": param}}))
}

/// The account of the request's Bearer key, or Stripe's 401.
fn authorized(s: &State, req: &HttpRequest) -> Result<String, HttpResponse> {
    let key = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    s.keys.get(key).cloned().ok_or_else(|| {
        error(
            401,
            "invalid_request_error",
            None,
            &format!(
                "Invalid API Key provided: {}****",
                key.chars().take(8).collect::<String>()
            ),
            None,
        )
    })
}

async fn account(state: web::Data<Mutex<State>>, req: HttpRequest) -> HttpResponse {
    let s = state.lock().expect("state");
    match authorized(&s, &req) {
        Ok(account) => HttpResponse::Ok().json(json!({"id": account, "object": "account"})),
        Err(e) => e,
    }
}

async fn payment(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let s = state.lock().expect("state");
    if let Err(e) = authorized(&s, &req) {
        return e;
    }
    match s.payments.get(id.as_str()) {
        Some((currency, amount, refunded)) => HttpResponse::Ok().json(json!({
            "id": id.as_str(), "currency": currency, "amount": amount,
            "amount_refunded": refunded})),
        None => error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such payment: '{id}'"),
            Some("id"),
        ),
    }
}

/// The idempotent replay of a POST, an injected failure, or `None` to go on.
fn before_post(
    s: &mut State,
    req: &HttpRequest,
    form: &BTreeMap<String, String>,
) -> Result<Option<String>, HttpResponse> {
    s.posts += 1;
    let account = authorized(s, req)?;
    if !s.inject.is_empty() {
        let status = s.inject.remove(0);
        return Err(HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status).expect("status"),
        )
        .insert_header(("stripe-should-retry", "true"))
        .json(json!({"error": {"type": "api_error", "message": "An unknown error occurred"}})));
    }
    let Some(key) = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let fingerprint = format!("{} {} {form:?}", req.method(), req.path());
    match s.idempotent.get(&(account, key.to_owned())) {
        Some((seen, status, answer)) if *seen == fingerprint => Err(HttpResponse::build(
            actix_web::http::StatusCode::from_u16(*status).expect("status"),
        )
        .insert_header(("idempotent-replayed", "true"))
        .json(answer.clone())),
        Some(_) => Err(error(
            400,
            "idempotency_error",
            None,
            &format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ),
            None,
        )),
        None => Ok(Some(fingerprint)),
    }
}

fn remember(
    s: &mut State,
    req: &HttpRequest,
    fingerprint: Option<String>,
    status: u16,
    answer: Value,
) -> HttpResponse {
    let (status, answer) = if s.lose > 0 {
        s.lose -= 1;
        (
            500,
            json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}),
        )
    } else {
        (status, answer)
    };
    if let (Some(fingerprint), Some(key), Ok(account)) = (
        fingerprint,
        req.headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        authorized(s, req),
    ) {
        s.idempotent.insert(
            (account, key.to_owned()),
            (fingerprint, status, answer.clone()),
        );
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(answer)
}

fn metadata(form: &BTreeMap<String, String>) -> Value {
    Value::Object(
        form.iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((key.to_owned(), Value::String(v.clone())))
            })
            .collect(),
    )
}

async fn refund(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    let mut s = state.lock().expect("state");
    let form = form.into_inner();
    let fingerprint = match before_post(&mut s, &req, &form) {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    if let Some((code, message)) = s.refuse.take() {
        let answer = json!({"error": {"type": "invalid_request_error", "code": code,
            "message": message, "param": null}});
        return remember(&mut s, &req, fingerprint, 400, answer);
    }
    let (param, id) = match (form.get("payment_intent"), form.get("charge")) {
        (Some(pi), None) => ("payment_intent", pi.clone()),
        (None, Some(ch)) => ("charge", ch.clone()),
        _ => {
            let answer = json!({"error": {"type": "invalid_request_error", "code": "parameter_missing",
                "message": "One of the following params should be provided for this request: payment_intent or charge.",
                "param": "payment_intent"}});
            return remember(&mut s, &req, fingerprint, 400, answer);
        }
    };
    let Some((currency, amount, refunded)) = s.payments.get(&id).cloned() else {
        let answer = json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
            "message": format!("No such {param}: '{id}'"), "param": param}});
        return remember(&mut s, &req, fingerprint, 400, answer);
    };
    let asked = form
        .get("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(amount - refunded);
    if refunded >= amount {
        let answer = json!({"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
            "message": format!("Charge {id} has already been refunded."), "param": null}});
        return remember(&mut s, &req, fingerprint, 400, answer);
    }
    if asked > amount - refunded {
        let answer = json!({"error": {"type": "invalid_request_error", "code": "amount_too_large",
            "message": format!("Refund amount ({asked}) is greater than unrefunded amount on charge ({})", amount - refunded),
            "param": "amount"}});
        return remember(&mut s, &req, fingerprint, 400, answer);
    }
    if let Some(p) = s.payments.get_mut(&id) {
        p.2 += asked;
    }
    let refund_id = format!("re_{}", uuid::Uuid::now_v7().simple());
    let refund = json!({
        "id": refund_id, "object": "refund", "amount": asked, "currency": currency,
        param: id, "metadata": metadata(&form),
        "status": s.refund_status.clone().unwrap_or_else(|| "pending".into()),
        "created": chrono::Utc::now().timestamp(),
    });
    s.refunds.insert(refund_id, refund.clone());
    remember(&mut s, &req, fingerprint, 200, refund)
}

async fn dispute(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    let mut s = state.lock().expect("state");
    let form = form.into_inner();
    let fingerprint = match before_post(&mut s, &req, &form) {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    let Some((status, _)) = s.disputes.get(id.as_str()).cloned() else {
        let answer = json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
            "message": format!("No such dispute: '{id}'"), "param": "dispute"}});
        return remember(&mut s, &req, fingerprint, 404, answer);
    };
    if !status.ends_with("needs_response") {
        let answer = json!({"error": {"type": "invalid_request_error", "code": null,
            "message": format!("This dispute is already {status} and cannot be updated."), "param": null}});
        return remember(&mut s, &req, fingerprint, 400, answer);
    }
    let status = if form.get("submit").map(String::as_str) == Some("true") {
        "under_review".to_owned()
    } else {
        status
    };
    s.disputes
        .insert(id.to_string(), (status.clone(), metadata(&form)));
    s.dispute_answers.push((id.to_string(), form.clone()));
    let answer = json!({"id": id.as_str(), "object": "dispute", "status": status,
        "metadata": metadata(&form)});
    remember(&mut s, &req, fingerprint, 200, answer)
}

async fn refunds(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let s = state.lock().expect("state");
    if let Err(e) = authorized(&s, &req) {
        return e;
    }
    let data: Vec<Value> = s
        .refunds
        .values()
        .rev()
        .filter(|r| {
            ["payment_intent", "charge"]
                .iter()
                .all(|k| query.get(*k).is_none_or(|v| r[*k].as_str() == Some(v)))
        })
        .take(
            query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10),
        )
        .cloned()
        .collect();
    HttpResponse::Ok()
        .json(json!({"object": "list", "url": "/v1/refunds", "has_more": false, "data": data}))
}

async fn get_dispute(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let s = state.lock().expect("state");
    if let Err(e) = authorized(&s, &req) {
        return e;
    }
    match s.disputes.get(id.as_str()) {
        Some((status, metadata)) => HttpResponse::Ok().json(
            json!({"id": id.as_str(), "object": "dispute", "status": status, "metadata": metadata}),
        ),
        None => error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such dispute: '{id}'"),
            Some("id"),
        ),
    }
}

/// Its routes, as the real API lays them out.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/account", web::get().to(account))
        .route("/v1/payment_intents/{id}", web::get().to(payment))
        .route("/v1/charges/{id}", web::get().to(payment))
        .route("/v1/refunds", web::post().to(refund))
        .route("/v1/refunds", web::get().to(refunds))
        .route("/v1/disputes/{id}", web::post().to(dispute))
        .route("/v1/disputes/{id}", web::get().to(get_dispute));
}
