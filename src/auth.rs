//! Socket authentication: JWT verification with algorithms pinned by configuration.
//!
//! The verifier holds the configured (algorithm, key) pairs. A token's header only selects among
//! them: a token that names an algorithm with no configured key is rejected, so an attacker can
//! never make us verify an HS256 MAC with a public key. `exp` is required and enforced.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Settings};
use crate::ids::{MemberId, RoomId};
use crate::protocol::MemberKind;

/// Who is on the other end of a connection, from its verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The member id (`sub`, or `plyrId` for game session tokens).
    pub member: MemberId,
    /// Display name (`name` claim), if any.
    pub name: Option<String>,
    /// Participant kind (`player` by default, `web` for video-room tokens).
    pub kind: MemberKind,
    /// Token expiry, seconds since the Unix epoch.
    pub exp: Option<u64>,
    /// When set, the token only admits this room (video-room tokens).
    pub only_room: Option<RoomId>,
    /// Which rooms the credential may see at all (tenant isolation; `protocol/README.md`).
    pub access: Access,
}

/// What kind of credential a socket holds, which decides the rooms it may join or watch (checked
/// in `ws::access` before any room is asked; `protocol/README.md`, "Who may see a room").
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Access {
    /// A native token: native rooms (all of them, or those its `rooms` claim admits), and a
    /// lobby room only where its member is one of the lobby's players. Never video or game rooms.
    Native(Option<RoomAllow>),
    /// A PLYR session token: the game rooms of this game (`game:<gameId>:*`) only.
    Game(String),
    /// A façade credential bound to [`Identity::only_room`] (video room tokens, a lobby's own
    /// SSE and liveness watchers): that room only.
    #[default]
    Room,
    /// The operator (`admin_token`): may watch any room and join native rooms.
    Operator,
}

impl Access {
    /// A native token with no `rooms` claim.
    pub const NATIVE: Self = Self::Native(None);
}

/// A native token's `rooms` claim: room name patterns, each an exact name or a prefix ending in
/// `*` (`"chess-*"`; `"*"` admits every native room).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomAllow(std::sync::Arc<[String]>);

impl RoomAllow {
    /// At most this many patterns in one claim.
    pub const MAX_PATTERNS: usize = 64;

    /// Validates the claim: 1..=64 patterns, each a room name (or a room name prefix then `*`).
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        if patterns.is_empty() || patterns.len() > Self::MAX_PATTERNS {
            return Err(format!(
                "the rooms claim holds 1 to {} patterns",
                Self::MAX_PATTERNS
            ));
        }
        for p in &patterns {
            let stem = p.strip_suffix('*').unwrap_or(p);
            let ok = p == "*" || crate::ids::valid_room_name(stem);
            if !ok {
                return Err(format!("rooms claim: {p:?} is not a room name or prefix*"));
            }
        }
        Ok(Self(patterns.into()))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether `room` matches one of the patterns.
    pub fn admits(&self, room: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => p == room,
        })
    }
}

/// Why a token was refused. The message is safe to show the client (it never echoes the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in `Authorization: Bearer` or `?token=`.
    #[error("missing token: send Authorization: Bearer <jwt> or ?token=<jwt>")]
    Missing,
    /// Not a JWT, bad signature, wrong algorithm, missing claim.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
}

/// The longest display name (`name` claim) a native token may carry, in bytes: a name goes into
/// every panel row, so it is bounded like the member id.
pub const MAX_NAME_BYTES: usize = 255;

/// The claims rollcall reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    /// Member id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// PLYR session tokens name the player here (lowercased).
    #[serde(default, rename = "plyrId", skip_serializing_if = "Option::is_none")]
    pub plyr_id: Option<String>,
    /// PLYR game id.
    #[serde(default, rename = "gameId", skip_serializing_if = "Option::is_none")]
    pub game_id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Optional room allow-list: exact names or `prefix*` patterns (see [`RoomAllow`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Verifies socket tokens.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|(a, _)| a).collect();
        f.debug_struct("Verifier").field("algs", &algs).finish()
    }
}

