//! `ValidJson<T>`: a JSON body that is size-limited, strictly parsed (unknown fields rejected by
//! the type's `deny_unknown_fields`) and validated. Malformed JSON is a 400; a body that parses
//! but is wrong is a 422 naming each field.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

use crate::error::{AppError, FieldError};

/// Largest JSON body accepted unless a route sets its own [`JsonLimit`].
pub const DEFAULT_JSON_LIMIT: usize = 1024 * 1024;

/// Per-app or per-scope override of the JSON body limit, as app data.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A parsed and validated JSON request body.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + Validate + 'static,
{
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<JsonLimit>()
            .map_or(DEFAULT_JSON_LIMIT, |l| l.0);
        let content_type_ok = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            });
        let declared = content_length(req);
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(AppError::BadRequest(
                    "request body must be JSON (Content-Type: application/json)".into(),
                )
                .into());
            }
            let body = read_body(&mut payload, declared, limit, || too_large(limit)).await?;
            let value = parse::<T>(&body)?;
            value
                .validate()
                .map_err(|e| AppError::Validation(field_errors(&e)))?;
            Ok(ValidJson(value))
        })
    }
}

/// The length a request says its body has, if it says one.
pub fn content_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
}

/// Reads a request body of at most `limit` bytes. One that says it is longer (`declared`,
/// its Content-Length) is refused before anything is read, and one that turns out longer as
/// soon as it passes the limit; `too_large` is the error either way.
pub async fn read_body<S>(
    payload: &mut S,
    declared: Option<usize>,
    limit: usize,
    too_large: impl Fn() -> AppError,
) -> Result<web::BytesMut, AppError>
where
    S: futures::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin,
{
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(limit: usize) -> AppError {
    AppError::PayloadTooLarge(format!("request body exceeds {limit} bytes"))
}

/// Parses `body`, classifying failures as 400 (not JSON) or 422 (wrong shape, with the field).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    if body.is_empty() {
        return Err(AppError::BadRequest(
            "request body is empty; a JSON object is expected".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                // The path of a missing field is its parent's; name the field itself.
                let field = if message.starts_with("missing field") {
                    let name = message.split('`').nth(1).unwrap_or("?");
                    if path == "." {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    }
                } else if path == "." {
                    "body".to_owned()
                } else {
                    path
                };
                AppError::Validation(vec![FieldError::new(field, message)])
            }
            _ => AppError::BadRequest(format!("malformed JSON: {inner}")),
        }
    })
}

/// Flattens validator errors into `field: message` pairs (nested fields joined with dots).
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let name = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| format!("failed the `{}` check", e.code));
                    out.push(FieldError::new(name.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, &name, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(inner, &format!("{name}[{i}]"), out);
                }
            }
        }
    }
}

/// For `#[serde(default, deserialize_with = "double_option")]`: a field that may be absent
/// (`None`: keep), `null` (`Some(None)`: clear) or a value (`Some(Some(v))`: set).
pub fn double_option<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    #[test]
    fn classifies_parse_failures() {
        assert!(matches!(
            parse::<Body>(b"{nope"),
            Err(AppError::BadRequest(_))
        ));
        match parse::<Body>(br#"{"name":"a","count":1,"extra":true}"#) {
            Err(AppError::Validation(e)) => assert_eq!(e[0].field, "extra"),
            other => panic!("{other:?}"),
        }
        match parse::<Body>(br#"{"name":"a","count":"x"}"#) {
            Err(AppError::Validation(e)) => assert_eq!(e[0].field, "count"),
            other => panic!("{other:?}"),
        }
        match parse::<Body>(br#"{"name":"a"}"#) {
            Err(AppError::Validation(e)) => assert_eq!(e[0].field, "count"),
            other => panic!("{other:?}"),
        }
    }
}
