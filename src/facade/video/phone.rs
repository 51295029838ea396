//! Phone participants: `POST /rooms/{room}/phone-participants/joined` and `/left`
//! (SEED-APIS §3.3), as the vendor's telephony middleware calls them.
//!
//! - `joined` takes a JSON array of `{call_id, name | caller_number, external_id?, muted?}` and
//!   upserts the callers by `call_id` in one batch: one `joined` event naming the new and changed
//!   callers (none when nothing changed). 200, empty body.
//! - `left` takes a JSON array of call ids (the docs and the middleware) or `{"ids":[...]}` (the
//!   generated OpenAPI) and removes those callers in one `left` event with reason `left`. Ids that
//!   are not phone participants of the room are a no-op. 200, empty body.
//!
//! Both check and change the room inside its actor (`RoomHandle::custom`), so the kind check (a call id
//! never touches a web participant) and the change are one atomic step.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::auth::AuthTeam;
use super::body::{self, as_bool};
use super::error::{FieldErrors, VideoError};
use super::rooms::resolve;
use crate::app::App;
use crate::ids::MemberId;
use crate::protocol::{LeaveReason, MemberKind};
use crate::room::{NewMember, RoomError};

/// The most callers one `joined` or `left` call may name.
pub const MAX_BATCH: usize = 1000;
/// The longest `call_id`, `name` or `external_id`, in characters.
pub const MAX_TEXT: usize = 255;

/// One validated caller of a `joined` batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The bridge's call id: the member id.
    pub call_id: String,
    /// Display name.
    pub name: Option<String>,
    /// The caller's number: E.164 with `+` when it is one (compacted by [`caller_number`]),
    /// otherwise as the bridge gave it (the vendor's middleware sends `"Unknown"` for a
    /// withheld number).
    pub caller_number: Option<String>,
    /// The integrator's id for the caller.
    pub external_id: Option<String>,
    /// Joined muted.
    pub muted: bool,
}

impl Caller {
    /// The room member for this caller: name falls back to the number.
    fn member(&self) -> NewMember {
        NewMember {
            id: MemberId::from(self.call_id.as_str()),
            kind: MemberKind::Phone,
            name: self.name.clone().or_else(|| self.caller_number.clone()),
            meta: json!({
                "caller_number": self.caller_number,
                "external_id": self.external_id,
                "muted": self.muted,
            }),
        }
    }
}

/// E.164: `+`, a non-zero digit, then 1 to 14 more digits.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A `caller_number` as stored: a `+` number written with spaces, dashes, dots or parentheses
/// (`+49 151 1234-5678`) compacts to E.164 (`+4915112345678`) when that is valid; anything else
/// (`Unknown`, a national number without `+`) is kept as given. The vendor documents E.164, but
/// its own telephony middleware sends `"Unknown"` when the caller withholds the number
/// (SEED-APIS §3.3), and the vendor's client is the bar.
pub fn caller_number(given: &str) -> String {
    if given.starts_with('+') {
        let compact: String = given
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        if is_e164(&compact) {
            return compact;
        }
    }
    given.to_owned()
}

fn caller(i: usize, item: &Value, e: &mut FieldErrors) -> Option<Caller> {
    let Value::Object(obj) = item else {
        e.add(i.to_string(), format!("The {i} field must be an object."));
        return None;
    };
    let field = |f: &str| format!("{i}.{f}");
    let before = e.count();
    let call_id = match obj.get("call_id") {
        None | Some(Value::Null) => {
            e.add(
                field("call_id"),
                format!("The {i}.call_id field is required."),
            );
            None
        }
        Some(v) => text("call_id", v, i, e),
    };
    let name = obj
        .get("name")
        .filter(|v| !v.is_null())
        .and_then(|v| text("name", v, i, e));
    let caller_number = obj
        .get("caller_number")
        .filter(|v| !v.is_null())
        .and_then(|v| text("caller_number", v, i, e))
        .map(|n| caller_number(&n));
    if obj.get("name").filter(|v| !v.is_null()).is_none()
        && obj.get("caller_number").filter(|v| !v.is_null()).is_none()
    {
        e.add(
            field("name"),
            format!("The {i}.name field is required when {i}.caller_number is not present."),
        );
        e.add(
            field("caller_number"),
            format!("The {i}.caller_number field is required when {i}.name is not present."),
        );
    }
    let external_id = obj
        .get("external_id")
        .filter(|v| !v.is_null())
        .and_then(|v| text("external_id", v, i, e));
    let muted = match obj.get("muted").filter(|v| !v.is_null()) {
        None => false,
        Some(v) => as_bool(v).unwrap_or_else(|| {
            e.add(
                field("muted"),
                format!("The {i}.muted field must be true or false."),
            );
            false
        }),
    };
    if e.count() > before {
        return None; // this item is invalid; its errors are recorded
    }
    Some(Caller {
        call_id: call_id?,
        name,
        caller_number,
        external_id,
        muted,
    })
}

