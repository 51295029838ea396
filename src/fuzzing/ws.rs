//! Socket frames: a text frame is either a [`ClientMsg`] or exactly one `error` reply.

use serde_json::Value;

use crate::protocol::{ClientMsg, ErrorCode, Ref, ServerMsg};
use crate::ws::parse_request;

/// Properties of [`parse_request`] on any text frame:
/// - it never panics;
/// - a parsed request serializes and parses back to the same request;
/// - a refusal is one `error` message with code `bad_json` (exactly when the frame is not JSON),
///   `unknown_type` or `bad_request`, echoing the frame's `ref` when the frame is a JSON object.
pub fn check(data: &[u8]) {
    // The socket hands over text frames only (binary frames are refused before parsing).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_request(text) {
        Ok(msg) => {
            let again = serde_json::to_string(&msg).expect("a ClientMsg serializes");
            let back: ClientMsg = serde_json::from_str(&again)
                .unwrap_or_else(|e| panic!("{again} does not parse back: {e}"));
            assert_eq!(back, msg, "round trip through {again}");
        }
        Err(frame) => {
            let reply: ServerMsg<'_> = serde_json::from_str(frame.as_str())
                .unwrap_or_else(|e| panic!("reply {} is not a ServerMsg: {e}", frame.as_str()));
            let ServerMsg::Error { code, .. } = reply else {
                panic!("a refusal must be an error message: {}", frame.as_str());
            };
            let json = serde_json::from_str::<Value>(text).ok();
            match code {
                ErrorCode::BadJson => assert!(json.is_none(), "bad_json for JSON {text:?}"),
                ErrorCode::UnknownType | ErrorCode::BadRequest => {
                    assert!(json.is_some(), "{code:?} for non-JSON {text:?}")
                }
                other => panic!("unexpected parse error code {other:?} for {text:?}"),
            }
            // The reply's `ref` is the frame's, verbatim: the same text, or (when the frame's is
            // all exact values: no float-stored number) the same JSON written compactly.
            // `"ref": null` reads back as no ref on both sides.
            let raw = |t: &str| match Ref::from_text(t) {
                Some(Ref::Raw(r)) => Some(r.get().to_owned()),
                _ => None,
            };
            let (sent, echoed) = (raw(text), raw(frame.as_str()));
            match (&sent, &echoed) {
                (Some(s), Some(e)) if s != e => {
                    let (sv, ev) = (
                        serde_json::from_str::<Value>(s).ok(),
                        serde_json::from_str::<Value>(e).ok(),
                    );
                    assert!(
                        sv == ev && sv.as_ref().is_some_and(|v| !has_float(v)),
                        "the reply must echo the frame's ref: sent {s}, got {e}"
                    );
                }
                _ => assert_eq!(sent, echoed, "the reply must echo the frame's ref"),
            }
        }
    }
}

/// True when `v` holds a number stored as a float (written back possibly differently).
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
