//! `GET /lobbies-sse/{id}/events`: the legacy PlayFlow event stream, fed by the lobby's room.
//!
//! The stream is a server-side watcher of the room (a [`Conn`] with no socket): every room event
//! (whoever caused it: REST, a WebSocket, the liveness task) wakes it, and it answers with the
//! vendor's events — `connected` `{lobby}` first, then `lobby:updated` with the full lobby
//! rendered from a fresh snapshot (a burst of events is coalesced into one update), and
//! `lobby:deleted` `{lobbyId}` when the room closes. Each event's `id` is the room version.
//! When the stream's own player is no longer in the lobby (left, kicked, timed out), the update
//! showing it is sent and the stream ends (a reconnect then gets 403). An open stream keeps its
//! player alive for the inactivity timeout.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::HeaderName;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;

use super::error::LobbyError;
use super::extract::Ctx;
use super::index::LobbyEntry;
use super::model::{render, Lobby, LobbyId};
use crate::app::App;
use crate::auth::Identity;
use crate::conn::Conn;
use crate::frame::Kind;
use crate::ids::MemberId;
use crate::protocol::MemberKind;

/// Comment lines sent on an idle stream, so proxies keep it and dead peers are noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Detaches the watcher and ends the player's stream in the liveness book, however the stream
/// ends (client gone, lobby deleted, shutdown).
struct Guard {
    entry: Arc<LobbyEntry>,
    conn: Arc<Conn>,
    player: MemberId,
    counted: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.counted {
            self.entry.live.stream_closed(&self.player);
        }
        let (handle, id) = (self.entry.handle.clone(), self.conn.id());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.detach(id, false).await });
        }
    }
}

struct Feed {
    app: App,
    guard: Guard,
    rx: crate::conn::Receiver,
    first: Option<Event>,
    last: u64,
    done: bool,
}

fn event(name: &str, version: u64, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .id(version.to_string())
        // Lobby JSON (compact, no raw newlines) always serializes.
        .data(serde_json::to_string(data).unwrap_or_default())
}

fn deleted(id: &LobbyId, version: u64) -> Event {
    event(
        "lobby:deleted",
        version,
        &json!({ "lobbyId": id.to_string() }),
    )
}

impl Feed {
    /// The next vendor event, or `None` to end the stream.
    async fn next(&mut self) -> Option<Event> {
        if let Some(ev) = self.first.take() {
            return Some(ev);
        }
        if self.done {
            return None;
        }
        let id = self.guard.entry.id;
        loop {
            let frame = tokio::select! {
                f = self.rx.recv() => f,
                _ = self.guard.conn.closed() => return None,
                _ = self.app.shutdown.cancelled() => return None,
            };
            // Coalesce whatever else is already queued.
            let mut newest = 0;
            let mut closed = false;
            for f in std::iter::once(frame).chain(std::iter::from_fn(|| self.rx.try_recv())) {
                match f.kind() {
                    Kind::Closed => closed = true,
                    _ => newest = newest.max(f.version().unwrap_or(0)),
                }
            }
            if closed {
                self.done = true;
                return Some(deleted(&id, self.last + 1));
            }
            if newest <= self.last {
                continue;
            }
            let snap = self
                .guard
                .entry
                .handle
                .custom(move |ops| {
                    let s = ops.snapshot();
                    render(&id, &s).map(|l| (l, s.version))
                })
                .await;
            let (lobby, version) = match snap {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(lobby = %id, error = %e, "lobby unreadable for its event stream");
                    return None;
                }
                Err(_) => {
                    self.done = true;
                    return Some(deleted(&id, self.last + 1));
                }
            };
            self.last = version;
            if !is_player(&lobby, &self.guard.player) {
                self.done = true;
            }
            return Some(event("lobby:updated", version, &lobby));
        }
    }
}

fn is_player(lobby: &Lobby, player: &MemberId) -> bool {
    lobby.players.iter().flatten().any(|p| p == player.as_str())
}

/// The event stream of lobby `id` for `?player-id=` (config in `?name=` or `?lobby-config=`).
pub async fn events(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, LobbyError> {
    let player = MemberId::from(ctx.required("player-id")?);
    let entry = LobbyId::parse(&id)
        .and_then(|l| app.facades.lobby.indexes.lobby(&ctx.scope, &l))
        .ok_or_else(LobbyError::lobby_not_found)?;
    let identity = Identity {
        member: player.clone(),
        name: None,
        kind: MemberKind::Player,
        exp: None,
        only_room: Some(entry.id.room()),
        access: crate::auth::Access::Room,
    };
    let (conn, rx) = Conn::new(identity, app.settings.outbox_capacity);
    entry.handle.watch(conn.clone()).await?;
    let mut guard = Guard {
        entry: entry.clone(),
        conn,
        player: player.clone(),
        counted: false,
    };
    let (live, p, lid) = (entry.live.clone(), player.clone(), entry.id);
    let first = entry
        .handle
        .custom(move |ops| {
            if !ops.is_member(p.as_str()) {
                return Err(LobbyError::Forbidden("Player is not in this lobby".into()));
            }
            live.stream_opened(&p);
            let s = ops.snapshot();
            render(&lid, &s).map(|l| (l, s.version))
        })
        .await;
    let (lobby, version) = match first {
        Ok(r) => r?,
        Err(_) => return Err(LobbyError::lobby_not_found()),
    };
    guard.counted = true;
    let feed = Feed {
        app,
        guard,
        rx,
        first: Some(event("connected", version, &json!({ "lobby": lobby }))),
        last: version,
        done: false,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        f.next().await.map(|ev| (Ok::<_, Infallible>(ev), f))
    });
    Ok(sse_response(stream))
}

fn sse_response(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Tell nginx-style proxies not to buffer the stream.
    res.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    res
}
