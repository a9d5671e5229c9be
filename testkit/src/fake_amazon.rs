//! A local Amazon for tests and benchmarks, speaking the documented protocols: Login with
//! Amazon's token endpoint (`POST /auth/o2/token`, form-encoded `grant_type=refresh_token`;
//! `invalid_grant` for a revoked refresh token) and the Selling Partner API's
//! `GET /fba/inventory/v1/summaries` (`x-amz-access-token`, `granularityType=Marketplace`,
//! `granularityId`, `marketplaceIds`, `details`, `nextToken`; pages of up to 50 summaries;
//! `{"errors": [...]}` bodies; the usage plan of 2 requests a second with a burst of 2, over
//! which it answers 429 without a rate header, as Amazon does).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// Summaries per page, as Amazon gives.
pub const PAGE_SIZE: usize = 50;

/// One SKU of the fake seller's FBA inventory.
#[derive(Debug, Clone)]
pub struct FbaItem {
    pub sku: String,
    pub fulfillable: i64,
    pub inbound: i64,
    pub reserved: i64,
    pub unfulfillable: i64,
}

impl FbaItem {
    pub fn new(sku: &str, fulfillable: i64) -> Self {
        Self {
            sku: sku.into(),
            fulfillable,
            inbound: 0,
            reserved: 0,
            unfulfillable: 0,
        }
    }

    pub fn total(&self) -> i64 {
        self.fulfillable + self.inbound + self.reserved + self.unfulfillable
    }
}

#[derive(Default)]
struct State {
    client_id: String,
    client_secret: String,
    refresh_tokens: HashSet<String>,
    /// Access token -> when it expires.
    access_tokens: BTreeMap<String, Instant>,
    issued: u64,
    inventory: BTreeMap<String, BTreeMap<String, FbaItem>>,
    /// Statuses to answer the next inventory requests with, in order.
    inject: Vec<u16>,
    /// GCRA's theoretical arrival time of the usage plan.
    tat: Option<Instant>,
    rate: f64,
    burst: f64,
    token_requests: u64,
    page_requests: u64,
    throttled: u64,
    /// `nextToken`s asked for, in order (None: the first page).
    asked: Vec<Option<String>>,
    /// Pause before each inventory answer.
    delay: Duration,
    /// A broken Amazon: each later page names the token it was asked with as the next one.
    repeat_next_token: bool,
    /// Every summary is listed twice.
    duplicate_summaries: bool,
    /// `expires_in` of the access tokens it hands out (3600 unless set).
    expires_in: Option<u64>,
    /// SKUs whose summaries carry no `totalQuantity`.
    no_total: HashSet<String>,
}

