//! `GET /v1/ws`: authentication before the upgrade, socket limits, and the hand-off to the
//! per-connection task in [`conn`].

pub mod conn;
mod requests;

pub use requests::parse_request;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::auth::AuthError;
use crate::conn::Conn;

/// Query string of the upgrade request.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// The token, for clients that cannot set headers (browsers).
    token: Option<String>,
}

/// The token from `Authorization: Bearer` or `?token=`.
pub fn bearer<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or(query)
        .filter(|t| !t.is_empty())
}

fn unauthorized(e: &AuthError) -> Response {
    let code = match e {
        AuthError::Missing => "missing_token",
        AuthError::Invalid(_) => "invalid_token",
        AuthError::Expired => "token_expired",
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({ "error": code, "message": e.to_string() })),
    )
        .into_response()
}

/// The upgrade handler: 401 with a JSON body and no socket unless the token verifies.
pub async fn upgrade(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let identity = match bearer(&headers, q.token.as_deref()) {
        None => return unauthorized(&AuthError::Missing),
        Some(token) => match app.verifier.verify(token) {
            Ok(id) => id,
            Err(native) => match crate::facade::verify_socket_token(&app, token) {
                Some(Ok(id)) => id,
                Some(Err(e)) => return unauthorized(&e),
                None => return unauthorized(&native),
            },
        },
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let s = &app.settings;
    let (conn, outbox) = Conn::new(identity, s.outbox_capacity);
    let ws = ws
        // Small buffers: the library defaults (128 KiB each) would cost far more than the
        // whole per-socket budget. Reads grow on demand up to the message limit; writes are
        // coalesced up to 4 KiB per syscall when a socket has a backlog of events.
        .read_buffer_size(512)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(s.max_message_bytes.max(64 * 1024) * 4)
        .max_message_size(s.max_message_bytes)
        .max_frame_size(s.max_message_bytes);
    let task_app = app.clone();
    ws.on_upgrade(move |socket| {
        let tracker = task_app.tracker.clone();
        let span = tracing::debug_span!("conn", conn = %conn.id(), member = %conn.member());
        tracker.track_future(tracing::Instrument::instrument(
            conn::run(socket, task_app, conn, outbox),
            span,
        ))
    })
}
