//! The Judge0 API through the gateway, with the real auth service, on SQLite and PostgreSQL:
//! submissions waited for or polled, base64 and fields as Judge0 has them, batches, tenant
//! isolation, validation naming the field, and a tenant's queue quota under 50 requests at once.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store, problem};
use agora_testkit::Session;

use crate::{Platform, platform};

agora_shared::on_sqlite_and_postgres!(
    submissions_run_and_are_read_as_judge0_shows_them,
    bad_submissions_are_refused_naming_the_field,
    fifty_submissions_at_once_against_a_queue_of_ten,
    a_tenant_with_a_long_queue_does_not_hold_every_slot,
    a_user_with_a_long_queue_does_not_hold_every_slot_of_the_tenant,
    finished_submissions_are_forgotten_after_their_retention,
    a_callback_brings_the_verdict_to_the_submitters_url,
);

impl Platform {
    async fn submit(&self, who: &Session, query: &str, body: Value) -> reqwest::Response {
        self.kit
            .authed(
                Method::POST,
                &format!("/api/v1/code-exec/submissions{query}"),
                who,
            )
            .json(&body)
            .call()
            .await
    }

    async fn get(&self, who: &Session, path: &str) -> reqwest::Response {
        self.kit
            .authed(Method::GET, &format!("/api/v1/code-exec{path}"), who)
            .call()
            .await
    }

