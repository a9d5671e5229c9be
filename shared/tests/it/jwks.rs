//! A verifier's cached JWKS expires with the issuer's `max-age`: a signing key removed from the
//! issuer's set stops verifying within it, even when nobody announces the change (before, the
//! cache never expired and a removed key verified until the verifier restarted).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use agora_shared::tokens::{
    KeyPair, MemoryDenylist, RemoteJwks, Signer, Subject, TokenSettings, Verifier, jwks,
};

/// An issuer answering its current JWKS with `Cache-Control: max-age=1` on a free port.
async fn issuer(set: Arc<Mutex<serde_json::Value>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = set.lock().unwrap().to_string();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: public, max-age=1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_stops_verifying_within_max_age() {
    let (old, new) = (KeyPair::generate(), KeyPair::generate());
    let set = Arc::new(Mutex::new(jwks(&[old.public_key(), new.public_key()])));
    let url = issuer(set.clone()).await;
    let keys = Arc::new(RemoteJwks::new(url, Duration::from_millis(200)));
    let verifier = Verifier::new(
        "agora",
        "agora-api",
        keys.clone(),
        Arc::new(MemoryDenylist::default()),
    );
    let settings = TokenSettings {
        issuer: "agora".into(),
        audience: "agora-api".into(),
        access_ttl: Duration::from_secs(900),
    };
    let subject = Subject {
        user_id: "u1",
        tenant_id: "t1",
        role: "TENANT_USER",
        permissions: &[],
        email: "a@b.c",
        session_id: None,
        plan: None,
    };
    let (token, _) = Signer::new(settings, &old).issue(&subject).unwrap();
    verifier
        .verify(&token)
        .await
        .expect("the old key verifies while published");
    verifier
        .verify(&token)
        .await
        .expect("and again, from the cache");
    assert_eq!(keys.fetch_count(), 1);

    // The issuer retires the old key and tells no one.
    *set.lock().unwrap() = jwks(&[new.public_key()]);
    let started = std::time::Instant::now();
    while verifier.verify(&token).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still verifying after max-age"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "refetched before max-age"
    );
    assert_eq!(keys.fetch_count(), 2);
}
