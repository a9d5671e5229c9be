//! Embedding models: a static model file (Model2Vec's format) configured beside the built-in
//! lexical model; collections embedded by either; a collection's model changed, its chunks
//! embedded again in the background while searches go on, then swapped in; the same model
//! through the OpenAI-compatible `/embeddings`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_ai::local::static_model::write_word_model;
use agora_shared::testing::{Call, Store};

use crate::support::{Platform, Session, platform};

/// A model where `car`, `automobile` and `vehicle` mean the same, and `banana` and `fruit`
/// something else: no word is shared between synonyms, so only this model relates them.
fn synonyms_model() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agora-m2v-{}", uuid::Uuid::now_v7()));
    let (car, fruit, paper) = (
        vec![1.0, 0.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0, 0.0],
        vec![0.0, 0.0, 1.0, 0.0],
    );
    write_word_model(
        &dir,
        &[
            ("car", car.clone()),
            ("automobile", car.clone()),
            ("vehicle", car),
            ("banana", fruit.clone()),
            ("fruit", fruit),
            ("invoice", paper.clone()),
            ("bill", paper),
        ],
        true,
    )
    .expect("the model is written");
    dir
}

async fn collection_as(p: &Platform, who: &Session, c: &str) -> Value {
    p.authed(Method::GET, &format!("/api/v1/ai/collections/{c}"), who)
        .value()
        .await
}