    /// Polls a submission until it has a verdict, as Judge0's clients do.
    async fn verdict(&self, who: &Session, token: &str, query: &str) -> Value {
        for _ in 0..600 {
            let resp = self.get(who, &format!("/submissions/{token}{query}")).await;
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            if body["status"]["id"].as_i64().unwrap() > 2 {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no verdict for {token}");
    }
}

async fn submissions_run_and_are_read_as_judge0_shows_them(store: Store) {
    let p = platform(store, "").await;
    let a = p.kit.tenant("Acme").await;
    let b = p.kit.tenant("Beta").await;
    if !p.runs_programs(&a).await {
        return;
    }
    // wait=true answers with the verdict and Judge0's default fields.
    let resp = p
        .submit(
            &a,
            "?wait=true",
            json!({"source_code": "print(input()[::-1])", "language_id": 71, "stdin": "agora", "expected_output": "aroga"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(
        done["status"],
        json!({"id": 3, "description": "Accepted"}),
        "{done}"
    );
    assert_eq!(done["stdout"], "aroga\n");
    let keys: Vec<&str> = done
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        8,
        "Judge0's default fields: token, stdout, time, memory, stderr, compile_output, message, status: {keys:?}"
    );
    assert!(done["time"].as_str().unwrap().parse::<f64>().is_ok());

    // base64 in and out; polled by token; every field with fields=*.
    let source = "#include <stdio.h>\nint main(void){ printf(\"%d\\n\", 6 * 7); return 0; }";
    let queued: Value = p
        .submit(
            &a,
            "?base64_encoded=true",
            json!({"source_code": STANDARD.encode(source), "language_id": 50}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = queued["token"].as_str().unwrap().to_owned();
    assert_eq!(queued.as_object().unwrap().len(), 1, "{queued}");
    let c = p.verdict(&a, &token, "?base64_encoded=true&fields=*").await;
    assert_eq!(c["status"]["id"], 3, "{c}");
    assert_eq!(
        STANDARD.decode(c["stdout"].as_str().unwrap()).unwrap(),
        b"42\n"
    );
    assert_eq!(
        STANDARD.decode(c["source_code"].as_str().unwrap()).unwrap(),
        source.as_bytes()
    );
    assert_eq!(c["language"]["id"], 50);
    assert_eq!(c["memory_limit"], 128000);
    assert!(c["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(c["finished_at"].is_string());
    let picked: Value = p
        .get(&a, &format!("/submissions/{token}?fields=status_id,stdout"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(picked, json!({"status_id": 3, "stdout": "42\n"}));

    // Another tenant's token is not found, alone or in a batch.
    problem(p.get(&b, &format!("/submissions/{token}")).await, 404).await;
    let batch: Value = p
        .kit
        .authed(Method::POST, "/api/v1/code-exec/submissions/batch", &b)
        .json(&json!({"submissions": [
            {"source_code": "print('one')", "language_id": 71},
            {"source_code": "int main(void){ return 3; }", "language_id": 50},
        ]}))
        .value()
        .await;
    let tokens: Vec<String> = batch
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 2);
    let mut statuses = vec![];
    for t in &tokens {
        statuses.push(p.verdict(&b, t, "").await["status"]["id"].clone());
    }
    assert_eq!(statuses, [json!(3), json!(11)]);
    let mixed: Value = p
        .get(
            &b,
            &format!(
                "/submissions/batch?tokens={},{token},{}&fields=token,status",
                tokens[0], tokens[1]
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let list = mixed["submissions"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["token"], tokens[0].as_str());
    assert!(
        list[1].is_null(),
        "another tenant's submission is not shown: {mixed}"
    );
    assert_eq!(list[2]["status"]["id"], 11);

    // What the host offers, as Judge0 describes it.
    let languages: Value = p.get(&a, "/languages").await.json().await.unwrap();
    let ids: Vec<i64> = languages
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&71) && ids.contains(&50), "{languages}");
    let python: Value = p.get(&a, "/languages/71").await.json().await.unwrap();
    assert!(
        python["name"].as_str().unwrap().starts_with("Python ("),
        "{python}"
    );
    problem(p.get(&a, "/languages/9999").await, 404).await;
    let statuses: Value = p.get(&a, "/statuses").await.json().await.unwrap();
    assert_eq!(statuses.as_array().unwrap().len(), 14);
    let config: Value = p.get(&a, "/config_info").await.json().await.unwrap();
    assert_eq!(config["cpu_time_limit"], 5.0);
    assert_eq!(config["enable_network"], false);
    assert_eq!(config.as_object().unwrap().len(), 39);
    let about: Value = p.get(&a, "/about").await.json().await.unwrap();
    assert_eq!(about["version"], "1.13.1");
    let system: Value = p.get(&a, "/system_info").await.json().await.unwrap();
    assert_eq!(system["isolation"]["available"], true, "{system}");
    assert_eq!(system["isolation"]["seccomp"], true, "{system}");
    // Without a credential nothing is served.
    let anonymous = p
        .kit
        .req(Method::GET, "/api/v1/code-exec/languages")
        .call()
        .await;
    assert_eq!(anonymous.status(), 401);
}

async fn bad_submissions_are_refused_naming_the_field(store: Store) {
    let p = platform(store, "").await;
    let a = p.kit.tenant("Acme").await;
    if !p.runs_programs(&a).await {
        return;
    }
    for (body, query, field) in [
        (
            json!({"source_code": "print(1)", "language_id": 71, "enable_network": true}),
            "",
            "enable_network",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 4242}),
            "",
            "language_id",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 71, "cpu_time_limit": 100}),
            "",
            "cpu_time_limit",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 71, "memory_limit": -5}),
            "",
            "memory_limit",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 71, "callback_url": "http://127.0.0.1:5432/"}),
            "",
            "callback_url",
        ),
        (
            json!({"source_code": "***", "language_id": 71}),
            "?base64_encoded=true",
            "source_code",
        ),
        (
            json!({"source_code": "", "language_id": 71}),
            "",
            "source_code",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 71, "compiler_options": "'open"}),
            "",
            "compiler_options",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 71}),
            "?wait=true&fields=stdout,bogus",
            "fields",
        ),
        (
            json!({"source_code": "print(1)", "language_id": 71, "command_line_arguments": "a\u{0}b"}),
            "",
            "command_line_arguments",
        ),
    ] {
        let resp = p.submit(&a, query, body.clone()).await;
        let problem = problem(resp, 422).await;
        let named = agora_testkit::fields(&problem);
        assert!(named.iter().any(|f| f == field), "{body}: {problem}");
    }
    // A token named twice in a batch read is refused (each would be rendered again).
    let twice = p.get(&a, "/submissions/batch?tokens=x,y,x").await;
    assert!(agora_testkit::fields(&problem(twice, 422).await).contains(&"tokens".to_owned()));
    // Unknown fields are named too (a misspelt limit is never silently ignored).
    let resp = p
        .submit(
            &a,
            "",
            json!({"source_code": "print(1)", "language_id": 71, "cpu_time_limt": 1}),
        )
        .await;
    let body = problem(resp, 422).await;
    assert!(body.to_string().contains("cpu_time_limt"), "{body}");
    // Output that is not UTF-8 is shown in base64 only.
    let resp = p
        .submit(
            &a,
            "?wait=true",
            json!({"source_code": "import sys; sys.stdout.buffer.write(b'\\xff\\xfe')", "language_id": 71}),
        )
        .await;
    // wait=true still answers the queued submission's token; reading it as text is a 400.
    assert_eq!(resp.status(), 201);
    let queued: Value = resp.json().await.unwrap();
    let token = queued["token"].as_str().expect("the token").to_owned();
    p.verdict(&a, &token, "?base64_encoded=true").await;
    let body = problem(p.get(&a, &format!("/submissions/{token}")).await, 400).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("base64_encoded=true"),
        "{body}"
    );
    let raw = p.verdict(&a, &token, "?base64_encoded=true").await;
    assert_eq!(raw["stdout"], STANDARD.encode([0xff, 0xfe]));
}

