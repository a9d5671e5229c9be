//! Load generation for the benchmarks: concurrent callers for a bounded time, and a report line
//! with throughput and latency percentiles.

use std::time::{Duration, Instant};

/// Runs `task(caller_index)` in a loop from `callers` concurrent callers for `phase`; returns
/// the latencies, sorted.
pub async fn run<F, Fut>(phase: Duration, callers: usize, task: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + phase;
    let task = &task;
    let loops = (0..callers).map(|i| async move {
        let mut lat = Vec::new();
        while Instant::now() < deadline {
            let t = Instant::now();
            task(i).await;
            lat.push(t.elapsed());
        }
        lat
    });
    let mut lat: Vec<Duration> = futures::future::join_all(loops)
        .await
        .into_iter()
        .flatten()
        .collect();
    lat.sort();
    lat
}

/// Prints `what`: requests per second over `phase`, p50 and p99 of the sorted `lat`.
pub fn report(what: &str, phase: Duration, lat: &[Duration]) {
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{:<44} {:>10.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        what,
        lat.len() as f64 / phase.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0
    );
}
