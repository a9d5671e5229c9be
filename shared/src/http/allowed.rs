//! Which methods each path of a service has, read from its OpenAPI document, so that a request
//! with a method a path does not have is answered 405 with `Allow` (not 404).

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::AppError;

/// Paths every service serves besides its documented API (mounted by the kernel).
const KERNEL_PATHS: &[&str] = &["/health/live", "/health/ready", "/metrics", "/openapi.json"];

/// The order methods are listed in `Allow`.
const ORDER: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One documented path template and its methods.
#[derive(Debug)]
struct Route {
    /// `None` for a `{parameter}` segment.
    segments: Vec<Option<String>>,
    methods: Vec<String>,
}

/// The documented routes of a service.
#[derive(Debug, Default)]
pub struct AllowedMethods {
    routes: Vec<Route>,
}

impl AllowedMethods {
    /// From an OpenAPI document's `paths`, plus the kernel's own GET routes.
    pub fn from_openapi(doc: &serde_json::Value) -> Self {
        let mut routes: Vec<Route> = KERNEL_PATHS
            .iter()
            .map(|p| Route {
                segments: template(p),
                methods: vec!["GET".into()],
            })
            .collect();
        if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let methods: Vec<String> = item
                    .as_object()
                    .map(|ops| {
                        ops.keys()
                            .filter(|k| {
                                matches!(
                                    k.as_str(),
                                    "get"
                                        | "put"
                                        | "post"
                                        | "delete"
                                        | "patch"
                                        | "head"
                                        | "options"
                                )
                            })
                            .map(|k| k.to_ascii_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                routes.push(Route {
                    segments: template(path),
                    methods,
                });
            }
        }
        Self { routes }
    }

    /// The methods `path` has, when it is a documented path.
    pub fn methods(&self, path: &str) -> Option<Vec<&str>> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut found: Vec<&str> = Vec::new();
        let mut matched = false;
        for route in &self.routes {
            if matches(&route.segments, &parts) {
                matched = true;
                for m in &route.methods {
                    if !found.contains(&m.as_str()) {
                        found.push(m);
                    }
                }
            }
        }
        found.sort_by_key(|m| ORDER.iter().position(|o| o == m));
        matched.then_some(found)
    }
}

fn matches(segments: &[Option<String>], parts: &[&str]) -> bool {
    segments.len() == parts.len()
        && segments.iter().zip(parts).all(|(s, p)| match s {
            Some(literal) => literal == p,
            None => !p.is_empty(),
        })
}

fn template(path: &str) -> Vec<Option<String>> {
    path.split('/')
        .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
        .collect()
}

/// The fallback for requests no route took: 405 with `Allow` when the path exists with other
/// methods, 404 otherwise (problem+json either way).
pub async fn unrouted(
    req: HttpRequest,
    allowed: Option<web::Data<AllowedMethods>>,
) -> HttpResponse {
    let methods = allowed.as_ref().and_then(|a| a.methods(req.path()));
    match methods {
        Some(methods) if !methods.is_empty() && !methods.contains(&req.method().as_str()) => {
            let allow = methods.join(", ");
            let mut response = AppError::MethodNotAllowed(format!(
                "{} is not a method of {}; allowed: {allow}",
                req.method(),
                req.path()
            ))
            .error_response();
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            response
        }
        _ => super::not_found(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_list_their_methods() {
        let doc = serde_json::json!({"paths": {
            "/api/v1/tickets": {"get": {}, "post": {}},
            "/api/v1/tickets/{id}": {"get": {}, "patch": {}, "delete": {}, "parameters": []},
            "/api/v1/tickets/stats/summary": {"get": {}}
        }});
        let allowed = AllowedMethods::from_openapi(&doc);
        assert_eq!(
            allowed.methods("/api/v1/tickets"),
            Some(vec!["GET", "POST"])
        );
        assert_eq!(
            allowed.methods("/api/v1/tickets/abc"),
            Some(vec!["GET", "PATCH", "DELETE"])
        );
        // A literal segment also matches a parameter route of the same shape: both count.
        assert_eq!(
            allowed.methods("/api/v1/tickets/stats/summary"),
            Some(vec!["GET"])
        );
        assert_eq!(allowed.methods("/metrics"), Some(vec!["GET"]));
        assert_eq!(allowed.methods("/api/v1/nothing"), None);
        assert_eq!(
            allowed.methods("/api/v1/tickets/"),
            None,
            "an empty id is no id"
        );
    }
}
