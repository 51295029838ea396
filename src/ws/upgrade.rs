//! The WebSocket opening handshake (RFC 6455 §4.2, HTTP/1.1), done here instead of by axum's
//! `WebSocketUpgrade` so the connection task owns the tokio-tungstenite stream itself: it writes
//! large messages as raw fragments (see [`super::conn`]), which axum's wrapper cannot.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// The connection under an upgraded socket.
pub type Io = TokioIo<hyper::upgrade::Upgraded>;

/// The server end of an upgraded connection.
pub type Socket = WebSocketStream<Io>;

/// A valid upgrade request, not answered yet.
#[derive(Debug)]
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request to the socket endpoint is not a WebSocket upgrade.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Not a GET.
    #[error("a WebSocket upgrade must be a GET request")]
    MethodNotGet,
    /// `Connection` lacks `upgrade`, or `Upgrade` is not `websocket`.
    #[error("`Connection: upgrade` and `Upgrade: websocket` are required")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("`Sec-WebSocket-Version: 13` is required")]
    BadVersion,
    /// No `Sec-WebSocket-Key`.
    #[error("`Sec-WebSocket-Key` is missing")]
    MissingKey,
    /// The HTTP connection cannot be taken over (not HTTP/1.1, or already upgraded).
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            Self::MethodNotGet => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::NotUpgradable => (StatusCode::UPGRADE_REQUIRED, "upgrade_required"),
            _ => (StatusCode::BAD_REQUEST, "bad_upgrade"),
        };
        let body = json!({ "error": code, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

fn header_eq(headers: &HeaderMap, key: HeaderName, value: &str) -> bool {
    headers
        .get(&key)
        .is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_has_token(headers: &HeaderMap, key: HeaderName, token: &str) -> bool {
    headers.get_all(&key).iter().any(|h| {
        h.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = UpgradeError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeError::MethodNotGet);
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !header_eq(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(UpgradeError::NotUpgrade);
        }
        if !header_eq(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(UpgradeError::BadVersion);
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(UpgradeError::MissingKey)?
            .clone();
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Self { key, on_upgrade })
    }
}

impl Upgrade {
    /// The `101 Switching Protocols` answer, and the future that waits for the upgraded socket
    /// and runs `task` on it (the caller spawns it, tracked for shutdown). A connection that
    /// fails to upgrade after the answer (the peer went away) runs nothing.
    pub fn answer<T, Fut>(
        self,
        config: WebSocketConfig,
        task: T,
    ) -> (Response, impl Future<Output = ()> + Send + 'static)
    where
        T: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = response.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = derive_accept_key(self.key.as_bytes());
        // Base64 text is always a valid header value.
        if let Ok(v) = HeaderValue::try_from(accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        let on_upgrade = self.on_upgrade;
        let run = async move {
            let Ok(upgraded) = on_upgrade.await else {
                tracing::debug!("the peer left before the upgrade completed");
                return;
            };
            let io = TokioIo::new(upgraded);
            let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            task(socket).await;
        };
        (response, run)
    }
}
