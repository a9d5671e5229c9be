//! Redis over TLS (`rediss://`): a redis-server of the test's own with a certificate from a
//! CA made for the test. With that CA as `redis.ca_file` commands go through; without it the
//! server's certificate is refused (the system's store does not know the CA), so the
//! connection is verified, not merely encrypted.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
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

fn client(url: String, ca_file: Option<&Path>) -> Redis {
    let config = RedisConfig {
        url: Some(Secret::new(url)),
        ca_file: ca_file.map(Path::to_path_buf),
        timeout_ms: 2000,
        ..Default::default()
    };
    Redis::connect(&config).unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_verifies_the_server_against_the_configured_ca() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
        || Command::new("openssl").arg("version").output().is_err()
    {
        skip_or_fail("redis", "redis-server or openssl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
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
    let url = format!("rediss://localhost:{port}");
    let ping = |redis: Redis| async move {
        redis
            .run(
                |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
            )
            .await
    };

    let trusted = client(url.clone(), Some(&dir.path().join("ca.pem")));
    assert_eq!(ping(trusted).await, Ok("PONG".to_owned()));

    let untrusted = ping(client(url, None)).await;
    assert!(untrusted.is_err(), "{untrusted:?}");

    // Plain redis:// at a TLS port gets no answer.
    let plain = ping(client(format!("redis://127.0.0.1:{port}"), None)).await;
    assert!(plain.is_err(), "{plain:?}");
}

#[test]
fn a_ca_file_needs_a_rediss_url() {
    let config = agora_shared::config::ConfigSource::from_toml(
        "[redis]\nurl = \"redis://127.0.0.1:6379\"\nca_file = \"/etc/ssl/ca.pem\"\n",
    );
    let err = config.section::<RedisConfig>("redis").unwrap_err();
    assert_eq!(err.key, "redis.ca_file");
}
