//! `/dashboard/performance` reads the platform's own Prometheus endpoints (the gateway's and
//! each service's `/metrics`) at a fixed interval and keeps five minutes of samples; request
//! rate, error rate and latency quantiles come from the difference between the oldest and the
//! newest sample, so they describe the last minutes, not the whole uptime.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// One series: metric name and its labels (sorted).
type SeriesKey = (String, Vec<(String, String)>);

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    series: HashMap<SeriesKey, f64>,
}

/// Whether a target answered its last scrape.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TargetStatus {
    pub url: String,
    pub up: bool,
    pub error: Option<String>,
}

pub struct Scraper {
    targets: Mutex<Vec<String>>,
    client: reqwest::Client,
    samples: Mutex<VecDeque<Sample>>,
    status: Mutex<Vec<TargetStatus>>,
}

const KEEP: Duration = Duration::from_secs(300);

/// Parses one exposition line: `name{a="b",c="d"} value` (comments and blanks give None).
pub fn parse_line(line: &str) -> Option<(SeriesKey, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            let labels = parse_labels(&line[open + 1..close])?;
            let value = line[close + 1..].split_whitespace().next()?;
            (((line[..open].to_owned()), labels), value)
        }
        None => {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            ((name.to_owned(), Vec::new()), parts.next()?)
        }
    };
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((head, value))
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name.trim().to_owned(), value));
    }
    labels.sort();
    Some(labels)
}

fn label<'a>(key: &'a SeriesKey, name: &str) -> Option<&'a str> {
    key.1
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Figures of one service over the window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServicePerformance {
    /// A service name, or `gateway` for everything proxied at the edge.
    pub service: String,
    pub requests: f64,
    /// Requests per second over the window (null until two samples exist).
    pub request_rate: Option<f64>,
    pub errors: f64,
    /// Share of responses with status >= 500, in percent (null without requests).
    pub error_rate: Option<f64>,
    pub latency_ms_mean: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Performance {
    /// Seconds between the samples compared (0: one sample, figures since start).
    pub window_secs: f64,
    pub services: Vec<ServicePerformance>,
    pub targets: Vec<TargetStatus>,
}

#[derive(Default)]
struct Acc {
    requests: f64,
    errors: f64,
    sum: f64,
    count: f64,
    buckets: BTreeMap<u64, (f64, f64)>,
}

impl Acc {
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.values().last()?.1;
        if total <= 0.0 {
            return None;
        }
        let target = q * total;
        let mut prev = (0.0, 0.0);
        for (le, cum) in self.buckets.values() {
            if *cum >= target {
                if le.is_infinite() {
                    return Some(prev.0 * 1000.0);
                }
                let span = cum - prev.1;
                let share = if span > 0.0 {
                    (target - prev.1) / span
                } else {
                    1.0
                };
                return Some((prev.0 + (le - prev.0) * share) * 1000.0);
            }
            prev = (*le, *cum);
        }
        None
    }
}

impl Scraper {
    pub fn new(targets: Vec<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Self {
            targets: Mutex::new(targets),
            client,
            samples: Mutex::new(VecDeque::new()),
            status: Mutex::new(Vec::new()),
        }
    }

    /// Adds a Prometheus endpoint to read.
    pub fn add_target(&self, url: String) {
        let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if !targets.contains(&url) {
            targets.push(url);
        }
    }

    /// Reads every target once and keeps the sample.
    pub async fn scrape(&self) {
        let mut series = HashMap::new();
        let mut status = Vec::new();
        let targets = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for url in &targets {
            let result = async {
                let response = self.client.get(url).send().await?.error_for_status()?;
                response.text().await
            }
            .await;
            match result {
                Ok(text) => {
                    // Embedded mode serves one registry at every endpoint: identical series
                    // from several targets are the same series.
                    series.extend(text.lines().filter_map(parse_line));
                    status.push(TargetStatus {
                        url: url.clone(),
                        up: true,
                        error: None,
                    });
                }
                Err(err) => status.push(TargetStatus {
                    url: url.clone(),
                    up: false,
                    error: Some(err.without_url().to_string()),
                }),
            }
        }
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back(Sample { at: now, series });
        while samples.len() > 2 && now - samples[0].at > KEEP {
            samples.pop_front();
        }
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }

