//! PLYR request signing: body canonicalisation and the HMAC check, as the `/game/*` handlers
//! call them (raw bytes, then the parsed body).

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use crate::config::GameApiKey;
use crate::facade::game::error::GameError;
use crate::facade::game::sign::{authenticate, js_stringify, signature, KeyRing, Role};

const SECRET: &str = "test-secret";
const TS: &str = "1700000000000";
const NOW_MS: u64 = 1_700_000_000_000;

fn ring() -> KeyRing {
    // A valid key: `KeyRing::new` accepts it (checked by the corpus replay on every run).
    KeyRing::new(&[GameApiKey {
        api_key: "k".into(),
        secret_key: SECRET.into(),
        role: "user".into(),
        game_id: "fuzz".into(),
    }])
    .expect("the fuzz key is valid")
}

fn headers(sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("apikey", HeaderValue::from_static("k"));
    h.insert("timestamp", HeaderValue::from_static(TS));
    // A hex signature is always a valid header value.
    h.insert(
        "signature",
        HeaderValue::from_str(sig).expect("hex is a header value"),
    );
    h
}

/// The parsed body as the handler computes it: `{}` for an all-whitespace body.
fn parse(raw: &[u8]) -> Option<Value> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Some(Value::Object(Map::new()));
    }
    serde_json::from_slice(raw).ok()
}

fn verify(ring: &KeyRing, sig: &str, raw: &[u8], parsed: &Value) -> Result<(), GameError> {
    authenticate(ring, &headers(sig), Some((raw, parsed)), Role::User, NOW_MS).map(|_| ())
}

/// Properties, for any body the handler would parse:
/// - [`js_stringify`] never panics, is deterministic, is valid JSON, and is a fixed point: the
///   canonical text of the canonical text is itself;
/// - a body signed over its raw bytes verifies, and so does one signed over its canonical text;
/// - a one-byte change of the body (at several positions) is refused with `Invalid signature`,
///   unless the changed body's raw bytes or canonical text are exactly what was signed;
/// - a one-character change of the signature is refused.
pub fn check(data: &[u8]) {
    let Some(parsed) = parse(data) else {
        return; // the handler answers 400 bad JSON before any signature check
    };
    let canonical = js_stringify(&parsed);
    assert_eq!(canonical, js_stringify(&parsed), "deterministic");
    let reparsed: Value = serde_json::from_str(&canonical)
        .unwrap_or_else(|e| panic!("canonical text {canonical:?} is not JSON: {e}"));
    assert_eq!(
        js_stringify(&reparsed),
        canonical,
        "canonicalisation is a fixed point"
    );

    let ring = ring();
    let signed_raw: &[u8] = if data.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        data
    };
    let sig = signature(SECRET, TS, signed_raw);
    assert!(
        verify(&ring, &sig, data, &parsed).is_ok(),
        "raw bytes verify"
    );
    let sig_canonical = signature(SECRET, TS, canonical.as_bytes());
    assert!(
        verify(&ring, &sig_canonical, data, &parsed).is_ok(),
        "the canonical text verifies"
    );

    // A tampered signature: change its first hex digit.
    let mut bad = sig.clone().into_bytes();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).expect("hex stays ASCII");
    assert!(matches!(
        verify(&ring, &bad, data, &parsed),
        Err(GameError::InvalidSignature)
    ));

    // Tampered bodies: one byte changed at up to 16 positions spread over the body.
    let step = (data.len() / 16).max(1);
    for at in (0..data.len()).step_by(step) {
        let mut changed = data.to_vec();
        changed[at] = changed[at].wrapping_add(1);
        let Some(changed_parsed) = parse(&changed) else {
            continue; // refused as bad JSON before the signature check
        };
        let changed_raw: &[u8] = if changed.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &changed
        };
        let same_text =
            changed_raw == signed_raw || js_stringify(&changed_parsed).as_bytes() == signed_raw;
        let r = verify(&ring, &sig, &changed, &changed_parsed);
        if same_text {
            assert!(r.is_ok(), "an equivalent body verifies");
        } else {
            assert!(
                matches!(r, Err(GameError::InvalidSignature)),
                "a body changed at byte {at} must be refused"
            );
        }
    }
}
