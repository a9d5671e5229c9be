//! Access-token verification against forged and stale tokens, JWKS, key rotation, and the gRPC
//! API.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Request;

use agora_proto::auth::v1::{self as pb, auth_service_client::AuthServiceClient};
use agora_shared::testing::TestDb;

use crate::support::{Call, Options, problem, spawn, spawn_with};

fn claims(s: &crate::support::Session, overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "iss": "agora", "aud": "agora", "sub": s.user_id, "tid": s.tenant_id, "role": "TENANT_ADMIN",
        "perms": [], "email": s.email, "jti": uuid::Uuid::now_v7().to_string(), "iat": now, "nbf": now, "exp": now + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn forged_and_stale_tokens_are_rejected(db: TestDb) {
    let app = spawn(db).await;
    let s = app.register("a@x.test", "Acme").await;
    let key = app.key.clone().unwrap();
    let sign = |header: Header, claims: &Value| {
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ed_pem(key.private_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let eddsa = || {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(key.kid.clone());
        h
    };
    // Control: a token we sign ourselves with the service key and valid claims is accepted.
    let good = sign(eddsa(), &claims(&s, json!({})));
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &good)
            .call()
            .await
            .status(),
        200
    );

    let mut forged = Vec::new();
    // alg none: header and claims, no signature.
    let none_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": key.kid}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims(&s, json!({"role": "PLATFORM_ADMIN"})).to_string());
    forged.push(("alg none", format!("{none_header}.{body}.")));
    // HS256 keyed with the public key (algorithm confusion).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(key.kid.clone());
    let public = URL_SAFE_NO_PAD.decode(key.public_key().x).unwrap();
    let hs_token = jsonwebtoken::encode(
        &hs,
        &claims(&s, json!({})),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    forged.push(("hs256 with public key", hs_token));
    // A valid token with its payload swapped: the signature no longer matches.
    let parts: Vec<&str> = good.split('.').collect();
    let evil = URL_SAFE_NO_PAD.encode(claims(&s, json!({"role": "PLATFORM_ADMIN"})).to_string());
    forged.push((
        "wrong signature",
        format!("{}.{}.{}", parts[0], evil, parts[2]),
    ));
    forged.push((
        "expired",
        sign(
            eddsa(),
            &claims(&s, json!({"exp": chrono::Utc::now().timestamp() - 120})),
        ),
    ));
    forged.push((
        "not yet valid",
        sign(
            eddsa(),
            &claims(&s, json!({"nbf": chrono::Utc::now().timestamp() + 600})),
        ),
    ));
    forged.push((
        "wrong audience",
        sign(eddsa(), &claims(&s, json!({"aud": "someone-else"}))),
    ));
    forged.push((
        "wrong issuer",
        sign(eddsa(), &claims(&s, json!({"iss": "evil"}))),
    ));
    let mut unknown = Header::new(Algorithm::EdDSA);
    unknown.kid = Some("unknown-kid".into());
    forged.push(("unknown kid", sign(unknown, &claims(&s, json!({})))));
    let other = agora_shared::tokens::KeyPair::generate();
    let mut other_header = Header::new(Algorithm::EdDSA);
    other_header.kid = Some(key.kid.clone());
    let other_token = jsonwebtoken::encode(
        &other_header,
        &claims(&s, json!({})),
        &EncodingKey::from_ed_pem(other.private_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    forged.push(("signed by another key", other_token));
    forged.push(("garbage", "not.a.jwt".into()));
    for (what, token) in forged {
        let resp = app
            .authed(Method::GET, "/api/v1/auth/me", &token)
            .call()
            .await;
        assert_eq!(resp.status(), 401, "{what}");
    }
    // Malformed Authorization headers.
    let resp = app
        .req(Method::GET, "/api/v1/auth/me")
        .header("authorization", "Basic abc")
        .call()
        .await;
    problem(resp, 401).await;
}

async fn jwks_and_key_rotation(db: TestDb) {
    let app = spawn_with(db, Options::default()).await;
    let s = app.register("a@x.test", "Acme").await;
    let jwks: Value = app.req(Method::GET, "/.well-known/jwks.json").value().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    let old_kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();

    let new_kid = agora_auth::keys::rotate(&app.state.db, None).await.unwrap();
    app.state.keyring.reload(&app.state.db).await.unwrap();
    assert_ne!(new_kid, old_kid);
    let jwks: Value = app.req(Method::GET, "/.well-known/jwks.json").value().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    // The old token still verifies; new tokens carry the new kid.
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &s.access)
            .call()
            .await
            .status(),
        200
    );
    let fresh = crate::support::session(
        app.login("a@x.test", crate::support::PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
    );
    let header = jsonwebtoken::decode_header(&fresh.access).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &fresh.access)
            .call()
            .await
            .status(),
        200
    );
}

async fn grpc_api(db: TestDb) {
    let app = spawn(db).await;
    let a = app.register("a@x.test", "Acme").await;
    let b = app.register("b@y.test", "Beta").await;
    let peer = app.context().auth_peer.secret.unwrap();
    let team: Value = app
        .authed(Method::POST, "/api/v1/teams", &a.access)
        .json(&json!({"name": "North", "zone": "Northern", "member_ids": [a.user_id]}))
        .value()
        .await;
    let mut client = AuthServiceClient::connect(app.grpc.clone()).await.unwrap();
    let user = client
        .get_user(with(
            &peer,
            &a.access,
            pb::GetUserRequest {
                user_id: a.user_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.email, "a@x.test");
    // The shared channel builder and the forwarding interceptor carry the caller's identity.
    let channel = agora_shared::grpc::channel(
        app.grpc.trim_start_matches("http://"),
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let forward = agora_shared::grpc::Forward {
        authorization: Some(format!("Bearer {}", a.access)),
        peer_secret: Some(peer.clone()),
    };
    let mut forwarded = AuthServiceClient::with_interceptor(channel, forward);
    let user = forwarded
        .get_user(pb::GetUserRequest {
            user_id: a.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(user.tenant_id, a.tenant_id);
    // Another tenant's user is not found; no credential is unauthenticated.
    let err = client
        .get_user(with(
            &peer,
            &b.access,
            pb::GetUserRequest {
                user_id: a.user_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client
        .get_user(Request::new(pb::GetUserRequest {
            user_id: a.user_id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let team_id = team["id"].as_str().unwrap().to_owned();
    let got = client
        .get_team(with(
            &peer,
            &a.access,
            pb::GetTeamRequest {
                team_id: team_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.member_ids, vec![a.user_id.clone()]);
    assert_eq!(got.daily_capacity, 5);
    let err = client
        .get_team(with(&peer, &b.access, pb::GetTeamRequest { team_id }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let list = client
        .list_teams(with(
            &peer,
            &a.access,
            pb::ListTeamsRequest {
                limit: 10,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.teams.len(), 1);
    let list = client
        .list_teams(with(&peer, &b.access, pb::ListTeamsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(list.teams.is_empty());

    let key: Value = app
        .authed(Method::POST, "/api/v1/api-keys", &a.access)
        .json(&json!({"name": "svc", "role": "TENANT_USER"}))
        .value()
        .await;
    // VerifyApiKey answers only peers that present the secret: without it, with another one,
    // or with a user's token instead, whoever reaches the port learns nothing of the key.
    let verify = |key: &str, secret: Option<&str>| {
        let mut r = Request::new(pb::VerifyApiKeyRequest { key: key.into() });
        if let Some(secret) = secret {
            r.metadata_mut()
                .insert("x-agora-peer", secret.parse().unwrap());
        }
        r
    };
    let key = key["key"].as_str().unwrap();
    let wrong = format!("{}x", &peer.expose()[1..]);
    for refused in [verify(key, None), verify(key, Some(&wrong)), {
        let mut r = Request::new(pb::VerifyApiKeyRequest { key: key.into() });
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", a.access).parse().unwrap(),
        );
        r
    }] {
        let err = client.verify_api_key(refused).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("peer secret"), "{}", err.message());
    }
    // Nor are the other RPCs: without the secret a live key and a bogus one get one answer.
    for presented in [key, "agk_bogus"] {
        let mut r = Request::new(pb::GetUserRequest {
            user_id: a.user_id.clone(),
        });
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {presented}").parse().unwrap(),
        );
        let err = client.get_user(r).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("peer secret"), "{}", err.message());
    }
    let verified = client
        .verify_api_key(verify(key, Some(peer.expose())))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.valid);
    assert_eq!(verified.tenant_id, a.tenant_id);
    assert_eq!(verified.role, "TENANT_USER");
    let bogus = client
        .verify_api_key(verify("agk_bogus", Some(peer.expose())))
        .await
        .unwrap()
        .into_inner();
    assert!(!bogus.valid);

    let jwks = client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let jwks: Value = serde_json::from_str(&jwks.jwks_json).unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        app.key.as_ref().unwrap().kid.as_str()
    );

    // The standard health service answers.
    let channel = tonic::transport::Endpoint::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

async fn remote_jwks_is_cached_and_refetched_at_a_bounded_rate(db: TestDb) {
    use std::{sync::Arc, time::Duration};

    use agora_shared::tokens::{MemoryDenylist, RemoteJwks, Verifier};

    let app = spawn_with(db, Options::default()).await;
    let s = app.register("a@x.test", "Acme").await;
    let remote = Arc::new(RemoteJwks::new(
        app.url("/.well-known/jwks.json"),
        Duration::from_millis(300),
    ));
    let verifier = Verifier::new(
        "agora",
        "agora",
        remote.clone(),
        Arc::new(MemoryDenylist::default()),
    );
    assert_eq!(verifier.verify(&s.access).await.unwrap().sub, s.user_id);
    assert_eq!(verifier.verify(&s.access).await.unwrap().sub, s.user_id);
    assert_eq!(remote.fetch_count(), 1, "cached after the first fetch");
    // A flood of unknown kids does not turn into a flood of fetches.
    let parts: Vec<&str> = s.access.split('.').collect();
    for i in 0..20 {
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": format!("bogus-{i}")}).to_string());
        let forged = format!("{header}.{}.{}", parts[1], parts[2]);
        assert!(verifier.verify(&forged).await.is_err());
    }
    assert_eq!(remote.fetch_count(), 1);
    // After a rotation, a token with the new kid makes the verifier fetch again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    agora_auth::keys::rotate(&app.state.db, None).await.unwrap();
    app.state.keyring.reload(&app.state.db).await.unwrap();
    let fresh = crate::support::session(
        app.login("a@x.test", crate::support::PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(verifier.verify(&fresh.access).await.unwrap().sub, s.user_id);
    assert_eq!(remote.fetch_count(), 2);
    assert!(
        verifier.verify(&s.access).await.is_ok(),
        "the old key still verifies"
    );
}

async fn stored_signing_keys_are_sealed(db: TestDb) {
    use base64::engine::general_purpose::STANDARD;

    let kek = STANDARD.encode([42u8; 32]);
    let app = spawn_with(
        db,
        Options {
            configured_key: false,
            extra_toml: format!("key_encryption_key = \"{kek}\"\n"),
        },
    )
    .await;
    let s = app.register("a@x.test", "Acme").await;
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &s.access)
            .call()
            .await
            .status(),
        200
    );
    let stored: Vec<String> = {
        use agora_auth::schema::signing_keys;
        use diesel::prelude::*;
        app.state
            .db
            .read(|conn| {
                Ok(signing_keys::table
                    .select(signing_keys::private_pem)
                    .load(conn)?)
            })
            .await
            .unwrap()
    };
    assert!(!stored.is_empty());
    assert!(
        stored
            .iter()
            .all(|p| p.starts_with("sealed:v2:") && !p.contains("PRIVATE KEY"))
    );
    let toml = |extra: &str| {
        format!(
            "[auth]\nhttp_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\n{extra}",
            app.db_url
        )
    };
    let start = |toml: String, mode| async move {
        let (mut ctx, _) = agora_shared::testing::service_context(&toml);
        ctx.common.mode = mode;
        agora_auth::start(&ctx, tokio_util::sync::CancellationToken::new()).await
    };
    use agora_shared::config::Mode;
    // Distributed mode runs on sealed store-managed keys.
    let with_kek = format!("key_encryption_key = \"{kek}\"\n");
    let started = start(toml(&with_kek), Mode::Distributed)
        .await
        .expect("starts on sealed keys");
    started.service.shutdown.cancel();

    // Each sealed key is bound to its key id: a sealed value copied onto another key's row
    // (an attacker with write access to the store choosing which key signs) does not open.
    let active = agora_auth::keys::rotate(
        &app.state.db,
        agora_shared::sealed::Sealer::from_base64(&kek).ok(),
    )
    .await
    .unwrap();
    // What an attacker with write access to the store does: overwrite the active key's row.
    let overwrite_active = |pem: String| {
        let kid = active.clone();
        app.state.db.write(move |conn| {
            use agora_auth::schema::signing_keys;
            use diesel::prelude::*;
            diesel::update(signing_keys::table.filter(signing_keys::kid.eq(kid)))
                .set(signing_keys::private_pem.eq(pem))
                .execute(conn)?;
            Ok(())
        })
    };
    overwrite_active(stored[0].clone()).await.unwrap();
    let err = start(toml(&with_kek), Mode::Embedded)
        .await
        .err()
        .expect("refuses to start");
    assert!(
        format!("{err:#}").contains("sealed for another row"),
        "{err:#}"
    );
    // The same store without the key, or with another, does not start.
    for extra in [
        String::new(),
        format!("key_encryption_key = \"{}\"\n", STANDARD.encode([1u8; 32])),
    ] {
        let err = start(toml(&extra), Mode::Embedded)
            .await
            .err()
            .expect("refuses to start");
        assert!(
            format!("{err:#}").contains("auth.key_encryption_key"),
            "{err:#}"
        );
    }
    // Nor does a key written in clear onto the active row while a key-encryption key is set.
    let planted = agora_shared::tokens::KeyPair::generate()
        .private_pem()
        .to_owned();
    overwrite_active(planted).await.unwrap();
    let err = start(toml(&with_kek), Mode::Embedded)
        .await
        .err()
        .expect("refuses to start");
    assert!(format!("{err:#}").contains("stored in clear"), "{err:#}");
}

/// `msg` as a service sends it on behalf of the holder of `token`, with the peer secret.
fn with<T>(peer: &agora_shared::config::Secret, token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r.metadata_mut()
        .insert("x-agora-peer", peer.expose().parse().unwrap());
    r
}

agora_testkit::on_every_store!(
    forged_and_stale_tokens_are_rejected,
    jwks_and_key_rotation,
    remote_jwks_is_cached_and_refetched_at_a_bounded_rate,
    stored_signing_keys_are_sealed,
    grpc_api
);