    /// Scrapes every `every` until `shutdown`.
    pub async fn run(
        self: std::sync::Arc<Self>,
        every: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.scrape().await,
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Figures per service over the kept window (scraping first when nothing was sampled).
    pub async fn performance(&self) -> Performance {
        let empty = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if empty {
            self.scrape().await;
        }
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let targets = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (Some(last), first) = (samples.back(), samples.front()) else {
            return Performance {
                window_secs: 0.0,
                services: Vec::new(),
                targets,
            };
        };
        let first = first.filter(|f| f.at < last.at);
        let window = first.map_or(0.0, |f| (last.at - f.at).as_secs_f64());
        let mut per: BTreeMap<String, Acc> = BTreeMap::new();
        for (key, value) in &last.series {
            let delta = value
                - first
                    .and_then(|f| f.series.get(key))
                    .copied()
                    .unwrap_or(0.0);
            let (name, service) = match key.0.as_str() {
                n @ ("agora_http_requests_total"
                | "agora_http_request_duration_seconds_bucket"
                | "agora_http_request_duration_seconds_sum"
                | "agora_http_request_duration_seconds_count") => {
                    (n.trim_start_matches("agora_http_"), label(key, "service"))
                }
                n @ ("agora_gateway_requests_total"
                | "agora_gateway_request_duration_seconds_bucket"
                | "agora_gateway_request_duration_seconds_sum"
                | "agora_gateway_request_duration_seconds_count") => {
                    (n.trim_start_matches("agora_gateway_"), Some("gateway"))
                }
                _ => continue,
            };
            let Some(service) = service else { continue };
            let acc = per.entry(service.to_owned()).or_default();
            match name {
                "requests_total" => {
                    acc.requests += delta;
                    if label(key, "status").is_some_and(|s| s.starts_with('5')) {
                        acc.errors += delta;
                    }
                }
                "request_duration_seconds_bucket" => {
                    let le = label(key, "le").and_then(|v| match v {
                        "+Inf" => Some(f64::INFINITY),
                        v => v.parse::<f64>().ok(),
                    });
                    if let Some(le) = le {
                        let slot = acc.buckets.entry(le.to_bits()).or_insert((le, 0.0));
                        slot.1 += delta;
                    }
                }
                "request_duration_seconds_sum" => acc.sum += delta,
                _ => acc.count += delta,
            }
        }
        let services = per
            .into_iter()
            .map(|(service, acc)| {
                // Buckets keyed by bit pattern sort like the values for non-negative floats.
                ServicePerformance {
                    request_rate: (window > 0.0).then(|| acc.requests / window),
                    error_rate: (acc.requests > 0.0).then(|| acc.errors / acc.requests * 100.0),
                    latency_ms_mean: (acc.count > 0.0).then(|| acc.sum / acc.count * 1000.0),
                    latency_ms_p50: acc.quantile(0.5),
                    latency_ms_p95: acc.quantile(0.95),
                    latency_ms_p99: acc.quantile(0.99),
                    requests: acc.requests,
                    errors: acc.errors,
                    service,
                }
            })
            .collect();
        Performance {
            window_secs: window,
            services,
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse() {
        let (key, v) = parse_line(
            r#"agora_http_requests_total{service="tickets",route="/a\"b",status="200"} 42"#,
        )
        .unwrap();
        assert_eq!(key.0, "agora_http_requests_total");
        assert_eq!(label(&key, "route"), Some("/a\"b"));
        assert_eq!(v, 42.0);
        assert_eq!(parse_line("up 1").unwrap().1, 1.0);
        let (_, inf) = parse_line(r#"x_bucket{le="+Inf"} +Inf"#).unwrap();
        assert!(inf.is_infinite());
        assert!(parse_line("# HELP x y").is_none());
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut acc = Acc::default();
        for (le, cum) in [
            (0.001, 0.0),
            (0.01, 50.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ] {
            acc.buckets.insert(f64::to_bits(le), (le, cum));
        }
        let p50 = acc.quantile(0.5).unwrap();
        assert!((p50 - 10.0).abs() < 1e-9, "{p50}");
        let p99 = acc.quantile(0.99).unwrap();
        assert!(p99 > 90.0 && p99 <= 100.0, "{p99}");
    }
}