/// A running fake; stops with the test process.
#[derive(Clone)]
pub struct FakeAmazon {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeAmazon {
    /// Starts it for an application with these LWA credentials, accepting `refresh_tokens`.
    pub fn start(client_id: &str, client_secret: &str, refresh_tokens: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_tokens: refresh_tokens.iter().map(|t| (*t).to_owned()).collect(),
            rate: 2.0,
            burst: 2.0,
            ..Default::default()
        }));
        let url = crate::fake_server::serve(state.clone(), 1, routes);
        Self { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake amazon state"))
    }

    /// Replaces the marketplace's inventory.
    pub fn stock(&self, marketplace: &str, items: Vec<FbaItem>) {
        self.with(|s| {
            s.inventory.insert(
                marketplace.into(),
                items.into_iter().map(|i| (i.sku.clone(), i)).collect(),
            )
        });
    }

    /// The seller revoked the application: every refresh token now gets `invalid_grant`.
    pub fn revoke(&self) {
        self.with(|s| {
            s.refresh_tokens.clear();
            s.access_tokens.clear();
        });
    }

    /// This refresh token stops working (`invalid_grant`); others still work.
    pub fn revoke_token(&self, refresh_token: &str) {
        self.with(|s| s.refresh_tokens.remove(refresh_token));
    }

    /// Access tokens are handed out with this `expires_in` (a broken LWA: 10^16, say).
    pub fn expires_in(&self, seconds: u64) {
        self.with(|s| s.expires_in = Some(seconds));
    }

    /// `sku`'s summary leaves out `totalQuantity`.
    pub fn omit_total(&self, sku: &str) {
        self.with(|s| s.no_total.insert(sku.to_owned()));
    }

    /// The application's client secret at Amazon becomes `secret` (rotated in Developer
    /// Central): requests with the old one get `invalid_client`.
    pub fn rotate_client_secret(&self, secret: &str) {
        self.with(|s| s.client_secret = secret.to_owned());
    }

    /// `refresh_token` is accepted (again): the seller authorized the application.
    pub fn accept(&self, refresh_token: &str) {
        self.with(|s| s.refresh_tokens.insert(refresh_token.to_owned()));
    }

    /// Every access token handed out so far stops working (403), as an expired one does.
    pub fn expire_access_tokens(&self) {
        self.with(|s| s.access_tokens.clear());
    }

    /// The next inventory requests are answered with these statuses (429, 500...), in order.
    pub fn inject(&self, statuses: &[u16]) {
        self.with(|s| s.inject.extend_from_slice(statuses));
    }

    /// The usage plan it enforces (requests a second, burst); Amazon's is 2 and 2.
    pub fn plan(&self, rate: f64, burst: f64) {
        self.with(|s| {
            s.rate = rate;
            s.burst = burst;
        });
    }

    /// Misbehaves: answers every page after the first with the `nextToken` it was asked for
    /// (`repeat`), and lists every SKU twice in a page (`duplicate`).
    pub fn misbehave(&self, repeat: bool, duplicate: bool) {
        self.with(|s| {
            s.repeat_next_token = repeat;
            s.duplicate_summaries = duplicate;
        });
    }

    /// Waits this long before each inventory answer.
    pub fn delay(&self, delay: Duration) {
        self.with(|s| s.delay = delay);
    }

    /// (token requests, inventory requests, of which throttled for the usage plan).
    pub fn counts(&self) -> (u64, u64, u64) {
        self.with(|s| (s.token_requests, s.page_requests, s.throttled))
    }

    /// The `nextToken`s asked for, in order (`None`: a first page).
    pub fn asked(&self) -> Vec<Option<String>> {
        self.with(|s| s.asked.clone())
    }
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header(("x-amzn-RequestId", uuid::Uuid::now_v7().to_string()))
        .json(json!({"errors": [{"code": code, "message": message, "details": ""}]}))
}

async fn token(
    state: web::Data<Mutex<State>>,
    form: web::Form<BTreeMap<String, String>>,
) -> HttpResponse {
    let mut s = state.lock().expect("state");
    s.token_requests += 1;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("client_id") != s.client_id || field("client_secret") != s.client_secret {
        return HttpResponse::Unauthorized().json(json!({
            "error": "invalid_client", "error_description": "Client authentication failed"}));
    }
    if field("grant_type") != "refresh_token" {
        return HttpResponse::BadRequest().json(json!({
            "error": "unsupported_grant_type", "error_description": "grant_type must be refresh_token"}));
    }
    if !s.refresh_tokens.contains(field("refresh_token")) {
        return HttpResponse::BadRequest().json(json!({
            "error": "invalid_grant",
            "error_description": "The request has an invalid grant parameter : refresh_token"}));
    }
    s.issued += 1;
    let access = format!("Atza|fake-{}", s.issued);
    s.access_tokens
        .insert(access.clone(), Instant::now() + Duration::from_secs(3600));
    HttpResponse::Ok().json(json!({
        "access_token": access, "refresh_token": field("refresh_token"),
        "token_type": "bearer", "expires_in": s.expires_in.unwrap_or(3600)}))
}

