//! The embedded platform in this process, supervised as the binary supervises it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agora_shared::config::{CommonConfig, ConfigSource, Mode};

/// The whole platform on port 0 with its stores in `dir`.
async fn platform(dir: &std::path::Path) -> Vec<agora_shared::service::RunningService> {
    let mut toml = format!("data_dir = \"{}\"\n", dir.display());
    for name in agora::known() {
        let section = agora_shared::service::config_section(name);
        toml.push_str(&format!(
            "[{section}]\nhttp_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\n"
        ));
    }
    let config = ConfigSource::from_toml(&toml);
    let mut common: CommonConfig = config.section("").unwrap();
    common.mode = Mode::Embedded;
    let ctx = agora::context(config, common, true).unwrap();
    agora::start(ctx, agora::select(&["all".to_owned()]).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_stops_every_service_and_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = platform(dir.path()).await;
    let addresses: Vec<_> = running.iter().map(|s| (s.name, s.http_addr)).collect();
    assert_eq!(
        addresses.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [
            "auth",
            "tickets",
            "analytics",
            "inventory-sync",
            "code-exec",
            "realtime",
            "ai",
            "gateway"
        ],
        "started in the table's order"
    );
    let tickets = running.iter_mut().find(|s| s.name == "tickets").unwrap();
    tickets
        .tasks
        .spawn(async { Err(anyhow::anyhow!("disk on fire")) });

    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        agora_shared::service::supervise(running, CancellationToken::new()),
    )
    .await
    .expect("the platform stops within 5 s");
    let err = outcome.expect_err("a failed task is a failure of the process");
    assert_eq!(format!("{err:#}"), "service tickets failed: disk on fire");
    for (name, addr) in addresses {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{name} still listens on {addr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_ends_every_service_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let running = platform(dir.path()).await;
    let gateway = running.last().unwrap().http_addr;
    let stop = CancellationToken::new();
    stop.cancel();
    tokio::time::timeout(
        Duration::from_secs(15),
        agora_shared::service::supervise(running, stop),
    )
    .await
    .expect("stops")
    .expect("a requested stop is no failure");
    assert!(tokio::net::TcpStream::connect(gateway).await.is_err());
}
