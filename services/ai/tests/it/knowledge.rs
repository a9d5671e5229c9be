//! Collections and documents: every format, the processing states, reprocessing, deleting,
//! rights and the limits an upload meets.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store, problem};

use crate::{
    files,
    support::{Session, platform},
};

async fn chunk_texts(
    p: &crate::support::Platform,
    who: &Session,
    c: &str,
    id: &str,
) -> Vec<String> {
    let doc = p
        .authed(
            Method::GET,
            &format!("/api/v1/ai/collections/{c}/documents/{id}"),
            who,
        )
        .value()
        .await;
    doc["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn documents_in_every_format(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let c = p.collection(&admin, "Handbook").await;
    // The same name twice in a tenant is refused.
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/collections",
            json!({"name": "Handbook"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ai.collection_exists"))
    );

    // Text (Markdown): processed in the request, chunked with its headings.
    let doc = p
        .text(
            &admin,
            &c,
            "Returns",
            "# Returns\n\n## Refunds\n\nRefunds are paid within five business days.\n\n## Exchanges\n\nExchanges are free in stores.",
        )
        .await;
    assert_eq!(doc["chunk_count"], 2, "{doc}");
    assert_eq!(doc["format"], "markdown");
    let full = p
        .authed(
            Method::GET,
            &format!(
                "/api/v1/ai/collections/{c}/documents/{}",
                doc["id"].as_str().unwrap()
            ),
            &admin,
        )
        .value()
        .await;
    assert_eq!(full["chunks"][0]["heading"], "Returns > Refunds");
    assert_eq!(full["chunks"][1]["text"], "Exchanges are free in stores.");

    // HTML, uploaded: its markup goes, its headings stay.
    let html = "<html><head><style>p{color:red}</style></head><body><h1>Warranty</h1>\
        <p>The warranty lasts <b>two years</b> from delivery.</p><script>steal()</script></body></html>";
    let (status, doc) = p
        .upload(&admin, &c, "warranty.html", "text/html", html.into())
        .await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (201, Some("COMPLETED")),
        "{doc}"
    );
    let texts = chunk_texts(&p, &admin, &c, doc["id"].as_str().unwrap()).await;
    assert_eq!(texts, ["The warranty lasts two years from delivery."]);

    // PDF and DOCX: 202, PROCESSING, then COMPLETED with their text.
    let pdf = files::pdf(&[
        "Delivery takes three days in Europe.",
        "Customs fees are paid by the buyer.",
    ]);
    let (status, doc) = p
        .upload(&admin, &c, "delivery.pdf", "application/pdf", pdf)
        .await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (202, Some("PROCESSING")),
        "{doc}"
    );
    let done = p.processed(&admin, &c, doc["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let text = chunk_texts(&p, &admin, &c, doc["id"].as_str().unwrap())
        .await
        .join(" ");
    let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeezed.contains("Delivery takes three days in Europe."),
        "{text:?}"
    );
    assert!(
        squeezed.contains("Customs fees are paid by the buyer."),
        "{text:?}"
    );

    let docx = files::docx(&[
        (Some("Heading1"), "Support hours"),
        (None, "Support answers from 8am to 6pm, Monday to Friday."),
        (Some("Heading2"), "Holidays"),
        (None, "Support is closed on public holidays & Sundays."),
    ]);
    let docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let (status, doc) = p.upload(&admin, &c, "support.docx", docx_type, docx).await;
    assert_eq!(status, 202, "{doc}");
    let docx_id = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(p.processed(&admin, &c, &docx_id).await["chunk_count"], 2);
    let full = p
        .authed(
            Method::GET,
            &format!("/api/v1/ai/collections/{c}/documents/{docx_id}"),
            &admin,
        )
        .value()
        .await;
    assert_eq!(
        full["chunks"][1]["heading"], "Support hours > Holidays",
        "{full}"
    );
    assert_eq!(
        full["chunks"][1]["text"],
        "Support is closed on public holidays & Sundays."
    );

    // Every format is searchable.
    for (query, expected) in [
        ("how long does the warranty last", "two years"),
        ("who pays customs fees", "Customs fees"),
        ("is support open on sundays", "public holidays"),
        ("when are refunds paid", "five business days"),
    ] {
        let items = p.search(&admin, &[&c], query, "hybrid").await;
        assert!(
            items[0]["text"].as_str().unwrap().contains(expected),
            "{query}: {items:?}"
        );
    }

    // A file that is not what it says: ERROR, with the reason.
    let (status, broken) = p
        .upload(
            &admin,
            &c,
            "broken.pdf",
            "application/pdf",
            b"%PDF-1.4 not really".to_vec(),
        )
        .await;
    assert_eq!(status, 202);
    let broken = p
        .processed(&admin, &c, broken["id"].as_str().unwrap())
        .await;
    assert_eq!(broken["status"], "ERROR", "{broken}");
    assert!(
        broken["error"].as_str().unwrap().contains("PDF"),
        "{broken}"
    );
    let (status, empty) = p
        .upload(&admin, &c, "empty.docx", docx_type, files::docx(&[]))
        .await;
    assert_eq!(status, 202);
    let empty = p.processed(&admin, &c, empty["id"].as_str().unwrap()).await;
    assert_eq!(
        empty["error"], "no text found in the docx document",
        "{empty}"
    );

    // Reprocessing: 202, then COMPLETED again with the same chunks.
    let reprocess = format!("/api/v1/ai/collections/{c}/documents/{docx_id}/reprocess");
    let (status, again) = p.post_as(&admin, &reprocess, json!({})).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (202, Some("PROCESSING"))
    );
    assert_eq!(p.processed(&admin, &c, &docx_id).await["chunk_count"], 2);

    // Listing, then deleting a document: its chunks leave search.
    let list = p
        .authed(
            Method::GET,
            &format!("/api/v1/ai/collections/{c}/documents?limit=2"),
            &admin,
        )
        .value()
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["next_cursor"].is_string());
    let collection = p
        .authed(Method::GET, &format!("/api/v1/ai/collections/{c}"), &admin)
        .value()
        .await;
    assert_eq!(collection["document_count"], 6, "{collection}");
    assert_eq!(collection["embedding_model"], "lexical-hash-1024");
    let deleted = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/ai/collections/{c}/documents/{docx_id}"),
            &admin,
        )
        .call()
        .await;
    assert_eq!(deleted.status(), 204);
    let items = p
        .search(&admin, &[&c], "support public holidays sundays", "keyword")
        .await;
    assert!(
        items.iter().all(|i| i["document_id"] != docx_id.as_str()),
        "{items:?}"
    );

    // Deleting the collection takes everything with it.
    let deleted = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/ai/collections/{c}"),
            &admin,
        )
        .call()
        .await;
    assert_eq!(deleted.status(), 204);
    let (status, _) = p
        .post_as(
            &admin,
            "/api/v1/ai/search",
            json!({"collection_ids": [c], "query": "refunds"}),
        )
        .await;
    assert_eq!(status, 404);
}