async fn summaries(
    state: web::Data<Mutex<State>>,
    req: HttpRequest,
    query: web::Query<BTreeMap<String, String>>,
) -> HttpResponse {
    let delay = state.lock().expect("state").delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().expect("state");
    s.page_requests += 1;
    // The usage plan, as GCRA with 10% slack for loopback jitter.
    let now = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / s.rate);
    let tat = s.tat.unwrap_or(now).max(now);
    let allowance = interval.mul_f64(s.burst - 1.0 + 0.1);
    if tat.saturating_duration_since(now) > allowance {
        s.throttled += 1;
        return error(
            429,
            "QuotaExceeded",
            "You exceeded your quota for the requested resource.",
        );
    }
    s.tat = Some(tat + interval);
    if !s.inject.is_empty() {
        let status = s.inject.remove(0);
        return error(
            status,
            "InternalFailure",
            "We encountered an internal error. Please try again.",
        );
    }
    let token = req
        .headers()
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if s.access_tokens.get(token).is_none_or(|until| *until < now) {
        return error(
            403,
            "Unauthorized",
            "Access to requested resource is denied.",
        );
    }
    let field = |k: &str| query.get(k).cloned().unwrap_or_default();
    let marketplace = field("granularityId");
    if field("granularityType") != "Marketplace"
        || marketplace.is_empty()
        || field("marketplaceIds") != marketplace
    {
        return error(
            400,
            "InvalidInput",
            "granularityType, granularityId and marketplaceIds are required",
        );
    }
    let next = query.get("nextToken").cloned();
    s.asked.push(next.clone());
    let offset = match next.as_deref().map(|t| {
        t.strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
    }) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return error(400, "InvalidInput", "nextToken is not valid"),
    };
    let items: Vec<FbaItem> = s
        .inventory
        .get(&marketplace)
        .map(|m| {
            m.values()
                .skip(offset)
                .take(PAGE_SIZE + 1)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let more = items.len() > PAGE_SIZE;
    let copies = if s.duplicate_summaries { 2 } else { 1 };
    let summaries: Vec<Value> = items
        .iter()
        .take(PAGE_SIZE)
        .flat_map(|i| std::iter::repeat_n(i, copies))
        .map(|i| {
            let mut summary = json!({
                "asin": format!("B0{:08}", i.sku.len()), "fnSku": format!("X00{}", i.sku.len()),
                "sellerSku": i.sku, "condition": "NewItem", "productName": format!("Product {}", i.sku),
                "lastUpdatedTime": "2026-12-01T00:00:00Z", "totalQuantity": i.total(),
                "inventoryDetails": {
                    "fulfillableQuantity": i.fulfillable,
                    "inboundWorkingQuantity": i.inbound, "inboundShippedQuantity": 0, "inboundReceivingQuantity": 0,
                    "reservedQuantity": {"totalReservedQuantity": i.reserved, "pendingCustomerOrderQuantity": i.reserved,
                        "pendingTransshipmentQuantity": 0, "fcProcessingQuantity": 0},
                    "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
                    "unfulfillableQuantity": {"totalUnfulfillableQuantity": i.unfulfillable, "customerDamagedQuantity": 0,
                        "warehouseDamagedQuantity": i.unfulfillable, "distributorDamagedQuantity": 0,
                        "carrierDamagedQuantity": 0, "defectiveQuantity": 0, "expiredQuantity": 0}
                }
            });
            if s.no_total.contains(&i.sku) {
                summary.as_object_mut().map(|o| o.remove("totalQuantity"));
            }
            summary
        })
        .collect();
    let mut body = json!({
        "payload": {"granularity": {"granularityType": "Marketplace", "granularityId": marketplace},
            "inventorySummaries": summaries}
    });
    if more {
        let token = match (&next, s.repeat_next_token) {
            (Some(asked), true) => asked.clone(),
            _ => format!("page-{}", offset + PAGE_SIZE),
        };
        body["pagination"] = json!({"nextToken": token});
    }
    HttpResponse::Ok()
        .insert_header(("x-amzn-RateLimit-Limit", "2.0"))
        .insert_header(("x-amzn-RequestId", uuid::Uuid::now_v7().to_string()))
        .json(body)
}

/// Its routes, as the real API lays them out.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/o2/token", web::post().to(token))
        .route("/fba/inventory/v1/summaries", web::get().to(summaries));
}
