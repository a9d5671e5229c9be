//! Limit/cursor pagination: `?limit=&cursor=`, answered with `{items, next_cursor}`. Cursors are
//! opaque to clients (base64url of the last item's sort key).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// Query parameters of a list request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageParams {
    #[serde(default, deserialize_with = "whole_number")]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A number, or a string holding one: query strings flattened into a larger struct reach serde
/// as strings only.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("limit must be a whole number")),
    }
}

impl PageParams {
    /// The page size, checked to be 1..=MAX_LIMIT.
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(AppError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    /// The sort key after which the page starts, if a cursor was given.
    pub fn after(&self) -> Result<Option<String>, AppError> {
        self.cursor
            .as_deref()
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    // Keys are ids and names: never a control character (PostgreSQL would
                    // refuse a NUL outright).
                    .filter(|key| !key.chars().any(char::is_control))
                    .ok_or_else(|| AppError::invalid("cursor", "is not a cursor from this API"))
            })
            .transpose()
    }
}

/// A page of results.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in key order; the extra row, if present,
    /// shows there is a next page.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| URL_SAFE_NO_PAD.encode(key(r)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_parses_when_flattened() {
        #[derive(Deserialize)]
        struct Query {
            #[allow(dead_code)]
            zone: Option<String>,
            #[serde(flatten)]
            page: PageParams,
        }
        let q: Query = serde_urlencoded::from_str("zone=x&limit=7&cursor=abc").unwrap();
        assert_eq!(q.page.limit, Some(7));
        assert!(serde_urlencoded::from_str::<Query>("limit=lots").is_err());
        let direct: PageParams = serde_urlencoded::from_str("limit=3").unwrap();
        assert_eq!(direct.limit, Some(3));
    }

    #[test]
    fn pages_and_cursors() {
        let page = Page::from_rows(vec!["a", "b", "c"], 2, |s| s.to_string());
        assert_eq!(page.items, vec!["a", "b"]);
        let params = PageParams {
            limit: Some(2),
            cursor: page.next_cursor,
        };
        assert_eq!(params.after().unwrap().as_deref(), Some("b"));
        assert!(
            PageParams {
                limit: Some(0),
                cursor: None
            }
            .limit()
            .is_err()
        );
        assert!(
            PageParams {
                limit: None,
                cursor: Some("!!".into())
            }
            .after()
            .is_err()
        );
    }
}
