//! Redis connections against redis-servers of the test's own.
//!
//! TLS (`rediss://`): a certificate from a CA made for the test. With that CA as
//! `redis.ca_file` commands go through; without it the server's certificate is refused (the
//! system's store does not know the CA), so the connection is verified, not merely encrypted.
//!
//! Recovery: a connection the network stops carrying (every command times out, no I/O error
//! ever comes) and a connection whose AUTH was refused are both remade, so the platform's edge
//! comes back by itself once Redis can be reached again.

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agora_shared::{
    config::Secret,
    redis::{Redis, RedisConfig},
    testing::skip_or_fail,
};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, and a certificate it signs for localhost / 127.0.0.1.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-new", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend(ec);
    ca.extend(["-days", "1", "-subj", "/CN=agora test CA"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    csr.extend(["-subj", "/CN=localhost"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connections to `url` with a patient timeout (TLS handshakes on a loaded machine).
fn client(url: String, ca_file: Option<&Path>) -> Redis {
    let config = RedisConfig {
        url: Some(Secret::new(url)),
        ca_file: ca_file.map(Path::to_path_buf),
        timeout_ms: 2000,
        ..Default::default()
    };
    Redis::connect(&config).unwrap().unwrap()
}

fn installed(tools: &[&str]) -> bool {
    let missing: Vec<_> = tools
        .iter()
        .filter(|t| {
            let flag = if **t == "openssl" {
                "version"
            } else {
                "--version"
            };
            Command::new(t).arg(flag).output().is_err()
        })
        .collect();
    if !missing.is_empty() {
        skip_or_fail("redis", &format!("{missing:?} not installed"));
    }
    missing.is_empty()
}

/// A redis-server in `dir`, listening on 127.0.0.1 and 127.0.0.2 at the port it returns, with the arguments
/// `args(port)` gives beside the defaults (no persistence).
fn server(dir: &Path, args: impl Fn(&str) -> Vec<String>) -> (Server, u16) {
    let port = agora_shared::testing::unclaimed_port();
    let server = Server(
        Command::new("redis-server")
            .args(args(&port.to_string()))
            // 127.0.0.2 too: another address of this host, which certificates do not name.
            .args(["--bind", "127.0.0.1", "127.0.0.2"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts"),
    );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server listens"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

async fn ping(redis: &Redis) -> Result<String, String> {
    redis
        .run(|mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await })
        .await
}

/// An HTTP worker's thread (a single-threaded runtime) drives a connection of its own, and
/// the round trips it makes are counted like any other. A runtime that ran on the same thread
/// before took that connection's driver with it when it ended, so the next one gets a new
/// connection instead of the dead one.
#[test]
fn each_single_threaded_runtime_on_a_thread_gets_a_live_connection_of_its_own() {
    let outer = tokio::runtime::Runtime::new().unwrap();
    let Some(redis) = outer.block_on(async { agora_shared::testing::redis() }) else {
        return;
    };
    for round in 0..3 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let before = redis.round_trips();
        for _ in 0..2 {
            assert_eq!(
                runtime.block_on(ping(&redis)).as_deref(),
                Ok("PONG"),
                "runtime {round}"
            );
        }
        assert_eq!(redis.round_trips() - before, 2);
        drop(runtime);
    }
    // The handle's shared connections still serve a multi-threaded runtime's tasks.
    assert_eq!(outer.block_on(ping(&redis)).as_deref(), Ok("PONG"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_verifies_the_server_against_the_configured_ca() {
    if !installed(&["redis-server", "openssl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_server, port) = server(dir.path(), |port| {
        let mut args = strings(&["--port", "0", "--tls-port", port]);
        args.extend(strings(&[
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
        ]));
        args
    });
    let url = format!("rediss://localhost:{port}");

    let trusted = client(url.clone(), Some(&dir.path().join("ca.pem")));
    assert_eq!(ping(&trusted).await, Ok("PONG".to_owned()));

    let untrusted = ping(&client(url.clone(), None)).await.unwrap_err();
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");

    // The CA's certificate is for localhost and 127.0.0.1, not for another name of this host.
    let other_name = format!("rediss://127.0.0.2:{port}");
    let refused = ping(&client(other_name, Some(&dir.path().join("ca.pem"))))
        .await
        .unwrap_err();
    assert!(refused.contains("not valid for name"), "{refused}");

    // Plain redis:// at a TLS port gets no answer.
    let plain = ping(&client(format!("redis://127.0.0.1:{port}"), None)).await;
    assert!(plain.is_err(), "{plain:?}");

    // A CA file without a certificate in it is refused at start, naming the setting.
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let config = RedisConfig {
        url: Some(Secret::new(url)),
        ca_file: Some(dir.path().join("empty.pem")),
        ..Default::default()
    };
    let err = Redis::connect(&config).unwrap_err().to_string();
    assert!(
        err.starts_with("redis.ca_file:") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[test]
fn certificate_checks_cannot_be_turned_off_in_the_url() {
    let config = agora_shared::config::ConfigSource::from_toml(
        "[redis]\nurl = \"rediss://redis.internal:6380/#insecure\"\n",
    );
    let err = config.section::<RedisConfig>("redis").unwrap_err();
    assert_eq!(err.key, "redis.url");
}

/// A TCP relay to `upstream` whose connections made so far can be made to stop carrying
/// anything (left open, as a dropped NAT entry or a moved pod leaves them); connections made
/// after that are carried.
struct Relay {
    port: u16,
    stalled_below: Arc<AtomicUsize>,
    made: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled_below = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let (stalled, count) = (stalled_below.clone(), made.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let id = count.fetch_add(1, Ordering::SeqCst);
                let outbound = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(carry(ri, wo, id, stalled.clone()));
                tokio::spawn(carry(ro, wi, id, stalled.clone()));
            }
        });
        Self {
            port,
            stalled_below,
            made,
        }
    }

    /// Every connection made so far stops carrying bytes.
    fn stall(&self) {
        self.stalled_below
            .store(self.made.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn carry(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: usize,
    stalled_below: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < stalled_below.load(Ordering::SeqCst) {
            // Open, silent, forever: no reset, no FIN (both halves stay borrowed here).
            let _held = (&from, &to);
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// PINGs until one is answered, for at most `within`; the failures seen before it.
async fn answered_within(redis: &Redis, within: Duration) -> Result<Vec<String>, Vec<String>> {
    let started = Instant::now();
    let mut failures = Vec::new();
    while started.elapsed() < within {
        match ping(redis).await {
            Ok(_) => return Ok(failures),
            Err(e) => failures.push(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_is_remade() {
    if !installed(&["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = server(dir.path(), |port| strings(&["--port", port]));
    let relay = Relay::start(port).await;
    // Two connections (the default pool size).
    let redis = client(format!("redis://127.0.0.1:{}", relay.port), None);
    for _ in 0..4 {
        assert_eq!(ping(&redis).await, Ok("PONG".to_owned()));
    }
    assert_eq!(relay.made.load(Ordering::SeqCst), 2, "one per connection");

    relay.stall();
    assert_eq!(ping(&redis).await, Err("timed out".to_owned()));
    let failures = answered_within(&redis, Duration::from_secs(10))
        .await
        .unwrap_or_else(|f| panic!("never answered again: {f:?}"));
    assert!(failures.iter().all(|f| f == "timed out"), "{failures:?}");
    assert!(relay.made.load(Ordering::SeqCst) > 2, "a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_is_tried_again_until_the_server_takes_it() {
    if !installed(&["redis-server"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = server(dir.path(), |port| {
        strings(&["--port", port, "--requirepass", "old-secret"])
    });
    let redis = client(format!("redis://:new-secret@127.0.0.1:{port}"), None);
    let refused = ping(&redis).await.unwrap_err();
    assert!(
        refused.contains("WRONGPASS") || refused.contains("uthentication"),
        "{refused}"
    );

    // The password is rotated on the server, as an operator does after updating the secret.
    let admin = client(format!("redis://:old-secret@127.0.0.1:{port}"), None);
    admin
        .run(|mut conn| async move {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("requirepass")
                .arg("new-secret")
                .query_async::<()>(&mut conn)
                .await
        })
        .await
        .unwrap();
    answered_within(&redis, Duration::from_secs(10))
        .await
        .unwrap_or_else(|f| panic!("never answered after the rotation: {f:?}"));
}

#[test]
fn a_ca_file_needs_a_rediss_url() {
    let config = agora_shared::config::ConfigSource::from_toml(
        "[redis]\nurl = \"redis://127.0.0.1:6379\"\nca_file = \"/etc/ssl/ca.pem\"\n",
    );
    let err = config.section::<RedisConfig>("redis").unwrap_err();
    assert_eq!(err.key, "redis.ca_file");
}
