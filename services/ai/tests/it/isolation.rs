//! Tenants kept apart on every route: another tenant's collection is not found (not
//! forbidden: its existence is not told), its chunks never come back, even for text both
//! tenants hold word for word.

use reqwest::Method;
use serde_json::json;

use agora_shared::testing::{Call, Store};

use crate::support::platform;

async fn tenants_never_see_each_other(store: Store) {
    let p = platform(store, "").await;
    let acme = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;
    let a = p.collection(&acme, "Secrets").await;
    let doc = p
        .text(
            &acme,
            &a,
            "Plan",
            "The launch code for project Falcon is 7741.",
        )
        .await;
    let doc_id = doc["id"].as_str().unwrap();
    // The same name is free in another tenant, and the same text is another document.
    let g = p.collection(&globex, "Secrets").await;
    p.text(
        &globex,
        &g,
        "Plan",
        "The launch code for project Falcon is 7741.",
    )
    .await;

    let base = format!("/api/v1/ai/collections/{a}");
    for (method, path) in [
        (Method::GET, base.clone()),
        (Method::PATCH, base.clone()),
        (Method::DELETE, base.clone()),
        (Method::GET, format!("{base}/documents")),
        (Method::POST, format!("{base}/documents")),
        (Method::GET, format!("{base}/documents/{doc_id}")),
        (Method::DELETE, format!("{base}/documents/{doc_id}")),
        (Method::POST, format!("{base}/documents/{doc_id}/reprocess")),
        // Globex's own collection with Acme's document.
        (
            Method::GET,
            format!("/api/v1/ai/collections/{g}/documents/{doc_id}"),
        ),
    ] {
        let mut req = p.authed(method.clone(), &path, &globex);
        if method == Method::PATCH {
            req = req.json(&json!({"name": "x"}));
        } else if path.ends_with("/documents") {
            req = req.json(&json!({"title": "x", "text": "x"}));
        }
        let resp = req.call().await;
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
    for (path, body) in [
        (
            "/api/v1/ai/search",
            json!({"collection_ids": [a], "query": "launch code"}),
        ),
        (
            "/api/v1/ai/search",
            json!({"collection_ids": [g, a], "query": "launch code"}),
        ),
        (
            "/api/v1/ai/answer",
            json!({"collection_ids": [a], "question": "What is the launch code?"}),
        ),
        (
            "/api/v1/ai/fact-check",
            json!({"collection_ids": [a], "claims": ["The launch code is 7741."]}),
        ),
        (
            "/api/v1/ai/openai/v1/chat/completions",
            json!({"model": "local", "collection_ids": [a], "messages": [{"role": "user", "content": "launch code?"}]}),
        ),
    ] {
        let (status, body) = p.post_as(&globex, path, body).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    // Globex's searches and chats find Globex's copy only.
    for mode in ["hybrid", "semantic", "keyword"] {
        let items = p
            .search(&globex, &[&g], "launch code Falcon 7741", mode)
            .await;
        assert_eq!(items.len(), 1, "{mode}");
        assert_eq!(items[0]["collection_id"], g.as_str());
        assert_ne!(items[0]["document_id"], doc_id);
    }
    let (_, chat) = p
        .post_as(
            &globex,
            "/api/v1/ai/openai/v1/chat/completions",
            json!({"model": "local", "messages": [{"role": "user", "content": "What is the launch code for project Falcon?"}]}),
        )
        .await;
    assert_eq!(chat["citations"].as_array().unwrap().len(), 1, "{chat}");
    assert_ne!(chat["citations"][0]["document_id"], doc_id);
    // Acme's collection list holds Acme's only.
    let list = p
        .authed(Method::GET, "/api/v1/ai/collections", &globex)
        .value()
        .await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [g.as_str()]);
    // And Acme's data is still whole after Globex's attempts.
    let items = p.search(&acme, &[&a], "launch code", "keyword").await;
    assert_eq!(items[0]["document_id"], doc_id);
}

crate::on_every_store!(tenants_never_see_each_other);
