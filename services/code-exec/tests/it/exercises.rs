//! Exercises and attempts through the gateway, with the real auth service, on SQLite and
//! PostgreSQL: scores from per-case verdicts, hidden cases that nothing shows (not the
//! exercise, not the attempt, not the cases' submissions by token, not the events), who may
//! manage and read what, the last two cases finishing at once, and the events analytics reads.

use diesel::prelude::*;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_code_exec::schema::submissions;
use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, Store, problem};
use agora_testkit::Session;

use crate::{Platform, platform};

agora_shared::on_sqlite_and_postgres!(
    an_attempt_is_scored_case_by_case_and_hidden_cases_show_their_status_alone,
    exercises_are_managed_by_holders_of_the_permission_and_read_within_the_tenant,
    bad_exercises_and_attempts_are_refused_naming_the_field,
    finished_runs_are_published_without_their_texts,
    a_compile_error_fails_every_case_once,
    a_running_attempt_shows_no_case_before_all_are_done,
    an_exercise_deleted_under_a_running_attempt_takes_it_along,
    an_exercise_larger_than_the_queue_quota_is_refused_naming_it,
);

/// The secret a hidden case holds: its input and expected output.
const SECRET: &str = "hidden-input-7f3a";

/// Reverses its input, and also prints it to stderr (which a hidden case must not show).
const REVERSER: &str = "import sys\ns = input()\nprint(s[::-1])\nprint(s, file=sys.stderr)\n";

fn exercise() -> Value {
    json!({
        "title": "Reverse a line",
        "language_ids": [71],
        "cases": [
            {"stdin": "abc", "expected_output": "cba"},
            {"stdin": "agora", "expected_output": "aroga", "points": 2},
            {"stdin": SECRET, "expected_output": SECRET.chars().rev().collect::<String>(), "hidden": true, "points": 3},
        ],
        "cpu_time_limit": 2,
    })
}

impl Platform {
    /// `exercise()` under `id`, created.
    async fn create(&self, who: &Session, id: &str) {
        let resp = self
            .call(
                who,
                Method::PUT,
                &format!("/exercises/{id}"),
                Some(exercise()),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }

    /// The JSON body of a call.
    async fn value(&self, who: &Session, method: Method, path: &str, body: Option<Value>) -> Value {
        self.call(who, method, path, body)
            .await
            .json()
            .await
            .unwrap()
    }

    async fn call(
        &self,
        who: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let request = self
            .kit
            .authed(method, &format!("/api/v1/code-exec{path}"), who);
        match body {
            Some(body) => request.json(&body).call().await,
            None => request.call().await,
        }
    }

    async fn attempt(&self, who: &Session, exercise: &str, source: &str) -> Value {
        let resp = self
            .call(
                who,
                Method::POST,
                &format!("/exercises/{exercise}/attempts?wait=true"),
                Some(json!({"source_code": source, "language_id": 71})),
            )
            .await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["state"], "finished", "{body}");
        body
    }
}