/// A string field of item `i`: 1 to [`MAX_TEXT`] characters.
fn text(f: &str, v: &Value, i: usize, e: &mut FieldErrors) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_TEXT => Some(s.clone()),
        Value::String(s) if s.is_empty() => {
            e.add(
                format!("{i}.{f}"),
                format!("The {i}.{f} field is required."),
            );
            None
        }
        Value::String(_) => {
            e.add(
                format!("{i}.{f}"),
                format!("The {i}.{f} field must not be greater than {MAX_TEXT} characters."),
            );
            None
        }
        _ => {
            e.add(
                format!("{i}.{f}"),
                format!("The {i}.{f} field must be a string."),
            );
            None
        }
    }
}

/// Validates a `joined` body. Repeated call ids: the last entry wins (it is the newest report).
pub fn parse_joined(v: &Value) -> Result<Vec<Caller>, VideoError> {
    let Value::Array(items) = v else {
        return Err(FieldErrors::one(
            "body",
            "The request body must be a JSON array of phone participants.",
        ));
    };
    batch_size(items.len(), "body")?;
    let mut e = FieldErrors::new();
    let callers: Vec<Caller> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| caller(i, item, &mut e))
        .collect();
    e.check()?;
    let mut out: Vec<Caller> = Vec::with_capacity(callers.len());
    for c in callers {
        match out.iter_mut().find(|o| o.call_id == c.call_id) {
            Some(o) => *o = c,
            None => out.push(c),
        }
    }
    Ok(out)
}

fn batch_size(n: usize, field: &str) -> Result<(), VideoError> {
    if n == 0 {
        return Err(FieldErrors::one(
            field,
            format!("The {field} field must have at least 1 item."),
        ));
    }
    if n > MAX_BATCH {
        return Err(FieldErrors::one(
            field,
            format!("The {field} field must not have more than {MAX_BATCH} items."),
        ));
    }
    Ok(())
}

/// Validates a `left` body: `["id", ...]` or `{"ids": ["id", ...]}`.
pub fn parse_left(v: &Value) -> Result<Vec<MemberId>, VideoError> {
    let items =
        match v {
            Value::Array(items) => items,
            Value::Object(obj) => match obj.get("ids") {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => {
                    return Err(FieldErrors::one("ids", "The ids field is required."))
                }
                Some(_) => return Err(FieldErrors::one("ids", "The ids field must be an array.")),
            },
            _ => return Err(FieldErrors::one(
                "body",
                "The request body must be a JSON array of call ids or an object {\"ids\": [...]}.",
            )),
        };
    batch_size(items.len(), "ids")?;
    let mut e = FieldErrors::new();
    let mut ids = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_TEXT => {
                ids.push(MemberId::from(s.as_str()))
            }
            _ => e.add(
                format!("ids.{i}"),
                format!(
                    "The ids.{i} field must be a call id (a string of 1 to {MAX_TEXT} characters)."
                ),
            ),
        }
    }
    e.check().map(|()| ids)
}

/// Why a `joined` batch was refused inside the actor.
enum JoinRefusal {
    /// These items name web participants' ids.
    NotPhone(Vec<usize>),
    /// The room refused (full, banned).
    Room(RoomError),
}

