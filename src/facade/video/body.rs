//! Request input: JSON bodies, query strings and pagination, validated into Laravel-style 422s.
//!
//! Bodies are read as bytes and parsed here rather than by axum's `Json` extractor, so that no
//! rejection can leak as a plain-text 400/415: a missing or non-JSON `Content-Type` is accepted
//! (the body is parsed as JSON whatever the header says), malformed JSON is a 422 on the field
//! `body`, and only an oversize body (413) or an unreadable one (400) is answered otherwise, with
//! a JSON `{message}` too.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::Query;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::{FieldErrors, VideoError};

/// The most items a list (`limit`) returns, and its default (the vendor's).
pub const PAGE_MAX: usize = 100;

/// The JSON value of a request body.
pub fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, VideoError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            VideoError::TooLarge
        } else {
            VideoError::BadBody
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FieldErrors::one("body", "The request body is required."));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        FieldErrors::one(
            "body",
            format!("The request body must be valid JSON ({e})."),
        )
    })
}

/// The JSON object of a request body; an empty body is an empty object (all fields optional).
pub fn json_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, VideoError> {
    if let Ok(b) = &body {
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
    }
    match json_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(FieldErrors::one(
            "body",
            "The request body must be a JSON object.",
        )),
    }
}

/// Laravel's attribute name: `friendly_url` → `friendly url`.
pub fn attribute(field: &str) -> String {
    field.replace('_', " ")
}

/// An optional string field: absent or `null` → `None`; otherwise `min..=max` characters.
pub fn opt_string(
    obj: &Map<String, Value>,
    field: &str,
    min: usize,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n < min {
                errors.add(
                    field,
                    format!(
                        "The {} field must be at least {min} characters.",
                        attribute(field)
                    ),
                );
                None
            } else if n > max {
                errors.add(
                    field,
                    format!(
                        "The {} field must not be greater than {max} characters.",
                        attribute(field)
                    ),
                );
                None
            } else {
                Some(s.clone())
            }
        }
        Some(_) => {
            errors.add(
                field,
                format!("The {} field must be a string.", attribute(field)),
            );
            None
        }
    }
}

/// Laravel's `boolean` rule: `true`, `false`, `1`, `0`, `"1"`, `"0"`.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_u64() == Some(1) => Some(true),
        Value::Number(n) if n.as_u64() == Some(0) => Some(false),
        Value::String(s) if s == "1" => Some(true),
        Value::String(s) if s == "0" => Some(false),
        _ => None,
    }
}

/// Whether every character of `s` is URL-safe for a `friendly_url`: `[A-Za-z0-9_-]`.
pub fn url_safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Sort order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the vendor's default).
    Desc,
}

/// The vendor's pagination parameters (`limit`, `offset`, `order`, `after`).
#[derive(Debug, Clone)]
pub struct Page {
    /// At most this many records (1..=100, default 100).
    pub limit: usize,
    /// Skip this many records (after `after`, if given).
    pub offset: usize,
    /// Order.
    pub order: Order,
    /// Start after this room (UUID or `friendly_url`).
    pub after: Option<String>,
}

impl Page {
    /// Parses and validates the query string; unknown parameters are ignored.
    pub fn parse(
        q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    ) -> Result<Self, VideoError> {
        let Query(pairs) =
            q.map_err(|_| FieldErrors::one("query", "The query string is not valid."))?;
        let mut page = Page {
            limit: PAGE_MAX,
            offset: 0,
            order: Order::Desc,
            after: None,
        };
        let mut errors = FieldErrors::new();
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=PAGE_MAX).contains(&n) => page.limit = n,
                    _ => errors.add(
                        "limit",
                        format!("The limit field must be an integer between 1 and {PAGE_MAX}."),
                    ),
                },
                "offset" => match v.parse::<usize>() {
                    Ok(n) => page.offset = n,
                    Err(_) => errors.add(
                        "offset",
                        "The offset field must be an integer of at least 0.",
                    ),
                },
                "order" => match v.as_str() {
                    "asc" => page.order = Order::Asc,
                    "desc" => page.order = Order::Desc,
                    _ => errors.add("order", "The selected order is invalid (asc or desc)."),
                },
                "after" if !v.is_empty() => page.after = Some(v),
                _ => {}
            }
        }
        errors.check().map(|()| page)
    }

    /// Applies the order, then `after` (the item `is_after` picks), then keeps the items `keep`
    /// accepts, then offset and limit. `items` come oldest first. `None` when `after` was given
    /// and `is_after` picks no item.
    pub fn select<T>(
        &self,
        mut items: Vec<T>,
        is_after: impl Fn(&T) -> bool,
        keep: impl Fn(&T) -> bool,
    ) -> Option<Vec<T>> {
        if self.order == Order::Desc {
            items.reverse();
        }
        let start = match &self.after {
            None => 0,
            Some(_) => items.iter().position(is_after)? + 1,
        };
        Some(
            items
                .into_iter()
                .skip(start)
                .filter(keep)
                .skip(self.offset)
                .take(self.limit)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(order: Order, after: Option<&str>, offset: usize, limit: usize) -> Page {
        Page {
            limit,
            offset,
            order,
            after: after.map(str::to_owned),
        }
    }

    /// Order, cursor, filter, offset and limit apply in that order; an unknown cursor is `None`.
    #[test]
    fn select_orders_then_cursor_then_filter_then_window() {
        let items = vec![1, 2, 3, 4, 5, 6];
        let all = |_: &i32| true;
        let p = page(Order::Desc, None, 0, 100);
        assert_eq!(
            p.select(items.clone(), |_| false, all),
            Some(vec![6, 5, 4, 3, 2, 1])
        );
        let p = page(Order::Asc, Some("2"), 1, 2);
        assert_eq!(p.select(items.clone(), |i| *i == 2, all), Some(vec![4, 5]));
        let p = page(Order::Asc, Some("3"), 0, 100);
        assert_eq!(
            p.select(items.clone(), |i| *i == 3, |i| i % 2 == 0),
            Some(vec![4, 6])
        );
        assert_eq!(p.select(items, |_| false, all), None);
    }
}
