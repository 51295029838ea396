//! `GET /v1/ws`: authentication before the upgrade, socket limits, and the hand-off to the
//! per-connection task in [`conn`].

mod access;
pub mod conn;
mod requests;
mod socket;
pub mod upgrade;

pub use requests::parse_request;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::auth::AuthError;
use crate::conn::{Access, Conn, Identity};
use crate::connection::Upgrading;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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

/// The operator's socket identity (`admin_token` as the socket token): member `operator`.
fn operator() -> Identity {
    Identity {
        member: crate::ids::MemberId::from("operator"),
        name: Some("operator".into()),
        kind: crate::protocol::MemberKind::Player,
        exp: None,
        only_room: None,
        access: Access::Operator,
    }
}

/// The upgrade handler: 401 with a JSON body and no socket unless the token verifies.
pub async fn upgrade(
    State(app): State<App>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(q): Query<WsQuery>,
    upgrading: Option<Extension<Upgrading>>,
    ws: Result<upgrade::Upgrade, upgrade::UpgradeError>,
) -> Response {
    let identity = match bearer(&headers, q.token.as_deref()) {
        None => return unauthorized(&AuthError::Missing),
        // The operator token only where one is configured (or in development mode).
        Some(token)
            if app.settings.admin_token.as_deref().is_some_and(|admin| {
                crate::auth::secret_eq(token.as_bytes(), admin.as_bytes())
            }) =>
        {
            operator()
        }
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
    if let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<crate::listener::Peer>>() {
        conn.set_peer(peer.0.ip());
    }
    // Small buffers: the library defaults (128 KiB each) would cost far more than the whole
    // per-socket budget. Reads grow on demand up to the message limit. Server messages bypass
    // tungstenite's write buffer (see `socket`: batched up to 4 KiB per syscall, larger ones
    // written straight from their shared bytes, nothing kept between writes), so it only ever
    // holds control frames (ping, pong, close).
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * 1024)
        .max_message_size(Some(s.max_message_bytes))
        .max_frame_size(Some(s.max_message_bytes));
    let task_app = app.clone();
    if let Some(Extension(u)) = upgrading {
        u.started(); // the 101 is answered below: the upgrade deadline starts
    }
    let span = tracing::debug_span!("conn", conn = %conn.id(), member = %conn.member());
    let (response, run) = ws.answer(config, move |socket| {
        tracing::Instrument::instrument(conn::run(socket, task_app, conn, outbox), span)
    });
    tokio::spawn(app.tracker.track_future(run));
    response
}
