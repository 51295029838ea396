//! Façade REST calls for a room owned by another node, passed to that node over HTTP.
//!
//! A façade's rules run next to the room's actor and its indexes (a lobby's players and invite
//! code, a video room's team), so a call naming one room — `/lobbies/{id}…`, `/api/v1/rooms/{uuid}…`
//! and a lobby's event stream (`/lobbies-sse/{id}/events`, relayed as it comes) — is served by
//! the room's owner, and a game task poll (`/task/status/{id}`) by the node that
//! ran the task: any other node forwards it, as it came, to the owner's HTTP
//! address (its heartbeat key holds it) and returns the answer unchanged. A forwarded request
//! carries `x-rollcall-forwarded`, and is never forwarded again (no loops while ownership moves).
//! Calls that name no room are served where they arrive (creates), or cluster-wide (the lobby
//! listing, `lists.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{link, Cluster};
use crate::app::App;
use crate::ids::RoomId;

/// The header a forwarded request carries (the forwarding node's id).
pub const FORWARDED: &str = "x-rollcall-forwarded";
/// The largest body forwarded (the façades' own limit).
const MAX_BODY: usize = 64 * 1024;

/// What a façade path names: a room, a room by a cluster-wide name, or a game task.
enum Target {
    Room(RoomId),
    /// A video room by its `friendly_url` (within the caller's team).
    VideoName(String),
    /// A lobby by its invite code.
    Code(String),
    Task(String),
}

fn target_of(path: &str) -> Option<Target> {
    let task = path
        .strip_prefix("/api")
        .unwrap_or(path)
        .strip_prefix("/task/status/");
    match task {
        Some(id) if !id.is_empty() && !id.contains('/') => Some(Target::Task(id.to_owned())),
        _ => room_of(path),
    }
}

/// The room a façade path names, if any.
fn room_of(path: &str) -> Option<Target> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("lobbies"), Some(id), _, _) if id != "code" && !id.is_empty() => Some(Target::Room(
            RoomId::from(format!("{}{id}", crate::facade::lobby::model::ROOM_PREFIX)),
        )),
        (Some("lobbies-sse"), Some(id), Some("events"), None) if !id.is_empty() => {
            Some(Target::Room(RoomId::from(format!(
                "{}{id}",
                crate::facade::lobby::model::ROOM_PREFIX
            ))))
        }
        (Some("lobbies"), Some("code"), Some(code), Some("players")) if !code.is_empty() => {
            Some(Target::Code(code.to_ascii_uppercase()))
        }
        (Some("api"), Some("v1"), Some("rooms"), Some(room)) => match uuid::Uuid::parse_str(room) {
            Ok(uuid) => Some(Target::Room(crate::facade::video::room_key(uuid))),
            Err(_) if room == "live" || room.is_empty() => None,
            Err(_) => Some(Target::VideoName(room.to_owned())),
        },
        _ => None,
    }
}

/// Resolves a room named by a cluster-wide name to the room (unknown: served here, which
/// answers as for any unknown name).
async fn by_name(
    app: &App,
    c: &Cluster,
    headers: &axum::http::HeaderMap,
    t: Option<Target>,
) -> Option<Target> {
    let (ns, name) = match t {
        Some(Target::VideoName(name)) => {
            let team = crate::facade::video::auth::authenticate(&app.facades.video, headers);
            (crate::facade::video::names_ns(&team.ok()?.id), name)
        }
        Some(Target::Code(code)) => (crate::facade::lobby::CODES_NS.to_owned(), code),
        other => return other,
    };
    let room = c.name_holder(&ns, &name).await.ok()??;
    Some(Target::Room(RoomId::from(room)))
}

