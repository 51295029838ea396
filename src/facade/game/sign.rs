//! Request signing, exactly as PLYR's `hmacAuth` middleware checks it (SEED-APIS §1.2).
//!
//! `signature = lowercase_hex(HMAC-SHA256(secretKey, timestamp + JSON.stringify(body)))`, with
//! `{}` for GET and bodiless requests. The vendor signs its *re-serialization* of the parsed body;
//! we first try the raw bytes (what every `JSON.stringify` client sends, and the cheapest check),
//! then a JavaScript-faithful re-serialization of the parsed body ([`js_stringify`]), so a client
//! whose HTTP library re-formats the body still verifies. Comparison is constant-time.
//!
//! Check order and strings are the vendor's: missing headers → unknown key → signature → time
//! window (±5 min) → role. Two deliberate differences: a timestamp that is not a decimal number
//! is refused as `Request expired` (the vendor lets NaN through), and roles are ranked
//! `user < game < admin` (the vendor compares them for equality, admin excepted).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::error::GameError;
use crate::auth::secret_eq;
use crate::config::{ConfigError, GameApiKey};

/// The accepted distance between `timestamp` and now, in milliseconds.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;

/// An API key's role. Ordered: `User < Game < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every game-room route needs at least this.
    User,
    /// A game's own key.
    Game,
    /// Everything.
    Admin,
}

impl Role {
    /// Parses the configured role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "game" => Some(Self::Game),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A configured API key, validated.
#[derive(Debug)]
pub struct ApiKey {
    /// The `apikey` header value.
    pub api_key: String,
    /// The HMAC secret (never logged).
    pub secret: String,
    /// Its role.
    pub role: Role,
    /// The game this key acts for, lowercased (PLYR lowercases game ids).
    pub game_id: String,
}

/// The configured keys, by `apikey`.
#[derive(Debug)]
pub struct KeyRing {
    keys: HashMap<String, Arc<ApiKey>>,
}

/// Whether a game id can be part of a room id that sockets can name (`game:<gameId>:<roomId>`).
fn valid_game_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

impl KeyRing {
    /// Validates the configured keys.
    pub fn new(keys: &[GameApiKey]) -> Result<Self, ConfigError> {
        let invalid = |field, reason: String| ConfigError::Invalid { field, reason };
        let mut map = HashMap::new();
        for k in keys {
            if k.api_key.is_empty() {
                return Err(invalid("game.api_keys.api_key", "must not be empty".into()));
            }
            if k.secret_key.is_empty() {
                return Err(invalid(
                    "game.api_keys.secret_key",
                    format!("empty for api_key {:?}", k.api_key),
                ));
            }
            let role = Role::parse(&k.role).ok_or_else(|| {
                invalid(
                    "game.api_keys.role",
                    format!("{:?}: expected user, game or admin", k.role),
                )
            })?;
            if !valid_game_id(&k.game_id) {
                return Err(invalid(
                    "game.api_keys.game_id",
                    format!("{:?}: 1-64 characters of [A-Za-z0-9_.@-]", k.game_id),
                ));
            }
            let key = ApiKey {
                api_key: k.api_key.clone(),
                secret: k.secret_key.clone(),
                role,
                game_id: k.game_id.to_lowercase(),
            };
            if map.insert(k.api_key.clone(), Arc::new(key)).is_some() {
                return Err(invalid(
                    "game.api_keys.api_key",
                    format!("{:?} is listed twice", k.api_key),
                ));
            }
        }
        Ok(Self { keys: map })
    }

    /// The key named by an `apikey` header.
    pub fn get(&self, api_key: &str) -> Option<&Arc<ApiKey>> {
        self.keys.get(api_key)
    }

    /// Every distinct game id.
    pub fn game_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.values().map(|k| k.game_id.as_str())
    }
}

/// `lowercase_hex(HMAC-SHA256(secret, timestamp + body))`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// Checks the three headers against the body. `body` is `None` for GET (signed as `{}`);
/// otherwise the raw bytes and the parsed value (`{}` when the body was empty).
pub fn authenticate(
    ring: &KeyRing,
    headers: &HeaderMap,
    body: Option<(&[u8], &Value)>,
    required: Role,
    now_ms: u64,
) -> Result<Arc<ApiKey>, GameError> {
    let (Some(sig), Some(ts), Some(api_key)) = (
        header(headers, "signature"),
        header(headers, "timestamp"),
        header(headers, "apikey"),
    ) else {
        return Err(GameError::MissingHeaders);
    };
    let key = ring.get(api_key).ok_or(GameError::InvalidApiKey)?;
    let matches =
        |bytes: &[u8]| secret_eq(sig.as_bytes(), signature(&key.secret, ts, bytes).as_bytes());
    let ok = match body {
        None => matches(b"{}"),
        Some((raw, parsed)) => {
            let raw_is_empty = raw.iter().all(u8::is_ascii_whitespace);
            matches(if raw_is_empty { b"{}" } else { raw })
                || matches(js_stringify(parsed).as_bytes())
        }
    };
    if !ok {
        return Err(GameError::InvalidSignature);
    }
    let in_window = ts.len() <= 19
        && ts.bytes().all(|b| b.is_ascii_digit())
        && ts
            .parse::<u64>()
            .is_ok_and(|t| t.abs_diff(now_ms) <= WINDOW_MS);
    if !in_window {
        return Err(GameError::RequestExpired);
    }
    if key.role < required {
        return Err(GameError::InsufficientPermissions);
    }
    Ok(key.clone())
}

