//! Socket frames: a text frame is either a [`ClientMsg`] or exactly one `error` reply.

use serde_json::Value;

use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
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
            let ServerMsg::Error {
                reference, code, ..
            } = reply
            else {
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
            // `"ref": null` reads back as no ref: compare the two the same way.
            let sent_ref = json
                .as_ref()
                .and_then(|v| v.get("ref"))
                .filter(|r| !r.is_null());
            assert_eq!(
                reference.as_deref().filter(|r| !r.is_null()),
                sent_ref,
                "the reply must echo the frame's ref"
            );
        }
    }
}