/// The middleware: forwards a call for a room owned elsewhere, else serves it here.
pub async fn middleware(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(c) = app.registry.cluster().cloned() else {
        return next.run(req).await;
    };
    if req.headers().contains_key(FORWARDED) {
        return next.run(req).await;
    }
    if !c.redis_up() {
        return next.run(req).await;
    }
    if super::lists::is_list(&req) {
        return super::lists::merged(&c, req, next).await;
    }
    let target = by_name(&app, &c, req.headers(), target_of(req.uri().path())).await;
    let addr = match target {
        None | Some(Target::VideoName(_) | Target::Code(_)) => None,
        Some(Target::Room(room)) if c.owned.contains_key(&room) => None,
        Some(Target::Room(room)) => owner_addr(&c, &room).await,
        Some(Target::Task(id)) if app.facades.game.tasks.contains(&id) => None,
        Some(Target::Task(id)) => match link::task_node(&c, &id).await {
            Ok(Some(node)) if node != c.node_id() => {
                let resp = match link::node_addr(&c, &node).await {
                    Ok(Some(addr)) if !addr.is_empty() => forward(&c, &addr, req).await,
                    // Its heartbeat key is gone: the node is dead.
                    Ok(None) => return stored_or(&c, &id, None, req, next).await,
                    // Alive at an address not known yet, or Redis did not say.
                    _ => unavailable("the node running this task did not answer; retry shortly"),
                };
                if resp.status() != StatusCode::SERVICE_UNAVAILABLE {
                    return resp;
                }
                // Its node did not answer (it just died): the result it stored, if done.
                return stored_or(&c, &id, Some(resp), Request::default(), next).await;
            }
            _ => None,
        },
    };
    match addr {
        Some(addr) => forward(&c, &addr, req).await,
        None => next.run(req).await,
    }
}

/// 503 `{error: "unavailable", message}` with `Retry-After: 1`.
pub(super) fn unavailable(message: &str) -> Response {
    let body = serde_json::json!({ "error": "unavailable", "message": message });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        axum::Json(body),
    )
        .into_response()
}

/// A poll of a task whose node is down: the status body that node stored in Redis once the
/// task was done, served as it would have (200 JSON); else `failed` (its forwarding's answer)
/// or, without one, this node's own answer (`NOT_FOUND`: the result was never stored).
async fn stored_or(
    c: &Cluster,
    id: &str,
    failed: Option<Response>,
    req: Request,
    next: Next,
) -> Response {
    // No answer from a node that may be alive: only a final result. Its node is gone: what the
    // task polls as if it was cut off, too.
    let lost = failed.is_none();
    if let Ok(Some(body)) = link::task_result(c, id, lost).await {
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        return r;
    }
    match failed {
        Some(resp) => resp,
        None => next.run(req).await,
    }
}

/// The HTTP address of the room's owner, when it is another live node.
async fn owner_addr(c: &Cluster, room: &RoomId) -> Option<String> {
    let holder = link::holder(c, room.as_str()).await.ok()??;
    if holder == c.node_id() {
        return None;
    }
    link::node_addr(c, &holder)
        .await
        .ok()?
        .filter(|a| !a.is_empty())
}

/// The client of streamed answers (the lobby event stream): no overall timeout, but a stream
/// silent for three of its keep-alive periods (an owner gone without a word) ends, so its
/// client reconnects.
fn stream_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(crate::facade::lobby::sse::KEEP_ALIVE * 3)
            .tcp_keepalive(Duration::from_secs(15))
            .build()
            // Building a client without TLS settings only fails if the system is broken.
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

pub(super) fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            // Building a client without TLS settings only fails if the system is broken.
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

async fn forward(c: &Arc<Cluster>, addr: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{addr}{path}");
    // An event stream is relayed as it comes, for as long as it lasts (it ends with the owner).
    let streamed = parts.uri.path().starts_with("/lobbies-sse/");
    let http = if streamed { stream_client() } else { client() };
    let mut out = http.request(parts.method.clone(), url).body(bytes);
    for (k, v) in &parts.headers {
        if k != axum::http::header::HOST && k != axum::http::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    out = out.header(FORWARDED, c.node_id());
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "forwarding to the room's owner failed");
            return unavailable("the node owning this room did not answer; retry shortly");
        }
    };
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if let Ok(name) = HeaderName::from_bytes(k.as_str().as_bytes()) {
            if name != axum::http::header::TRANSFER_ENCODING {
                builder = builder.header(name, v.as_bytes());
            }
        }
    }
    let body = if streamed {
        Body::from_stream(resp.bytes_stream())
    } else {
        Body::from(resp.bytes().await.unwrap_or_default())
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