impl Verifier {
    /// Builds the verifier from settings (reads the public key files).
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        // Production mode without a configured secret: no HS256 key at all, so no HS256 token
        // verifies (never a fallback to the public development secret).
        let mut keys: Vec<_> = s
            .jwt_secret
            .iter()
            .map(|secret| {
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            })
            .collect();
        let session_key = match &s.game.session_public_key_file {
            Some(path) => std::fs::read(path).ok().map(|pem| pem_body(&pem)),
            None => None,
        };
        for k in &s.jwt_keys {
            let pem = std::fs::read(&k.public_key_file).map_err(|source| ConfigError::Read {
                path: k.public_key_file.clone(),
                source,
            })?;
            if session_key.as_ref().is_some_and(|sk| *sk == pem_body(&pem)) {
                return Err(ConfigError::Invalid {
                    field: "jwt_keys.public_key_file",
                    reason: format!(
                        "{} is the PLYR session key ([game] session_public_key_file): session \
                         tokens authenticate for their own game's rooms only, never as native \
                         tokens; remove it from jwt_keys",
                        k.public_key_file.display()
                    ),
                });
            }
            let (alg, key) = match k.alg.as_str() {
                "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
                _ => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
            };
            let key = key.map_err(|e| ConfigError::Invalid {
                field: "jwt_keys.public_key_file",
                reason: format!("{}: {e}", k.public_key_file.display()),
            })?;
            keys.push((alg, key));
        }
        Ok(Self { keys })
    }

    /// Verifies `token` and returns who it names.
    ///
    /// A token with a `gameId` claim is a PLYR session token, never a native one, whatever key
    /// signed it: it is refused here and left to the game façade, which admits it to its own
    /// game's rooms only (a PLYR key listed in `jwt_keys` by mistake must not make session tokens
    /// native).
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let claims: Claims = verify_claims(token, &self.keys)?;
        if claims.game_id.is_some() {
            return Err(AuthError::Invalid(
                "a PLYR session token (gameId claim) is not a native socket token".into(),
            ));
        }
        let member = match (claims.plyr_id, claims.sub) {
            (Some(p), _) if !p.is_empty() => p.to_lowercase(),
            (_, Some(s)) if !s.is_empty() => s,
            _ => return Err(AuthError::Invalid("no sub (or plyrId) claim".into())),
        };
        if member.len() > 255 {
            return Err(AuthError::Invalid("member id longer than 255 bytes".into()));
        }
        if claims
            .name
            .as_ref()
            .is_some_and(|n| n.len() > MAX_NAME_BYTES)
        {
            return Err(AuthError::Invalid(format!(
                "name claim longer than {MAX_NAME_BYTES} bytes"
            )));
        }
        let allow = claims
            .rooms
            .map(RoomAllow::new)
            .transpose()
            .map_err(AuthError::Invalid)?;
        Ok(Identity {
            member: MemberId::from(member),
            name: claims.name,
            kind: MemberKind::Player,
            exp: Some(claims.exp),
            only_room: None::<RoomId>,
            access: Access::Native(allow),
        })
    }
}

/// The base64 body of a PEM file (no armour lines, no whitespace): two files holding the same key
/// in the same encoding compare equal.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().bytes())
        .collect()
}

/// Seconds of clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: f64 = 5.0;

/// Verifies a token against pinned (algorithm, key) pairs and decodes its claims.
///
/// The signature is checked by `jsonwebtoken`; the time claims here, because RFC 7519 makes
/// `exp` and `nbf` NumericDates (any JSON number, fractions allowed) where the library accepts
/// integers only. `exp` is required and must not have passed; `nbf`, when present, must have
/// come (both with [`LEEWAY_SECS`]). `exp` reaches the typed claims as whole seconds.
pub fn verify_claims<C: serde::de::DeserializeOwned>(
    token: &str,
    keys: &[(Algorithm, DecodingKey)],
) -> Result<C, AuthError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
    let Some((alg, key)) = keys.iter().find(|(a, _)| *a == header.alg) else {
        return Err(AuthError::Invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    };
    let mut v = Validation::new(*alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let mut claims =
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &v)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;
    let now = unix_now() as f64;
    let exp = match claims.get("exp") {
        None => return Err(AuthError::Invalid("missing required claim: exp".into())),
        Some(e) => {
            numeric_date(e).ok_or_else(|| AuthError::Invalid("exp must be a NumericDate".into()))?
        }
    };
    if exp + LEEWAY_SECS < now {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf)
            .ok_or_else(|| AuthError::Invalid("nbf must be a NumericDate".into()))?;
        if nbf > now + LEEWAY_SECS {
            return Err(AuthError::Invalid("token not valid yet (nbf)".into()));
        }
    }
    // A finite, non-negative number; as whole seconds it fits u64 (saturating above).
    claims.insert("exp".into(), serde_json::Value::from(exp.floor() as u64));
    serde_json::from_value(serde_json::Value::Object(claims))
        .map_err(|e| AuthError::Invalid(e.to_string()))
}

/// An RFC 7519 NumericDate: a finite, non-negative JSON number of seconds.
fn numeric_date(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().filter(|t| t.is_finite() && *t >= 0.0)
}

/// Signs an HS256 socket token (the `token` helper command and tests).
pub fn sign_hs256(secret: &str, sub: &str, name: Option<&str>, ttl_secs: u64) -> String {
    let claims = Claims {
        sub: Some(sub.into()),
        name: name.map(Into::into),
        exp: unix_now() + ttl_secs,
        ..Claims::default()
    };
    // HS256 signing of a serializable struct cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing succeeds")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Constant-time equality for secrets.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
