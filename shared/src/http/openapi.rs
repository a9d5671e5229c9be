//! What every service's OpenAPI document shares.

use utoipa::{
    Modify,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

/// Declares the `bearer` security scheme (an access token or an API key) that routes refer to.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Makes a service's document say what the kernel and the gateway do on every route: each
/// operation gets the error answers it can give (problem+json with the `Problem` schema):
/// 400 (malformed body, path or query) and 422 (failed validation) where it takes input, 404
/// where its path names a resource, 401/403 where it needs a credential, 413 where it takes a
/// body, 429 (the gateway's rate limits) and 503 (store or peer unavailable) everywhere.
/// Responses an operation already documents keep their description.
pub fn complete(mut doc: serde_json::Value) -> serde_json::Value {
    use serde_json::{Value, json};
    let problem_ref = json!({"$ref": "#/components/schemas/Problem"});
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let shared_params = item
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            for (method, op) in item.iter_mut() {
                if !matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
                ) {
                    continue;
                }
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let has_params = shared_params
                    || op
                        .get("parameters")
                        .and_then(Value::as_array)
                        .is_some_and(|p| !p.is_empty());
                let has_body = op.contains_key("requestBody");
                let secured = op
                    .get("security")
                    .and_then(Value::as_array)
                    .is_some_and(|s| {
                        s.iter()
                            .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                    });
                let mut answers: Vec<(&str, &str)> = Vec::new();
                if has_params || has_body {
                    answers.push(("400", "malformed request (body, path or query)"));
                    answers.push(("422", "validation failed; `errors` names each field"));
                }
                if path.contains('{') {
                    answers.push(("404", "not found (also another tenant's resource)"));
                }
                if secured {
                    answers.push(("401", "missing, invalid, expired or revoked credential"));
                    answers.push((
                        "403",
                        "the credential's role or permissions do not allow it",
                    ));
                }
                if has_body {
                    answers.push(("413", "body larger than the limit"));
                }
                answers.push(("429", "rate limit exceeded; see Retry-After"));
                answers.push(("503", "the store or a peer service is unavailable; retry"));
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                let Some(responses) = responses else {
                    continue;
                };
                for (status, description) in answers {
                    responses
                        .entry(status)
                        .or_insert_with(|| json!({"description": description}));
                }
                for (status, response) in responses.iter_mut() {
                    let is_error = status.starts_with('4') || status.starts_with('5');
                    if let Some(response) = response.as_object_mut()
                        && is_error
                        && !response.contains_key("content")
                    {
                        response.insert(
                            "content".into(),
                            json!({"application/problem+json": {"schema": problem_ref}}),
                        );
                    }
                }
            }
        }
    }
    if let Some(root) = doc.as_object_mut() {
        let components = root.entry("components").or_insert_with(|| json!({}));
        if let Some(components) = components.as_object_mut() {
            let schemas = components.entry("schemas").or_insert_with(|| json!({}));
            if let Some(schemas) = schemas.as_object_mut() {
                schemas.insert("Problem".into(), problem_schema());
            }
        }
    }
    doc
}

/// RFC 9457 problem details as Agora sends them.
fn problem_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "code": {"type": "string", "description": "stable machine-readable code, e.g. `tickets.stale_version`"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn operations_document_the_errors_they_can_give() {
        let doc = json!({"paths": {
            "/api/v1/things/{id}": {
                "get": {"security": [{"bearer": []}], "responses": {"200": {"description": "ok"}, "404": {"description": "no such thing"}}},
                "put": {"requestBody": {}, "responses": {"200": {"description": "ok"}}}
            },
            "/health/live": {"get": {"responses": {"200": {"description": "ok"}}}}
        }});
        let doc = super::complete(doc);
        let get = &doc["paths"]["/api/v1/things/{id}"]["get"]["responses"];
        for status in ["200", "401", "403", "404", "429", "503"] {
            assert!(get.get(status).is_some(), "GET lacks {status}");
        }
        assert_eq!(get["404"]["description"], "no such thing", "kept");
        assert_eq!(
            get["404"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
        let put = &doc["paths"]["/api/v1/things/{id}"]["put"]["responses"];
        for status in ["400", "404", "413", "422"] {
            assert!(put.get(status).is_some(), "PUT lacks {status}");
        }
        assert!(
            put.get("401").is_none(),
            "an open operation never answers 401"
        );
        let live = &doc["paths"]["/health/live"]["get"]["responses"];
        assert!(live.get("400").is_none() && live.get("429").is_some());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