async fn an_attempt_is_scored_case_by_case_and_hidden_cases_show_their_status_alone(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    let student = p.kit.member(&admin, "student@acme.test", &[]).await;
    if !p.runs_programs(&admin).await {
        return;
    }
    let resp = p
        .call(
            &admin,
            Method::PUT,
            "/exercises/reverse-1",
            Some(exercise()),
        )
        .await;
    assert_eq!(resp.status(), 201);

    // Right on every case: full marks.
    let right = p.attempt(&student, "reverse-1", REVERSER).await;
    assert_eq!(right["score"], 6, "{right}");
    assert_eq!(right["max_score"], 6);
    assert_eq!(right["passed"], true);
    assert_eq!(right["exercise_version"], 1);
    let cases = right["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    assert_eq!(
        cases[0]["status"],
        json!({"id": 3, "description": "Accepted"})
    );
    assert_eq!(cases[0]["stdout"], "cba\n");
    assert!(cases[0]["time"].is_number());
    // The hidden case shows its status and nothing the program could have written into.
    assert_eq!(cases[2]["status"]["id"], 3);
    let hidden = cases[2].as_object().unwrap();
    let mut keys: Vec<&str> = hidden.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["hidden", "index", "points", "status"], "{hidden:?}");
    assert!(!right.to_string().contains(SECRET), "{right}");

    // Wrong on the hidden case, which it tries to leak: stdout, stderr, its exit code.
    let leaky = "import sys\ns = input()\nprint(s[::-1] if len(s) < 6 else s)\nprint(s, file=sys.stderr)\nsys.exit(0 if len(s) < 6 else len(s))\n";
    let wrong = p.attempt(&student, "reverse-1", leaky).await;
    assert_eq!(wrong["score"], 3, "the visible cases pass: {wrong}");
    assert_eq!(wrong["passed"], false);
    let statuses: Vec<i64> = wrong["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [3, 3, 11]);
    assert_eq!(
        wrong["cases"][1]["stderr"], "agora\n",
        "a visible case shows stderr"
    );
    assert!(!wrong.to_string().contains(SECRET), "{wrong}");
    assert!(wrong["cases"][2].get("message").is_none());

    // The cases' submissions are gone once the attempt has its score: no token reads them.
    let left: i64 = p
        .state
        .db
        .read(|conn| Ok(submissions::table.count().get_result(conn)?))
        .await
        .unwrap();
    assert_eq!(left, 0);

    // A student sees their own attempts; another student sees none of them; the admin all.
    let other = p.kit.member(&admin, "other@acme.test", &[]).await;
    let id = wrong["id"].as_str().unwrap();
    let path = format!("/exercises/reverse-1/attempts/{id}");
    assert_eq!(
        p.call(&student, Method::GET, &path, None).await.status(),
        200
    );
    problem(p.call(&other, Method::GET, &path, None).await, 404).await;
    assert_eq!(p.call(&admin, Method::GET, &path, None).await.status(), 200);
    let mine: Value = p
        .value(&student, Method::GET, "/exercises/reverse-1/attempts", None)
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    assert_eq!(mine[0]["id"], wrong["id"], "newest first");
    let theirs: Value = p
        .value(&other, Method::GET, "/exercises/reverse-1/attempts", None)
        .await;
    assert_eq!(theirs, json!([]));
    let student_id = right["user_id"].as_str().unwrap();
    problem(
        p.call(
            &other,
            Method::GET,
            &format!("/exercises/reverse-1/attempts?user_id={student_id}"),
            None,
        )
        .await,
        403,
    )
    .await;
    let all: Value = p
        .value(&admin, Method::GET, "/exercises/reverse-1/attempts", None)
        .await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Another tenant sees neither the exercise nor the attempt.
    let beta = p.kit.tenant("Beta").await;
    problem(
        p.call(&beta, Method::GET, "/exercises/reverse-1", None)
            .await,
        404,
    )
    .await;
    problem(p.call(&beta, Method::GET, &path, None).await, 404).await;
    problem(
        p.call(
            &beta,
            Method::POST,
            "/exercises/reverse-1/attempts",
            Some(json!({"source_code": REVERSER, "language_id": 71})),
        )
        .await,
        404,
    )
    .await;
}