async fn uploads_meet_their_limits(store: Store) {
    let p = platform(store, "max_document_bytes = 4096\ninline_bytes = 4096\nmax_documents_per_collection = 3\nmax_collections_per_tenant = 2").await;
    let admin = p.tenant("Acme").await;
    let c = p.collection(&admin, "Small").await;
    let path = format!("/api/v1/ai/collections/{c}/documents");

    // Neither JSON nor multipart; a file of a format not taken; too large; missing fields.
    let resp = p
        .authed(Method::POST, &path, &admin)
        .header("content-type", "text/plain")
        .body("hello")
        .call()
        .await;
    problem(resp, 415).await;
    let (status, body) = p
        .upload(
            &admin,
            &c,
            "tool.exe",
            "application/octet-stream",
            b"MZ".to_vec(),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("PDF"), "{body}");
    let (status, _) = p
        .upload(&admin, &c, "big.txt", "text/plain", vec![b'a'; 5000])
        .await;
    assert_eq!(status, 413);
    let (status, body) = p
        .post_as(
            &admin,
            &path,
            json!({"title": "x", "text": "y".repeat(5000)}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = p
        .post_as(&admin, &path, json!({"title": "  ", "text": "y"}))
        .await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["title".to_owned()])
    );
    let (status, body) = p
        .post_as(
            &admin,
            &path,
            json!({"title": "t", "text": "y", "metadata": [1]}),
        )
        .await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["metadata".to_owned()])
    );
    let resp = p
        .authed(Method::POST, &path, &admin)
        .header("content-type", "application/json")
        .body("{not json")
        .call()
        .await;
    problem(resp, 400).await;
    let form = reqwest::multipart::Form::new().text("title", "no file");
    let resp = p
        .authed(Method::POST, &path, &admin)
        .multipart(form)
        .call()
        .await;
    let body = problem(resp, 422).await;
    assert_eq!(crate::fields(&body), ["file"]);
    // Not UTF-8: the document is kept with the reason.
    let (status, doc) = p
        .upload(
            &admin,
            &c,
            "latin1.txt",
            "text/plain",
            vec![0x63, 0x61, 0x66, 0xe9],
        )
        .await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (201, Some("ERROR")),
        "{doc}"
    );
    assert!(doc["error"].as_str().unwrap().contains("UTF-8"), "{doc}");

    // Caps: documents per collection, collections per tenant.
    p.text(&admin, &c, "a", "one").await;
    p.text(&admin, &c, "b", "two").await;
    let (status, body) = p
        .post_as(&admin, &path, json!({"title": "c", "text": "three"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ai.too_many_documents"))
    );
    p.collection(&admin, "Second").await;
    let (status, body) = p
        .post_as(&admin, "/api/v1/ai/collections", json!({"name": "Third"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ai.too_many_collections"))
    );
}

async fn rights(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let reader = p.member(&admin, "reader@acme.test", &[]).await;
    let editor = p.member(&admin, "editor@acme.test", &["ai:manage"]).await;
    let c = p.collection(&admin, "Handbook").await;
    p.text(
        &admin,
        &c,
        "Returns",
        "Refunds are paid within five business days.",
    )
    .await;
    // A member without ai:manage reads and asks, and changes nothing.
    let (status, _) = p
        .post_as(&reader, "/api/v1/ai/collections", json!({"name": "Mine"}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = p
        .post_as(
            &reader,
            &format!("/api/v1/ai/collections/{c}/documents"),
            json!({"title": "x", "text": "y"}),
        )
        .await;
    assert_eq!(status, 403);
    let resp = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/ai/collections/{c}"),
            &reader,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(p.search(&reader, &[&c], "refunds", "hybrid").await.len(), 1);
    let list = p
        .authed(Method::GET, "/api/v1/ai/collections", &reader)
        .value()
        .await;
    assert_eq!(list["items"][0]["document_count"], 1, "{list}");
    // ai:manage is enough to manage.
    let resp = p
        .authed(
            Method::PATCH,
            &format!("/api/v1/ai/collections/{c}"),
            &editor,
        )
        .json(&json!({"name": "Policies", "description": null}))
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "Policies");
    p.text(&editor, &c, "Hours", "Open 9 to 5.").await;
}

/// PUTs `body` as a document's content; returns the status and the JSON answer.
async fn put_content(
    p: &crate::support::Platform,
    who: &Session,
    url: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = p
        .authed(Method::PUT, url, who)
        .header("content-type", "application/octet-stream")
        .body(body)
        .call()
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn uploads_in_two_steps(store: Store) {
    let p = platform(store, "max_document_bytes = 65536\ninline_bytes = 4096").await;
    let admin = p.tenant("Acme").await;
    let c = p.collection(&admin, "Manuals").await;
    let path = format!("/api/v1/ai/collections/{c}/documents");

    // Announced without its content: UPLOADING, with where to put it.
    let (status, doc) = p
        .post_as(
            &admin,
            &path,
            json!({"title": "Guide", "format": "docx", "metadata": {"lang": "en"}}),
        )
        .await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (201, Some("UPLOADING")),
        "{doc}"
    );
    let id = doc["id"].as_str().unwrap().to_owned();
    let url = format!("/api/v1/ai/collections/{c}/documents/{id}/content");
    assert_eq!(doc["upload_url"], url.as_str());
    assert_eq!(doc["bytes"], 0);
    // Announcing needs the format, and one of those taken.
    let (status, body) = p.post_as(&admin, &path, json!({"title": "x"})).await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["format".to_owned()])
    );
    let (status, body) = p
        .post_as(&admin, &path, json!({"title": "x", "format": "exe"}))
        .await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["format".to_owned()])
    );
    // Nothing to process yet.
    let resp = p
        .authed(Method::POST, &format!("{path}/{id}/reprocess"), &admin)
        .call()
        .await;
    let body = problem(resp, 409).await;
    assert_eq!(body["code"], "ai.document_uploading");

    // Only its tenant's managers may give the content.
    let other = p.tenant("Globex").await;
    let manual = files::docx(&[
        (Some("Heading1"), "Setup"),
        (None, "Plug the router into the fibre socket."),
    ]);
    assert_eq!(put_content(&p, &other, &url, manual.clone()).await.0, 404);
    let reader = p.member(&admin, "reader@acme.test", &[]).await;
    assert_eq!(put_content(&p, &reader, &url, manual.clone()).await.0, 403);
    let (status, body) = put_content(&p, &admin, &url, Vec::new()).await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["body".to_owned()])
    );
    let (status, _) = put_content(&p, &admin, &url, vec![b'a'; 70_000]).await;
    assert_eq!(status, 413);

    // The same content sent 20 times at once: one upload takes it, the others are told.
    let sends = (0..20).map(|_| put_content(&p, &admin, &url, manual.clone()));
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let doc = p.processed(&admin, &c, &id).await;
    assert_eq!(doc["status"], "COMPLETED", "{doc}");
    assert!(doc["upload_url"].is_null(), "{doc}");
    assert_eq!(doc["bytes"], manual.len());
    let found = p.search(&admin, &[&c], "fibre socket", "hybrid").await;
    assert_eq!(found[0]["document_id"], id.as_str());
    let (status, body) = put_content(&p, &admin, &url, manual).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ai.document_uploaded"))
    );

    // A small text document is processed in the request that gives it.
    let (_, doc) = p
        .post_as(
            &admin,
            &path,
            json!({"title": "Notes", "format": "markdown"}),
        )
        .await;
    let (status, doc) = put_content(
        &p,
        &admin,
        doc["upload_url"].as_str().unwrap(),
        b"# Notes\n\nThe warranty lasts two years.".to_vec(),
    )
    .await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (201, Some("COMPLETED")),
        "{doc}"
    );

    let list = p
        .authed(Method::GET, &format!("/api/v1/ai/collections/{c}"), &admin)
        .value()
        .await;
    assert_eq!(list["document_count"], 2, "{list}");
}

async fn uploads_that_never_come_expire(store: Store) {
    let p = platform(store, "upload_expiry_secs = 1").await;
    let admin = p.tenant("Acme").await;
    let c = p.collection(&admin, "Manuals").await;
    let path = format!("/api/v1/ai/collections/{c}/documents");
    p.text(&admin, &c, "Kept", "This one came whole.").await;
    // Content that never comes: the document is deleted once it is past its expiry.
    let (_, doc) = p
        .post_as(&admin, &path, json!({"title": "Never", "format": "pdf"}))
        .await;
    let gone = format!("{path}/{}", doc["id"].as_str().unwrap());
    agora_testkit::eventually(
        std::time::Duration::from_secs(30),
        "the upload expires",
        || async {
            let resp = p.authed(Method::GET, &gone, &admin).call().await;
            match resp.status().as_u16() {
                404 => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    let list = p
        .authed(Method::GET, &format!("/api/v1/ai/collections/{c}"), &admin)
        .value()
        .await;
    assert_eq!(list["document_count"], 1, "{list}");
}

crate::on_every_store!(
    documents_in_every_format,
    uploads_meet_their_limits,
    uploads_in_two_steps,
    uploads_that_never_come_expire,
    rights
);
