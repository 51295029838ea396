//! `GET /panel/{room}`: a live participant panel page, plain HTML/CSS/JS compiled into the binary
//! (`include_str!`, no build step).
//!
//! The server only hands out static bytes; everything live happens in the browser, over the
//! public WebSocket protocol (`watch`, then events; `sync` after a version gap). The page reads
//! its token from the URL *fragment* (`#token=<jwt>&admin=<admin token>`), which browsers never
//! send to the server, so tokens stay out of access logs and `Referer` headers. The room name is
//! read from the path by the script, never interpolated into the HTML here.
//!
//! - `panel.html`, `panel.css`, `panel.js`: the page and its assets (served under
//!   `/panel/assets/`, relative to the page, so a path prefix at a reverse proxy still works).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::App;
use crate::ids::valid_room_name;

const HTML: &str = include_str!("panel.html");
const CSS: &str = include_str!("panel.css");
const JS: &str = include_str!("panel.js");

/// The page's Content-Security-Policy: its own script and style only, WebSocket and fetch to
/// the same origin only, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The panel routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/panel/{room}", get(page))
        .route("/panel/assets/panel.css", get(css))
        .route("/panel/assets/panel.js", get(js))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /panel/{room}`: the page (400 for a name no room can have).
pub async fn page(Path(room): Path<String>) -> Response {
    if !valid_room_name(&room) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "room names are 1-128 characters of [A-Za-z0-9_.:@-]\n",
        )
            .into_response();
    }
    let mut r = asset("text/html; charset=utf-8", HTML);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// `GET /panel/assets/panel.css`.
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /panel/assets/panel.js`.
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}