async fn exercises_are_managed_by_holders_of_the_permission_and_read_within_the_tenant(
    store: Store,
) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    let student = p.kit.member(&admin, "student@acme.test", &[]).await;
    let teacher = p
        .kit
        .member(&admin, "teacher@acme.test", &["code-exec:manage"])
        .await;
    // A student may not write exercises.
    problem(
        p.call(&student, Method::PUT, "/exercises/e1", Some(exercise()))
            .await,
        403,
    )
    .await;
    // A teacher may; a second PUT is a new version.
    let resp = p
        .call(&teacher, Method::PUT, "/exercises/e1", Some(exercise()))
        .await;
    assert_eq!(resp.status(), 201);
    let mut changed = exercise();
    changed["title"] = json!("Reverse a line, again");
    let resp = p
        .call(&teacher, Method::PUT, "/exercises/e1", Some(changed))
        .await;
    assert_eq!(resp.status(), 200);
    let v2: Value = resp.json().await.unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["max_score"], 6);
    // The student reads it without the hidden case's input and expected output.
    let seen: Value = p.value(&student, Method::GET, "/exercises/e1", None).await;
    assert_eq!(seen["title"], "Reverse a line, again");
    assert_eq!(seen["cases"][0]["stdin"], "abc");
    assert_eq!(seen["cases"][2]["hidden"], true);
    assert!(seen["cases"][2].get("stdin").is_none(), "{seen}");
    assert!(!seen.to_string().contains(SECRET), "{seen}");
    let listed: Value = p.value(&student, Method::GET, "/exercises", None).await;
    assert!(!listed.to_string().contains(SECRET), "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("cases").is_none(),
        "lists show no cases: {listed}"
    );
    assert_eq!(
        (&listed[0]["case_count"], &listed[0]["max_score"]),
        (&json!(3), &json!(6))
    );
    // The teacher sees the hidden case.
    let full: Value = p.value(&teacher, Method::GET, "/exercises/e1", None).await;
    assert_eq!(full["cases"][2]["stdin"], SECRET);
    // Another tenant's admin can neither read, replace nor delete it.
    let beta = p.kit.tenant("Beta").await;
    problem(
        p.call(&beta, Method::DELETE, "/exercises/e1", None).await,
        404,
    )
    .await;
    let resp = p
        .call(&beta, Method::PUT, "/exercises/e1", Some(exercise()))
        .await;
    assert_eq!(resp.status(), 201, "Beta's own e1");
    let still: Value = p.value(&student, Method::GET, "/exercises/e1", None).await;
    assert_eq!(still["version"], 2, "Acme's e1 is untouched");
    // Deleting: students may not; the teacher may, and then it is gone.
    problem(
        p.call(&student, Method::DELETE, "/exercises/e1", None)
            .await,
        403,
    )
    .await;
    let resp = p
        .call(&teacher, Method::DELETE, "/exercises/e1", None)
        .await;
    assert_eq!(resp.status(), 204);
    problem(
        p.call(&student, Method::GET, "/exercises/e1", None).await,
        404,
    )
    .await;
    problem(
        p.call(&teacher, Method::DELETE, "/exercises/e1", None)
            .await,
        404,
    )
    .await;
}

async fn bad_exercises_and_attempts_are_refused_naming_the_field(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    let bad_id = problem(
        p.call(&admin, Method::PUT, "/exercises/a%20b", Some(exercise()))
            .await,
        422,
    )
    .await;
    assert!(bad_id.to_string().contains("\"id\""), "{bad_id}");
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"stdin": i.to_string(), "expected_output": i.to_string()}))
        .collect();
    let body = problem(
        p.call(
            &admin,
            Method::PUT,
            "/exercises/e1",
            Some(json!({"title": " ", "language_ids": [71, 99999], "cases": many, "memory_limit": 0})),
        )
        .await,
        422,
    )
    .await;
    let text = body.to_string();
    for field in ["title", "language_ids[1]", "cases", "memory_limit"] {
        assert!(text.contains(&format!("\"{field}\"")), "{field}: {body}");
    }
    let body = problem(
        p.call(
            &admin,
            Method::PUT,
            "/exercises/e1",
            Some(json!({"title": "t", "cases": [{"expected_output": "1", "points": 0}], "secret": 1})),
        )
        .await,
        422,
    )
    .await;
    assert!(body.to_string().contains("secret"), "{body}");
    p.create(&admin, "e1").await;
    if !p.runs_programs(&admin).await {
        return;
    }
    // A language the exercise does not take, an unknown exercise, an empty program.
    let body = problem(
        p.call(
            &admin,
            Method::POST,
            "/exercises/e1/attempts",
            Some(json!({"source_code": "int main(){}", "language_id": 50})),
        )
        .await,
        422,
    )
    .await;
    assert!(body.to_string().contains("language_id"), "{body}");
    problem(
        p.call(
            &admin,
            Method::POST,
            "/exercises/nope/attempts",
            Some(json!({"source_code": "print(1)", "language_id": 71})),
        )
        .await,
        404,
    )
    .await;
    let body = problem(
        p.call(
            &admin,
            Method::POST,
            "/exercises/e1/attempts",
            Some(json!({"source_code": "", "language_id": 71})),
        )
        .await,
        422,
    )
    .await;
    assert!(body.to_string().contains("source_code"), "{body}");
}

