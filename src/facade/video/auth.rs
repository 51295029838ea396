//! REST authentication: the team's developer key in the three forms the vendor documents
//! (SEED-APIS §3.1), every comparison in constant time:
//! 1. `Authorization: Basic base64(TEAM_ID:DEVELOPER_KEY)` (the curl `--user` examples);
//! 2. `Authorization: Bearer base64(TEAM_ID:DEVELOPER_KEY)` (older docs, the Java samples);
//! 3. `Authorization: Bearer DEVELOPER_KEY` (newer docs, the OpenAPI, the vendor middleware).
//!
//! Scheme names are case-insensitive. Anything else is 401 `{"message":"Unauthenticated."}`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;

use super::error::VideoError;
use super::{Team, TeamId, VideoState};
use crate::app::App;
use crate::auth::secret_eq;

/// The authenticated team of a request (an extractor: 401 unless the credentials verify).
#[derive(Debug, Clone)]
pub struct AuthTeam(pub TeamId);

impl FromRequestParts<App> for AuthTeam {
    type Rejection = VideoError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, VideoError> {
        authenticate(&app.facades.video, &parts.headers).map(|t| AuthTeam(t.id.clone()))
    }
}

/// The team whose developer key the `Authorization` header carries.
pub fn authenticate<'a>(
    state: &'a VideoState,
    headers: &HeaderMap,
) -> Result<&'a Team, VideoError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(VideoError::Unauthenticated)?
        .trim();
    let (scheme, credentials) = value.split_once(' ').ok_or(VideoError::Unauthenticated)?;
    let credentials = credentials.trim();
    let team = if scheme.eq_ignore_ascii_case("basic") {
        by_pair(state, credentials)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        by_key(state, credentials).or_else(|| by_pair(state, credentials))
    } else {
        None
    };
    team.ok_or(VideoError::Unauthenticated)
}

/// Form 3: the bare developer key. Every team's key is compared (no early exit), so the time
/// taken does not reveal which team, if any, matched.
fn by_key<'a>(state: &'a VideoState, key: &str) -> Option<&'a Team> {
    let mut found = None;
    for t in state.teams() {
        if secret_eq(key.as_bytes(), t.key().as_bytes()) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

/// Forms 1 and 2: `base64(team:key)`; the team id selects the key, which is compared in
/// constant time.
fn by_pair<'a>(state: &'a VideoState, b64: &str) -> Option<&'a Team> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(b64)
                .ok()
        })?;
    let text = String::from_utf8(raw).ok()?;
    let (team, key) = text.split_once(':')?;
    let t = state.team(team)?;
    secret_eq(key.as_bytes(), t.key().as_bytes()).then_some(t)
}