/// `JSON.stringify(JSON.parse(text))` as Node computes it: no whitespace, object keys that are
/// array indices first in ascending order then the others in insertion order, numbers in
/// JavaScript's shortest form (`1.0` → `1`, `1e21` → `1e+21`, integers beyond 2^53 rounded).
/// Number literals are read correctly rounded (serde_json's `float_roundtrip`), as V8 reads them.
pub fn js_stringify(v: &Value) -> String {
    let mut out = String::new();
    write_js(&mut out, v);
    out
}

fn write_js(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_js(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut indices: Vec<(u32, &String, &Value)> = map
                .iter()
                .filter_map(|(k, v)| array_index(k).map(|i| (i, k, v)))
                .collect();
            indices.sort_by_key(|(i, _, _)| *i);
            let others = map.iter().filter(|(k, _)| array_index(k).is_none());
            out.push('{');
            let entries = indices.into_iter().map(|(_, k, v)| (k, v)).chain(others);
            for (i, (k, v)) in entries.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_js(out, v);
            }
            out.push('}');
        }
    }
}

/// JavaScript orders "array index" keys (canonical decimal integers below 2^32 − 1) first.
fn array_index(k: &str) -> Option<u32> {
    let canonical = k == "0" || (!k.starts_with('0') && !k.is_empty());
    if !canonical || k.len() > 10 || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    k.parse::<u32>().ok().filter(|i| *i != u32::MAX)
}

fn write_string(out: &mut String, s: &str) {
    // serde_json escapes exactly what JSON.stringify escapes for well-formed strings: `"`, `\`
    // and control characters (`\b \f \n \r \t`, others as lowercase `\u00xx`).
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        // Serializing a &str cannot fail; keep the output well-formed regardless.
        Err(_) => out.push_str("\"\""),
    }
}

const MAX_SAFE: u64 = 1 << 53;

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(u) = n.as_u64().filter(|u| *u <= MAX_SAFE) {
        let _ = write!(out, "{u}"); // writing to a String cannot fail
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= MAX_SAFE) {
        let _ = write!(out, "{i}"); // as above
    } else {
        write_f64(out, n.as_f64().unwrap_or(0.0));
    }
}