async fn an_exercise_larger_than_the_queue_quota_is_refused_naming_it(store: Store) {
    let p = platform(store, "max_queued_per_tenant = 2\n").await;
    let admin = p.kit.tenant("Acme").await;
    p.create(&admin, "e3").await;
    if !p.runs_programs(&admin).await {
        return;
    }
    let body = problem(
        p.call(
            &admin,
            Method::POST,
            "/exercises/e3/attempts",
            Some(json!({"source_code": REVERSER, "language_id": 71})),
        )
        .await,
        422,
    )
    .await;
    assert!(body.to_string().contains("may queue 2"), "{body}");
}

async fn finished_runs_are_published_without_their_texts(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    if !p.runs_programs(&admin).await {
        return;
    }
    let topic = agora_code_exec::events::topic();
    assert_eq!(topic, "agora.code-exec.events");
    let done: Value = p.value(&admin,
            Method::POST,
            "/submissions?wait=true&fields=token,status",
            Some(json!({"source_code": "print('out-9c1e')", "language_id": 71, "stdin": "in-51d2", "expected_output": "out-9c1e"}))).await;
    assert_eq!(done["status"]["id"], 3);
    let finished = p
        .kit
        .events_of(&p.state.db, &topic, "agora.code_exec.submission.finished")
        .await;
    assert_eq!(finished.len(), 1);
    let event = &finished[0];
    assert_eq!(event.key, done["token"].as_str().unwrap());
    let message = ev::SubmissionFinished::decode(event.data.as_slice()).unwrap();
    assert_eq!(message.status_id, 3);
    assert_eq!(message.language_id, 71);
    assert!(message.language.starts_with("Python"), "{message:?}");
    assert_eq!(Some(&message.tenant_id), event.tenant_id.as_ref());
    for text in ["print(", "out-9c1e", "in-51d2"] {
        assert!(
            !String::from_utf8_lossy(&event.data).contains(text),
            "the event carries {text}"
        );
    }

    p.create(&admin, "rev").await;
    let attempt = p.attempt(&admin, "rev", REVERSER).await;
    let finished = p
        .kit
        .events_of(&p.state.db, &topic, "agora.code_exec.attempt.finished")
        .await;
    assert_eq!(
        finished.len(),
        1,
        "one event for the attempt, none per case"
    );
    let message = ev::AttemptFinished::decode(finished[0].data.as_slice()).unwrap();
    assert_eq!(message.attempt_id, attempt["id"].as_str().unwrap());
    assert_eq!(
        (message.score, message.max_score, message.passed),
        (6, 6, true)
    );
    assert_eq!(message.case_status_ids, [3, 3, 3]);
    assert_eq!(message.exercise_id, "rev");
    assert!(!String::from_utf8_lossy(&finished[0].data).contains(SECRET));
    // Eight attempts at once, their cases finishing side by side on every slot: each is
    // scored once, whichever of its cases finishes last.
    let many = futures::future::join_all((0..8).map(|_| p.attempt(&admin, "rev", REVERSER))).await;
    assert!(many.iter().all(|a| a["score"] == 6), "{many:?}");
    let finished = p
        .kit
        .events_of(&p.state.db, &topic, "agora.code_exec.attempt.finished")
        .await;
    assert_eq!(finished.len(), 9);
    // The cases were not published as submissions.
    let submissions = p
        .kit
        .events_of(&p.state.db, &topic, "agora.code_exec.submission.finished")
        .await;
    assert_eq!(submissions.len(), 1);
}

async fn a_compile_error_fails_every_case_once(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    if !p.runs_programs(&admin).await {
        return;
    }
    let mut body = exercise();
    body["language_ids"] = json!([]);
    assert_eq!(
        p.call(&admin, Method::PUT, "/exercises/any", Some(body))
            .await
            .status(),
        201
    );
    let resp = p
        .call(
            &admin,
            Method::POST,
            "/exercises/any/attempts?wait=true",
            Some(json!({"source_code": "int main( { return 0; }", "language_id": 50})),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let attempt: Value = resp.json().await.unwrap();
    assert_eq!(attempt["state"], "finished", "{attempt}");
    assert_eq!(attempt["score"], 0);
    assert!(
        attempt["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"]["id"] == 6),
        "{attempt}"
    );
    assert!(
        attempt["compile_output"]
            .as_str()
            .unwrap()
            .contains("error"),
        "the compiler's message once: {attempt}"
    );
}