async fn a_tenant_with_a_long_queue_does_not_hold_every_slot(store: Store) {
    let p = platform(store, "").await;
    let a = p.kit.tenant("Acme").await;
    let b = p.kit.tenant("Beta").await;
    if !p.runs_programs(&a).await {
        return;
    }
    let slots = p.state.sandbox.as_ref().unwrap().slots();
    // Acme queues four runs of two seconds per slot; Beta's one run then takes the first
    // slot to come free instead of waiting behind all of Acme's.
    let sleep = json!({"source_code": "import time; time.sleep(2)", "language_id": 71});
    for _ in 0..4 * slots {
        assert_eq!(p.submit(&a, "", sleep.clone()).await.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let resp = p
        .submit(
            &b,
            "?wait=true",
            json!({"source_code": "print('beta')", "language_id": 71}),
        )
        .await;
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done["status"]["id"], 3, "{done}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "Beta waited {:?} behind Acme's queue",
        started.elapsed()
    );
}

async fn finished_submissions_are_forgotten_after_their_retention(store: Store) {
    let p = platform(store, "").await;
    let a = p.kit.tenant("Acme").await;
    if !p.runs_programs(&a).await {
        return;
    }
    let done: Value = p
        .submit(
            &a,
            "?wait=true&fields=token,status",
            json!({"source_code": "print(1)", "language_id": 71}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = done["token"].as_str().unwrap().to_owned();
    assert_eq!(done["status"]["id"], 3);
    let queued: Value = p
        .submit(
            &a,
            "",
            json!({"source_code": "import time; time.sleep(3)", "language_id": 71}),
        )
        .await
        .json()
        .await
        .unwrap();
    // What the retention sweep does once the retention has passed: finished ones go, the
    // one not finished stays.
    let forgotten = p
        .state
        .db
        .write(|conn| {
            agora_code_exec::store::forget_finished(
                conn,
                agora_shared::db::now() + chrono::Duration::seconds(1),
                500,
            )
        })
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
    problem(p.get(&a, &format!("/submissions/{token}")).await, 404).await;
    let still = p
        .get(
            &a,
            &format!("/submissions/{}", queued["token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(still.status(), 200);
}

async fn fifty_submissions_at_once_against_a_queue_of_ten(store: Store) {
    let p = platform(store, "max_queued_per_tenant = 10\n").await;
    let a = p.kit.tenant("Acme").await;
    let b = p.kit.tenant("Beta").await;
    if !p.runs_programs(&a).await {
        return;
    }
    let body = json!({"source_code": "import time; time.sleep(3)", "language_id": 71});
    let answers = futures::future::join_all((0..50).map(|_| p.submit(&a, "", body.clone()))).await;
    let mut created = 0;
    for resp in answers {
        match resp.status().as_u16() {
            201 => created += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                problem(resp, 429).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 10, "exactly the quota is queued");
    // Another tenant's queue is its own.
    let resp = p
        .submit(
            &b,
            "",
            json!({"source_code": "print(1)", "language_id": 71}),
        )
        .await;
    assert_eq!(resp.status(), 201);
}

/// A receiver of callbacks on a loopback port: every request's method and JSON body.
async fn receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/judge0/callback", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    let method = head.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send((method, serde_json::from_str(body).unwrap_or(Value::Null)));
                    let _ = socket
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
            });
        }
    });
    (url, rx)
}

async fn a_callback_brings_the_verdict_to_the_submitters_url(store: Store) {
    let p = platform(store, "callbacks_allow_private = true\n").await;
    let a = p.kit.tenant("Acme").await;
    if !p.runs_programs(&a).await {
        return;
    }
    let (url, mut received) = receiver().await;
    let queued: Value = p
        .submit(
            &a,
            "?base64_encoded=true",
            json!({"source_code": STANDARD.encode("print('called back')"), "language_id": 71, "callback_url": url}),
        )
        .await
        .json()
        .await
        .unwrap();
    let (method, body) = tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
        .await
        .expect("a callback within 30 s")
        .unwrap();
    assert_eq!(method, "PUT");
    assert_eq!(body["token"], queued["token"]);
    assert_eq!(body["status"]["id"], 3, "{body}");
    assert_eq!(
        STANDARD.decode(body["stdout"].as_str().unwrap()).unwrap(),
        b"called back\n"
    );
}

async fn a_user_with_a_long_queue_does_not_hold_every_slot_of_the_tenant(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    let student = p.kit.member(&admin, "student@acme.test", &[]).await;
    if !p.runs_programs(&admin).await {
        return;
    }
    let slots = p.state.sandbox.as_ref().unwrap().slots();
    // One user of the tenant queues four runs of two seconds per slot; another user's run
    // then takes the first slot to come free instead of waiting behind them all.
    let sleep = json!({"source_code": "import time; time.sleep(2)", "language_id": 71});
    for _ in 0..4 * slots {
        assert_eq!(p.submit(&admin, "", sleep.clone()).await.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let done: Value = p
        .submit(
            &student,
            "?wait=true",
            json!({"source_code": "print('mine')", "language_id": 71}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"]["id"], 3, "{done}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the student waited {:?} behind another user's queue",
        started.elapsed()
    );
}
