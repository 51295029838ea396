//! Room tokens: how web participants join a video room over the WebSocket (SEED-APIS §3.1).
//!
//! A room token is an HS256 JWT signed with the team's developer key, claims `td` (team id), `rd`
//! (room UUID, or its `friendly_url`), and optional `ud` (external user id), `u` (user name),
//! `role`, `avatar`, `iat`, `exp`, `nbf`. Verification:
//! 1. the payload is decoded *unverified* only to see whether the token is ours (`td`/`rd`
//!    present; otherwise `None`: another verifier's business) and to pick the team by `td`;
//! 2. the token is then verified with that team's key only, the algorithm pinned to HS256
//!    (a token whose header names any other algorithm is refused before any key is used);
//! 3. `exp` and `nbf` are enforced when present (5 s leeway). `exp` is optional, as the vendor
//!    documents; such a socket stays open until it leaves (see `protocol/video.md`);
//! 4. `rd` must name a live room of that team: the identity admits that room only.
//!
//! The member id is `ud`, or a fresh UUID when the token has none (each such connection is a new
//! participant). What the token says about the participant that the room core does not keep
//! (role, external id) is remembered in [`Seats`] for the live listings.

use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{room_key, VideoState};
use crate::auth::AuthError;
use crate::auth::Identity;
use crate::ids::{MemberId, RoomId};
use crate::protocol::MemberKind;

/// Most remembered seats; beyond it, seats older than [`SEAT_TTL`] are dropped first.
pub const SEATS_MAX: usize = 100_000;
/// How long a seat is kept for sure when the map is full.
pub const SEAT_TTL: Duration = Duration::from_secs(3600);
/// Longest `ud` or `u` accepted, in bytes.
const MAX_CLAIM: usize = 255;

/// The claims of a room token.
#[derive(Debug, Deserialize)]
struct RoomClaims {
    td: String,
    rd: String,
    #[serde(default)]
    ud: Option<Value>,
    #[serde(default)]
    u: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
}

/// What a web participant's token said that the room does not keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Seat {
    /// The `role` claim.
    pub role: Option<String>,
    /// The `ud` claim.
    pub external_id: Option<String>,
    at: Instant,
}

/// Seats by (room, member), bounded by [`SEATS_MAX`].
#[derive(Debug, Default)]
pub struct Seats(DashMap<(RoomId, MemberId), Seat>);

impl Seats {
    /// Remembers what `member`'s token said; skipped (the listing falls back to defaults) if the
    /// map is full of recent seats.
    pub fn record(
        &self,
        room: RoomId,
        member: MemberId,
        role: Option<String>,
        external_id: Option<String>,
    ) {
        let key = (room, member);
        if self.0.len() >= SEATS_MAX && !self.0.contains_key(&key) {
            self.0.retain(|_, s| s.at.elapsed() < SEAT_TTL);
            if self.0.len() >= SEATS_MAX {
                return;
            }
        }
        self.0.insert(
            key,
            Seat {
                role,
                external_id,
                at: Instant::now(),
            },
        );
    }

    /// The seat of `member` in `room`.
    pub fn get(&self, room: &RoomId, member: &str) -> Option<Seat> {
        self.0
            .get(&(room.clone(), MemberId::from(member)))
            .map(|s| s.clone())
    }

    /// Forgets every seat of a deleted room.
    pub fn forget_room(&self, room: &RoomId) {
        self.0.retain(|(r, _), _| r != room);
    }
}

/// The unverified payload, if `token` looks like a room token (has `td` or `rd`).
fn peek(token: &str) -> Option<serde_json::Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&raw).ok()? {
        Value::Object(m) if m.contains_key("td") || m.contains_key("rd") => Some(m),
        _ => None,
    }
}

/// Verifies `token` if it is a room token; `None` if it is not one.
pub fn verify(state: &VideoState, token: &str) -> Option<Result<Identity, AuthError>> {
    let payload = peek(token)?;
    Some(verify_room_token(state, token, &payload))
}

fn verify_room_token(
    state: &VideoState,
    token: &str,
    payload: &serde_json::Map<String, Value>,
) -> Result<Identity, AuthError> {
    let invalid = |m: &str| AuthError::Invalid(m.to_owned());
    let td = payload
        .get("td")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("a room token needs a string td (team) claim"))?;
    let team = state
        .team(td)
        .ok_or_else(|| invalid("the td claim names no team"))?;
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
    if header.alg != Algorithm::HS256 {
        return Err(invalid("room tokens must be signed with HS256"));
    }
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.leeway = 5;
    let claims = jsonwebtoken::decode::<RoomClaims>(
        token,
        &DecodingKey::from_secret(team.key().as_bytes()),
        &v,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
        _ => AuthError::Invalid(e.to_string()),
    })?
    .claims;
    if claims.td != team.id.as_str() {
        return Err(invalid("the td claim names no team"));
    }
    let room = state
        .directory
        .resolve(&team.id, &claims.rd)
        .ok_or_else(|| invalid("the rd claim names no room of this team"))?;
    let ud = match claims.ud {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(invalid("the ud claim must be a string")),
    };
    if ud.as_ref().is_some_and(|u| u.len() > MAX_CLAIM)
        || claims.u.as_ref().is_some_and(|u| u.len() > MAX_CLAIM)
    {
        return Err(invalid("the ud and u claims are at most 255 bytes"));
    }
    let member = MemberId::from(
        ud.clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
    );
    let only = room_key(room.uuid);
    state
        .seats
        .record(only.clone(), member.clone(), claims.role, ud);
    Ok(Identity {
        member,
        name: claims.u.filter(|u| !u.is_empty()),
        kind: MemberKind::Web,
        exp: claims
            .exp
            .filter(|e| e.is_finite() && *e > 0.0)
            .map(|e| e as u64),
        only_room: Some(only),
        access: crate::auth::Access::Room,
    })
}

/// Signs a room token: `claims` (an object with at least `td` and `rd`) with `developer_key`,
/// HS256. For the dev `token` command and examples.
pub fn sign(developer_key: &str, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(developer_key.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens without `td`/`rd` are not room tokens: another verifier decides.
    #[test]
    fn other_tokens_are_not_ours() {
        let state = VideoState::new(&crate::config::Settings::default()).unwrap();
        let native = crate::auth::sign_hs256("some-secret-123", "alice", None, 60);
        assert!(verify(&state, &native).is_none());
        assert!(verify(&state, "not-a-jwt").is_none());
        let ours = sign(
            super::super::DEV_DEVELOPER_KEY,
            &serde_json::json!({"td": "dev-team", "rd": "nowhere"}),
        )
        .unwrap();
        assert!(matches!(
            verify(&state, &ours),
            Some(Err(AuthError::Invalid(_)))
        ));
    }
}