/// `POST /api/v1/rooms/{room}/phone-participants/joined`.
pub async fn joined(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, VideoError> {
    let (_, h) = resolve(&app, &team, key).await?;
    let callers = parse_joined(&body::json_body(b)?)?;
    let r = h
        .custom(move |ops| {
            // Per-id kind lookups: no copy of the whole room inside the actor.
            let clash: Vec<usize> = callers
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    ops.kind_of(&c.call_id)
                        .is_some_and(|k| k != MemberKind::Phone)
                })
                .map(|(i, _)| i)
                .collect();
            if !clash.is_empty() {
                return Err(JoinRefusal::NotPhone(clash));
            }
            ops.add(callers.iter().map(Caller::member).collect())
                .map_err(JoinRefusal::Room)
        })
        .await?;
    match r {
        Ok(_) => Ok(StatusCode::OK),
        Err(JoinRefusal::Room(e)) => Err(e.into()),
        Err(JoinRefusal::NotPhone(items)) => {
            let mut e = FieldErrors::new();
            for i in items {
                e.add(
                    format!("{i}.call_id"),
                    format!("The {i}.call_id is the id of a web participant of this room."),
                );
            }
            Err(VideoError::Invalid(e))
        }
    }
}

/// `POST /api/v1/rooms/{room}/phone-participants/left`.
pub async fn left(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, VideoError> {
    let (_, h) = resolve(&app, &team, key).await?;
    let ids = parse_left(&body::json_body(b)?)?;
    h.custom(move |ops| {
        let phones: Vec<MemberId> = ids
            .into_iter()
            .filter(|id| ops.kind_of(id.as_str()) == Some(MemberKind::Phone))
            .collect();
        ops.remove(&phones, LeaveReason::Left, None)
    })
    .await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E.164 needs the `+`, a non-zero first digit and 2 to 15 digits in all.
    #[test]
    fn e164_numbers() {
        for ok in ["+14155550100", "+4915112345678", "+12", "+123456789012345"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "14155550100",
            "+0123",
            "+1",
            "+1234567890123456",
            "+1 415",
            "+",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    /// E.164 numbers are compacted; a withheld number (`Unknown`, as the vendor's middleware
    /// sends it) or a national number is kept as given.
    #[test]
    fn caller_numbers_are_compacted_where_e164_and_kept_otherwise() {
        assert_eq!(caller_number("+49 151 1234-5678"), "+4915112345678");
        assert_eq!(caller_number("+1 (415) 555.0100"), "+14155550100");
        assert_eq!(caller_number("+14155550100"), "+14155550100");
        for kept in ["Unknown", "4915112345678", "+12ab", "anonymous"] {
            assert_eq!(caller_number(kept), kept);
        }
        let callers = parse_joined(&json!([{"call_id": "c", "caller_number": "Unknown"}])).unwrap();
        assert_eq!(callers[0].member().name.as_deref(), Some("Unknown"));
        for bad in [json!(""), json!(5), json!("x".repeat(256))] {
            assert!(parse_joined(&json!([{"call_id": "c", "caller_number": bad}])).is_err());
        }
    }

    /// A repeated call id in one `joined` batch keeps one entry, the last (newest) report.
    #[test]
    fn repeated_call_id_last_report_wins() {
        let v = json!([
            {"call_id": "a", "name": "first"},
            {"call_id": "b", "caller_number": "+4930123456"},
            {"call_id": "a", "name": "second", "muted": 1},
        ]);
        let callers = parse_joined(&v).unwrap();
        assert_eq!(callers.len(), 2);
        assert_eq!(callers[0].name.as_deref(), Some("second"));
        assert!(callers[0].muted);
        assert_eq!(callers[1].member().name.as_deref(), Some("+4930123456"));
    }

    /// Both documented `left` bodies give the same ids.
    #[test]
    fn left_accepts_array_and_ids_object() {
        let a = parse_left(&json!(["x", "y"])).unwrap();
        let b = parse_left(&json!({"ids": ["x", "y"]})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, [MemberId::from("x"), MemberId::from("y")]);
    }
}
