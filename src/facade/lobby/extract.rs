//! Request extractors shared by every lobby route.
//!
//! [`Ctx`] is the guard every route runs first, in NestJS's order: the `api-key` header (401),
//! then the lobby configuration from `?name=` (400). [`JsonBody`] reads the body as JSON without
//! insisting on a `Content-Type` (Unity's `UnityWebRequest` does not always send one) and turns
//! an oversized body into the vendor-style 413.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::Value;

use super::error::LobbyError;
use super::index::Scope;
use crate::app::App;

/// The header carrying the project key.
pub const API_KEY_HEADER: &str = "api-key";
/// The header carrying the player's own token (checked in strict-requester mode only).
pub const CLIENT_TOKEN_HEADER: &str = "client-auth-token";

/// An authenticated request's project, lobby config and query parameters.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Project and config.
    pub scope: Scope,
    /// Every query parameter (last one wins when repeated).
    pub query: HashMap<String, String>,
    /// The `client-auth-token` header, if sent.
    client_token: Option<String>,
    /// The caller's address (per-address limits).
    pub peer: Option<std::net::IpAddr>,
}

impl Ctx {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A required query parameter: 400 `<name> is required` when missing or empty.
    pub fn required(&self, name: &str) -> Result<&str, LobbyError> {
        self.param(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| LobbyError::BadRequest(format!("{name} query parameter is required")))
    }

    /// In strict-requester mode (`[lobby] strict_requester`), proves that the caller is
    /// `player` acting on `room` (`lobby:<id>`; `None` for a lobby not created yet):
    /// `client-auth-token` must be a socket token that verifies (the native verifier: configured
    /// secret or keys), names `player`, and — when it carries a `rooms` claim — admits `room`
    /// (a new lobby: any `lobby:` room). 401 without a valid token, 403 for a token of another
    /// player or room. Off (PlayFlow's behaviour), any id is trusted.
    pub fn act_as(&self, app: &App, player: &str, room: Option<&str>) -> Result<(), LobbyError> {
        if !app.settings.lobby.strict_requester {
            return Ok(());
        }
        let token = self
            .client_token
            .as_deref()
            .ok_or(LobbyError::Unauthorized("client-auth-token is required"))?;
        let who = app
            .verifier
            .verify(token)
            .map_err(|_| LobbyError::Unauthorized("Invalid client-auth-token"))?;
        if who.member.as_str() != player {
            return Err(LobbyError::Forbidden(
                "client-auth-token does not belong to the requesting player".into(),
            ));
        }
        if let crate::conn::Access::Native(Some(allow)) = &who.access {
            if !allow.admits(room.unwrap_or("lobby:")) {
                return Err(LobbyError::Forbidden(
                    "client-auth-token's rooms claim does not admit this lobby".into(),
                ));
            }
        }
        Ok(())
    }

    /// An optional boolean query parameter (`true`/`false`/`1`/`0`; empty = absent).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, LobbyError> {
        match self.param(name) {
            None | Some("") => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(LobbyError::BadRequest(format!(
                "{name} must be a boolean value"
            ))),
        }
    }
}

impl FromRequestParts<App> for Ctx {
    type Rejection = LobbyError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, LobbyError> {
        let key = parts
            .headers
            .get(API_KEY_HEADER)
            .map(|v| v.as_bytes())
            .filter(|v| !v.is_empty());
        let lobby = &app.facades.lobby;
        let tenant = lobby.tenant(key)?;
        let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(|e| LobbyError::BadRequest(e.body_text()))?;
        // `name` everywhere; the SDK's SSE client sends the same value as `lobby-config`.
        let config = query
            .get("name")
            .or_else(|| query.get("lobby-config"))
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                LobbyError::BadRequest(
                    "name query parameter (lobby configuration) is required".into(),
                )
            })?;
        let config = lobby.config(config)?;
        let client_token = parts
            .headers
            .get(CLIENT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned());
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::listener::Peer>>()
            .map(|c| c.0 .0.ip());
        Ok(Self {
            scope: Scope { tenant, config },
            query,
            client_token,
            peer,
        })
    }
}

/// A JSON request body (any `Content-Type`); an empty body reads as `{}`.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = LobbyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, LobbyError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                LobbyError::PayloadTooLarge
            } else {
                LobbyError::BadRequest(r.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Object(Default::default())));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| LobbyError::BadRequest(format!("Invalid JSON body: {e}")))
    }
}