async fn patch(p: &Platform, who: &Session, c: &str, body: Value) -> (u16, Value) {
    let resp = p
        .authed(Method::PATCH, &format!("/api/v1/ai/collections/{c}"), who)
        .json(&body)
        .call()
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The collection once no change of model is under way (within 30 s).
async fn settled(p: &Platform, who: &Session, c: &str) -> Value {
    agora_testkit::eventually(
        Duration::from_secs(30),
        "the change of model is done",
        || async {
            let body = collection_as(p, who, c).await;
            match body["reembedding"].is_null() {
                true => Ok(body),
                false => Err(body.to_string()),
            }
        },
    )
    .await
}

async fn semantic(p: &Platform, who: &Session, collections: &[&str], query: &str) -> Value {
    let (status, body) = p
        .post_as(
            who,
            "/api/v1/ai/search",
            json!({"collection_ids": collections, "query": query, "mode": "semantic"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn titles(found: &Value) -> Vec<String> {
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn static_models_and_a_change_of_model(store: Store) {
    let dir = synonyms_model();
    let settings = format!(
        "embedding_models = {{ synonyms = {{ path = {:?} }} }}",
        dir.display().to_string()
    );
    let p = platform(store, &settings).await;
    let admin = p.tenant("Acme").await;

    // A model the service does not have is refused, naming the field.
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/collections",
            json!({"name": "X", "embedding_model": "gpt-embed-9"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(crate::fields(&body), ["embedding_model"], "{body}");

    // A collection by the default (lexical) model: the document naming "car" is first.
    let c = p.collection(&admin, "Fleet").await;
    let fleet = collection_as(&p, &admin, &c).await;
    assert_eq!(fleet["embedding_model"], "lexical-hash-1024");
    assert!(fleet["reembedding"].is_null(), "{fleet}");
    p.text(
        &admin,
        &c,
        "Tank",
        "The automobile is returned with a full tank.",
    )
    .await;
    p.text(&admin, &c, "Lunch", "A car banana.").await;
    let found = semantic(&p, &admin, &[&c], "car").await;
    assert_eq!(titles(&found)[0], "Lunch", "{found}");
    assert_eq!(found["embedding_models"], json!(["lexical-hash-1024"]));

    // Another tenant cannot change it.
    let other = p.tenant("Globex").await;
    let (status, _) = patch(&p, &other, &c, json!({"embedding_model": "synonyms"})).await;
    assert_eq!(status, 404);
    let (status, body) = patch(&p, &admin, &c, json!({"embedding_model": "nope"})).await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["embedding_model".to_owned()])
    );

    // The change is recorded at once and done in the background: until it is, the current
    // model still answers.
    let (status, body) = patch(&p, &admin, &c, json!({"embedding_model": "synonyms"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["embedding_model"], "lexical-hash-1024", "{body}");
    assert_eq!(body["reembedding"]["model"], "synonyms", "{body}");
    assert_eq!(body["reembedding"]["total"], 2, "{body}");
    // A document given meanwhile is embedded by both models.
    p.text(&admin, &c, "Rental", "Vehicle rental desk.").await;
    let fleet = settled(&p, &admin, &c).await;
    assert_eq!(fleet["embedding_model"], "synonyms", "{fleet}");

    // Now synonyms are related: "car" finds the automobile and the vehicle exactly.
    let found = semantic(&p, &admin, &[&c], "car").await;
    assert_eq!(found["embedding_models"], json!(["synonyms"]));
    let items = found["items"].as_array().unwrap();
    let exact: Vec<&str> = items
        .iter()
        .filter(|i| (i["score"].as_f64().unwrap() - 1.0).abs() < 1e-3)
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(exact.len(), 2, "{found}");
    assert!(
        exact.contains(&"Tank") && exact.contains(&"Rental"),
        "{found}"
    );
    assert_eq!(titles(&found)[2], "Lunch", "{found}");
    // A word the model does not know finds nothing semantically (no vector to compare).
    assert!(titles(&semantic(&p, &admin, &[&c], "zzz").await).is_empty());

    // Collections of two models searched at once: each query embedded by each model.
    let lexical = p.collection(&admin, "Lexical").await;
    p.text(&admin, &lexical, "Bills", "Every invoice is paid monthly.")
        .await;
    let found = semantic(&p, &admin, &[&c, &lexical], "invoice car").await;
    assert_eq!(
        found["embedding_models"],
        json!(["synonyms", "lexical-hash-1024"])
    );
    let got = titles(&found);
    assert!(
        got.contains(&"Bills".to_owned()) && got.contains(&"Tank".to_owned()),
        "{found}"
    );

    // Back to the lexical model: the same way back, and the old ranking returns.
    let (status, body) = patch(
        &p,
        &admin,
        &c,
        json!({"embedding_model": "lexical-hash-1024"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let fleet = settled(&p, &admin, &c).await;
    assert_eq!(fleet["embedding_model"], "lexical-hash-1024", "{fleet}");
    assert_eq!(
        titles(&semantic(&p, &admin, &[&c], "car").await)[0],
        "Lunch"
    );

    // The model in use named again changes nothing; a change stopped (the current model
    // named again) leaves the collection as it was, whether or not the workers got to it.
    let (status, body) = patch(
        &p,
        &admin,
        &c,
        json!({"embedding_model": "lexical-hash-1024"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["reembedding"].is_null(), "{body}");
    let (status, _) = patch(&p, &admin, &c, json!({"embedding_model": "synonyms"})).await;
    assert_eq!(status, 200);
    let (status, body) = patch(
        &p,
        &admin,
        &c,
        json!({"embedding_model": "lexical-hash-1024"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let fleet = settled(&p, &admin, &c).await;
    assert_eq!(fleet["embedding_model"], "lexical-hash-1024", "{fleet}");
    assert_eq!(
        titles(&semantic(&p, &admin, &[&c], "car").await)[0],
        "Lunch"
    );

    // An empty collection changes model at once.
    let empty = p.collection(&admin, "Empty").await;
    let (status, body) = patch(&p, &admin, &empty, json!({"embedding_model": "synonyms"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["embedding_model"], "synonyms", "{body}");
    assert!(body["reembedding"].is_null(), "{body}");
    // A collection may be made with it too.
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/collections",
            json!({"name": "Synonyms", "embedding_model": "synonyms"}),
        )
        .await;
    assert_eq!(
        (status, &body["embedding_model"]),
        (201, &json!("synonyms"))
    );

    // The OpenAI-compatible API serves it: listed, and its vectors are the model's.
    let models = p
        .authed(Method::GET, "/api/v1/ai/openai/v1/models", &admin)
        .value()
        .await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"synonyms") && ids.contains(&"lexical-hash-1024"),
        "{models}"
    );
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/openai/v1/embeddings",
            json!({"model": "synonyms", "input": ["Automobile", "banana fruit"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "synonyms");
    assert_eq!(body["data"][0]["embedding"], json!([1.0, 0.0, 0.0, 0.0]));
    assert_eq!(body["data"][1]["embedding"], json!([0.0, 1.0, 0.0, 0.0]));
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/openai/v1/embeddings",
            json!({"model": "synonyms", "input": "car", "dimensions": 5}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    // It writes no chat answers.
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/openai/v1/chat/completions",
            json!({"model": "synonyms", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    std::fs::remove_dir_all(&dir).ok();
}

crate::on_every_store!(static_models_and_a_change_of_model);