fn write_f64(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    if f == 0.0 {
        out.push('0'); // JSON.stringify(-0) === "0"
        return;
    }
    let abs = f.abs();
    if (1e-6..1e21).contains(&abs) {
        // Rust's Display is the shortest round-trip form without an exponent, like JS here.
        let _ = write!(out, "{f}"); // writing to a String cannot fail
    } else {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}"); // as above
            }
            _ => out.push_str(&s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TS: &str = "1700000000000";

    /// SEED-APIS §1.2 test vector 1: a body signed by the vendor's own function.
    #[test]
    fn vendor_vector_with_body() {
        let body = br#"{"roomId":"123","sessionJwts":["jwt1"],"sync":true}"#;
        assert_eq!(
            signature("test-secret", TS, body),
            "3c966071238a18a7689350226ebc91efaaff8917651119bdfa3b1e358784664b"
        );
        let parsed: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(js_stringify(&parsed).as_bytes(), body);
    }

    /// SEED-APIS §1.2 test vector 2: the empty body `{}` (every GET).
    #[test]
    fn vendor_vector_empty_body() {
        assert_eq!(
            signature("test-secret", TS, b"{}"),
            "a9ac3c6e3b3f80104f0cb589a9f3571e0d0671fbf216390f2ba7da859314af45"
        );
    }

    /// Re-serialization follows JSON.stringify: key order kept, index keys first, JS numbers.
    #[test]
    fn js_stringify_matches_node() {
        let v: Value = serde_json::from_str(
            r#"{ "b": 1.0, "a": [1e21, 1.5e-7, -0.0, 0.000001, 1e20, 1e2, 0.1],
                 "2": "x\u0001\n\"/é", "1": null, "01": true }"#,
        )
        .unwrap();
        assert_eq!(
            js_stringify(&v),
            r#"{"1":null,"2":"x\u0001\n\"/é","b":1,"a":[1e+21,1.5e-7,0,0.000001,100000000000000000000,100,0.1],"01":true}"#
        );
        let big: Value = serde_json::from_str("[9007199254740993, -9007199254740993, 12]").unwrap();
        assert_eq!(
            js_stringify(&big),
            "[9007199254740992,-9007199254740992,12]"
        );
    }

    /// Long and exponent literals read correctly rounded, as V8's `JSON.parse` reads them (the
    /// `ws_message` fuzz target found serde_json's default reader one ulp off).
    #[test]
    fn js_stringify_reads_numbers_like_v8() {
        let v: Value = serde_json::from_str(
            "[25555555555555555555555555555555555555555555555555, 2.555555555555555e+49]",
        )
        .unwrap();
        assert_eq!(
            js_stringify(&v),
            "[2.5555555555555557e+49,2.555555555555555e+49]"
        );
    }

    fn ring() -> KeyRing {
        KeyRing::new(&[GameApiKey {
            api_key: "k".into(),
            secret_key: "test-secret".into(),
            role: "user".into(),
            game_id: "MyGame".into(),
        }])
        .unwrap()
    }

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("apikey", HeaderValue::from_static("k"));
        h.insert("timestamp", HeaderValue::from_str(ts).unwrap());
        h.insert("signature", HeaderValue::from_str(sig).unwrap());
        h
    }

    /// Raw bytes verify; so does a re-formatted body whose parse re-serializes to the signed text.
    #[test]
    fn raw_then_reserialized_body() {
        let now = 1_700_000_000_000;
        let compact = br#"{"roomId":"1","sync":true}"#;
        let sig = signature("test-secret", TS, compact);
        let parsed: Value = serde_json::from_slice(compact).unwrap();
        let key = authenticate(
            &ring(),
            &headers(TS, &sig),
            Some((compact, &parsed)),
            Role::User,
            now,
        )
        .unwrap();
        assert_eq!(key.game_id, "mygame");
        let pretty = b"{ \"roomId\" : \"1\",\n \"sync\": true }";
        let parsed: Value = serde_json::from_slice(pretty).unwrap();
        assert!(authenticate(
            &ring(),
            &headers(TS, &sig),
            Some((pretty, &parsed)),
            Role::User,
            now
        )
        .is_ok());
        let changed = br#"{"roomId":"2","sync":true}"#;
        let parsed: Value = serde_json::from_slice(changed).unwrap();
        assert!(matches!(
            authenticate(
                &ring(),
                &headers(TS, &sig),
                Some((changed, &parsed)),
                Role::User,
                now
            ),
            Err(GameError::InvalidSignature)
        ));
    }

    /// Order of checks and the window: expired, NaN and role failures come after the signature.
    #[test]
    fn window_and_roles() {
        let now = 1_700_000_000_000;
        let get = |ts: &str, required, now| {
            let sig = signature("test-secret", ts, b"{}");
            authenticate(&ring(), &headers(ts, &sig), None, required, now)
        };
        assert!(get(TS, Role::User, now + WINDOW_MS).is_ok());
        assert!(matches!(
            get(TS, Role::User, now + WINDOW_MS + 1),
            Err(GameError::RequestExpired)
        ));
        assert!(matches!(
            get(TS, Role::User, now - WINDOW_MS - 1),
            Err(GameError::RequestExpired)
        ));
        assert!(matches!(
            get("NaN", Role::User, now),
            Err(GameError::RequestExpired)
        ));
        assert!(matches!(
            get("17e11", Role::User, now),
            Err(GameError::RequestExpired)
        ));
        assert!(matches!(
            get(TS, Role::Game, now),
            Err(GameError::InsufficientPermissions)
        ));
        assert!(matches!(
            get(TS, Role::Admin, now),
            Err(GameError::InsufficientPermissions)
        ));
        let mut h = headers(TS, "x");
        h.remove("apikey");
        assert!(matches!(
            authenticate(&ring(), &h, None, Role::User, now),
            Err(GameError::MissingHeaders)
        ));
        let mut h = headers(TS, "x");
        h.insert("apikey", HeaderValue::from_static("nope"));
        assert!(matches!(
            authenticate(&ring(), &h, None, Role::User, now),
            Err(GameError::InvalidApiKey)
        ));
        // A wrong signature is reported before an expired timestamp, as the vendor does.
        assert!(matches!(
            authenticate(&ring(), &headers("1", "bad"), None, Role::User, now),
            Err(GameError::InvalidSignature)
        ));
        assert!(Role::User < Role::Game && Role::Game < Role::Admin);
    }

    /// Bad key configuration is refused with the field named.
    #[test]
    fn key_validation() {
        let key = |role: &str, game: &str| GameApiKey {
            api_key: "k".into(),
            secret_key: "s".into(),
            role: role.into(),
            game_id: game.into(),
        };
        assert!(KeyRing::new(&[key("owner", "g")])
            .unwrap_err()
            .to_string()
            .contains("role"));
        assert!(KeyRing::new(&[key("user", "a:b")])
            .unwrap_err()
            .to_string()
            .contains("game_id"));
        assert!(KeyRing::new(&[key("user", "g"), key("admin", "g")])
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}