/// A program that sleeps on the hidden case only, so that its verdict comes last.
const SLOW_ON_HIDDEN: &str =
    "import time\ns = input()\nif s.startswith('hidden'):\n    time.sleep(2)\nprint(s[::-1])\n";

async fn a_running_attempt_shows_no_case_before_all_are_done(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    if !p.runs_programs(&admin).await {
        return;
    }
    p.create(&admin, "rev").await;
    let queued: Value = p
        .value(
            &admin,
            Method::POST,
            "/exercises/rev/attempts",
            Some(json!({"source_code": SLOW_ON_HIDDEN, "language_id": 71})),
        )
        .await;
    let path = format!("/exercises/rev/attempts/{}", queued["id"].as_str().unwrap());
    // While the hidden case sleeps the visible ones are done, yet every case shows the
    // attempt's state alone: nothing tells when any case ended.
    let running = agora_testkit::eventually(
        std::time::Duration::from_secs(10),
        "the attempt running",
        || async {
            let view: Value = p.value(&admin, Method::GET, &path, None).await;
            if view["state"] == "running" {
                Ok(view)
            } else {
                Err(view.to_string())
            }
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let mid: Value = p.value(&admin, Method::GET, &path, None).await;
    for view in [&running, &mid] {
        if view["state"] == "finished" {
            continue;
        }
        for case in view["cases"].as_array().unwrap() {
            assert_eq!(case["status"]["id"], 2, "{view}");
            assert!(case.get("stdout").is_none(), "{view}");
        }
        assert_eq!(view["score"], Value::Null);
    }
    let done = agora_testkit::eventually(
        std::time::Duration::from_secs(30),
        "the attempt scored",
        || async {
            let view: Value = p.value(&admin, Method::GET, &path, None).await;
            if view["state"] == "finished" {
                Ok(view)
            } else {
                Err(view.to_string())
            }
        },
    )
    .await;
    assert_eq!(done["score"], 6, "{done}");
    // A list shows attempts without cases.
    let listed: Value = p
        .value(&admin, Method::GET, "/exercises/rev/attempts", None)
        .await;
    assert!(listed[0].get("cases").is_none(), "{listed}");
    assert_eq!(listed[0]["state"], "finished");
}

async fn an_exercise_deleted_under_a_running_attempt_takes_it_along(store: Store) {
    let p = platform(store, "").await;
    let admin = p.kit.tenant("Acme").await;
    if !p.runs_programs(&admin).await {
        return;
    }
    p.create(&admin, "rev").await;
    let queued: Value = p
        .value(
            &admin,
            Method::POST,
            "/exercises/rev/attempts",
            Some(json!({"source_code": SLOW_ON_HIDDEN, "language_id": 71})),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        p.call(&admin, Method::DELETE, "/exercises/rev", None)
            .await
            .status(),
        204
    );
    let path = format!("/exercises/rev/attempts/{}", queued["id"].as_str().unwrap());
    problem(p.call(&admin, Method::GET, &path, None).await, 404).await;
    // Once the running case ends, nothing of the attempt is left: no case row (the hidden
    // input with it) and no event of a deleted attempt.
    agora_testkit::eventually(
        std::time::Duration::from_secs(20),
        "the cases deleted",
        || async {
            let left: i64 = p
                .state
                .db
                .read(|conn| Ok(submissions::table.count().get_result(conn)?))
                .await
                .unwrap();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} case rows left"))
            }
        },
    )
    .await;
    let topic = agora_code_exec::events::topic();
    let scored = p
        .kit
        .events_of(&p.state.db, &topic, "agora.code_exec.attempt.finished")
        .await;
    assert!(scored.is_empty(), "{scored:?}");
    // The id may be used again; the new exercise has no attempts.
    p.create(&admin, "rev").await;
    let none: Value = p
        .value(&admin, Method::GET, "/exercises/rev/attempts", None)
        .await;
    assert_eq!(none, json!([]));
}
