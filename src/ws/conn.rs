//! One WebSocket connection: a single task that reads requests, writes its outbox, pings, and
//! on exit tells every room it was in.
//!
//! Requests are handled one at a time. Each request gets exactly one reply (`ack`, `error` or
//! `pong`), written only after everything already queued in the outbox: the room pushes a
//! request's effects (the `panel` of a join, the `left` of a leave) before it answers, so a
//! client always sees the effects of a request before its `ack`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::SinkExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::app::App;
use crate::conn::{Conn, Frame};
use crate::ids::{valid_room_name, RoomId, RESERVED_PREFIXES};
use crate::protocol::{close, ClientMsg, ErrorCode, ServerMsg};
use crate::room::{RoomError, RoomHandle, RoomKind, RoomSpec};

/// Frames written per flush when the outbox has a backlog.
const BATCH: usize = 64;

enum Exit {
    PeerGone,
    TimedOut,
    Close(u16, &'static str),
}

/// Why a close code was sent, for the close frame's reason text.
fn close_reason(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "server shutting down",
        close::SLOW_CONSUMER => "slow consumer",
        close::TOKEN_EXPIRED => "token expired",
        close::TOO_BIG => "message too big",
        _ => "closing",
    }
}

/// Runs a connection until it closes, then detaches it from its rooms.
///
/// Hot path: a socket in a busy room wakes once per event batch. Everything that lives as long as
/// the connection (the close signal) is a future pinned once, outside the loop, and the one
/// timer (the ping tick, which also checks token expiry) is an `Interval`, so a wake-up
/// registers no new timer and takes no shared lock; shutdown reaches each
/// socket through its own [`Conn::close`] (see [`crate::conn::Sockets`]) rather than through one
/// token every socket would poll.
pub async fn run(
    mut socket: WebSocket,
    app: App,
    conn: Arc<Conn>,
    mut outbox: mpsc::Receiver<Frame>,
) {
    app.stats.socket(1);
    app.sockets.register(&conn);
    if app.shutdown.is_cancelled() {
        conn.close(close::GOING_AWAY); // upgraded while the server was stopping
    }
    let s = app.settings.clone();
    let mut ping = interval_at(Instant::now() + s.ping_interval, s.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    // Token expiry is checked on the ping tick: one timer per socket instead of two.
    let expires = conn.identity().exp.unwrap_or(u64::MAX);
    let closed = conn.closed();
    tokio::pin!(closed);

    let exit = loop {
        tokio::select! {
            biased;
            code = &mut closed => break Exit::Close(code, close_reason(code)),
            frame = outbox.recv() => {
                let Some(frame) = frame else { break Exit::PeerGone };
                if let Err(exit) = guarded(closed.as_mut(), write_batch(&mut socket, frame, &mut outbox)).await {
                    break exit;
                }
            }
            msg = socket.recv() => {
                last_seen = Instant::now();
                let reply = match msg {
                    None | Some(Ok(Message::Close(_))) => break Exit::PeerGone,
                    Some(Err(e)) if is_too_big(&e) => break Exit::Close(close::TOO_BIG, "message too big"),
                    Some(Err(_)) => break Exit::PeerGone,
                    Some(Ok(Message::Text(text))) => Box::pin(handle(&app, &conn, text.as_str())).await,
                    Some(Ok(Message::Binary(_))) => {
                        error(None, ErrorCode::BadRequest, "binary frames are not part of the protocol")
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                };
                if let Err(exit) = guarded(closed.as_mut(), flush_then(&mut socket, &mut outbox, reply)).await {
                    break exit;
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() >= s.heartbeat_timeout {
                    break Exit::TimedOut;
                }
                if crate::auth::unix_now() >= expires {
                    break Exit::Close(close::TOKEN_EXPIRED, "token expired");
                }
                if let Err(exit) = guarded(closed.as_mut(), socket.send(Message::Ping(Bytes::new()))).await {
                    break exit;
                }
            }
        }
    };
    let timed_out = matches!(exit, Exit::TimedOut);
    if let Exit::Close(code, reason) = exit {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // Best effort: the peer may already be gone.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
    for room in conn.take_rooms() {
        room.detach(conn.id(), timed_out).await;
    }
    app.sockets.unregister(conn.id());
    app.stats.socket(-1);
    tracing::debug!(conn = %conn.id(), timed_out, "socket closed");
}

fn is_too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    matches!(
        e.source().and_then(|s| s.downcast_ref::<Error>()),
        Some(Error::Capacity(CapacityError::MessageTooLong { .. }))
    )
}

/// Runs a write, but gives up on it when the socket is asked to close (slow consumer, shutdown):
/// a peer that stopped reading must not pin its task in a write forever.
async fn guarded<C, F>(closed: std::pin::Pin<&mut C>, write: F) -> Result<(), Exit>
where
    C: std::future::Future<Output = u16>,
    F: std::future::Future<Output = Result<(), axum::Error>>,
{
    tokio::select! {
        biased;
        r = write => r.map_err(|_| Exit::PeerGone),
        code = closed => Err(Exit::Close(code, close_reason(code))),
    }
}

fn text_frame(frame: Frame) -> Message {
    Message::Text(frame.text())
}

async fn write_batch(
    socket: &mut WebSocket,
    first: Frame,
    outbox: &mut mpsc::Receiver<Frame>,
) -> Result<(), axum::Error> {
    socket.feed(text_frame(first)).await?;
    for _ in 1..BATCH {
        match outbox.try_recv() {
            Ok(f) => socket.feed(text_frame(f)).await?,
            Err(_) => break,
        }
    }
    socket.flush().await
}

/// Writes everything queued, then the reply.
async fn flush_then(
    socket: &mut WebSocket,
    outbox: &mut mpsc::Receiver<Frame>,
    reply: Frame,
) -> Result<(), axum::Error> {
    while let Ok(f) = outbox.try_recv() {
        socket.feed(text_frame(f)).await?;
    }
    socket.feed(text_frame(reply)).await?;
    socket.flush().await
}

fn error(reference: Option<&Value>, code: ErrorCode, message: impl Into<String>) -> Frame {
    ServerMsg::Error {
        reference: reference.map(Cow::Borrowed),
        code,
        message: Cow::Owned(message.into()),
    }
    .to_frame()
}

fn ack(reference: Option<&Value>) -> Frame {
    ServerMsg::Ack {
        reference: reference.map(Cow::Borrowed),
    }
    .to_frame()
}

/// Parses and runs one request; returns its reply frame.
async fn handle(app: &App, conn: &Arc<Conn>, text: &str) -> Frame {
    let msg = match serde_json::from_str::<ClientMsg>(text) {
        Ok(m) => m,
        Err(e) => return parse_error(text, &e),
    };
    let (reference, result) = match msg {
        ClientMsg::Ping { reference } => {
            return ServerMsg::Pong {
                reference: reference.as_ref().map(Cow::Borrowed),
            }
            .to_frame();
        }
        ClientMsg::Join {
            room,
            state,
            reference,
        } => {
            let r = match state_size_ok(app, state.as_ref()) {
                Err(e) => Err(e),
                Ok(()) => subscribe(app, conn, &room, true, state).await,
            };
            (reference, r)
        }
        ClientMsg::Watch { room, reference } => {
            (reference, subscribe(app, conn, &room, false, None).await)
        }
        ClientMsg::Leave { room, reference } => {
            let c = conn.clone();
            (
                reference,
                in_room(conn, &room, move |h| async move { h.leave(c).await }).await,
            )
        }
        ClientMsg::Kick {
            room,
            member,
            reference,
        } => {
            let by = conn.member().clone();
            (
                reference,
                in_room(conn, &room, move |h| async move {
                    h.kick(Some(by), member.as_str().into()).await
                })
                .await,
            )
        }
        ClientMsg::State {
            room,
            state,
            reference,
        } => {
            let r = match state_size_ok(app, Some(&state)) {
                Err(e) => Err(e),
                Ok(()) => {
                    let c = conn.clone();
                    in_room(conn, &room, move |h| async move { h.state(c, state).await }).await
                }
            };
            (reference, r)
        }
        ClientMsg::Sync { room, reference } => {
            let c = conn.clone();
            (
                reference,
                in_room(conn, &room, move |h| async move { h.sync(c).await }).await,
            )
        }
    };
    match result {
        Ok(()) => ack(reference.as_ref()),
        Err((code, message)) => error(reference.as_ref(), code, message),
    }
}

type Outcome = Result<(), (ErrorCode, String)>;

fn room_err(e: RoomError) -> (ErrorCode, String) {
    (e.code(), e.to_string())
}

fn state_size_ok(app: &App, state: Option<&Value>) -> Outcome {
    let Some(state) = state else { return Ok(()) };
    let size = serde_json::to_vec(state)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    let max = app.settings.max_state_bytes;
    if size > max {
        return Err((
            ErrorCode::StateTooLarge,
            format!("state is {size} bytes; the limit is {max}"),
        ));
    }
    Ok(())
}

/// Runs `f` on a room this socket is in.
async fn in_room<F, Fut>(conn: &Conn, room: &str, f: F) -> Outcome
where
    F: FnOnce(RoomHandle) -> Fut,
    Fut: std::future::Future<Output = Result<(), RoomError>>,
{
    match conn.room(room) {
        None => Err((
            ErrorCode::NotMember,
            format!("this socket is not in room {room:?}"),
        )),
        Some(h) => f(h).await.map_err(room_err),
    }
}

/// `join` (member) or `watch` (subscriber only).
async fn subscribe(
    app: &App,
    conn: &Arc<Conn>,
    room: &str,
    join: bool,
    state: Option<Value>,
) -> Outcome {
    if !valid_room_name(room) {
        return Err((
            ErrorCode::InvalidRoom,
            "room names are 1-128 characters of [A-Za-z0-9_.:@-]".into(),
        ));
    }
    if let Some(only) = &conn.identity().only_room {
        if only.as_str() != room {
            return Err((
                ErrorCode::Forbidden,
                format!("this token only admits room {only}"),
            ));
        }
    }
    if conn.room(room).is_none() && conn.room_count() >= app.settings.max_rooms_per_socket {
        return Err((
            ErrorCode::TooManyRooms,
            format!(
                "a socket may be in at most {} rooms",
                app.settings.max_rooms_per_socket
            ),
        ));
    }
    let id = RoomId::from(room);
    if RESERVED_PREFIXES.iter().any(|p| room.starts_with(p)) {
        // Façade rooms are created by their REST APIs only: never spawn one here.
        let not_found = || {
            (
                ErrorCode::RoomNotFound,
                format!("room {room:?} does not exist"),
            )
        };
        let h = app.registry.get(room).ok_or_else(not_found)?;
        let r = if join {
            h.join(conn.clone(), state).await
        } else {
            h.watch(conn.clone()).await
        };
        return r.map_err(|e| {
            if e == RoomError::Closed {
                not_found()
            } else {
                room_err(e)
            }
        });
    }
    let settings = &app.settings;
    let spec = || RoomSpec {
        kind: RoomKind::Native,
        max_members: settings.max_members_per_room,
        linger: Some(settings.room_idle),
        attrs: Default::default(),
    };
    let r = if join {
        app.registry
            .with_room(&id, spec, |h| {
                let (c, st) = (conn.clone(), state.clone());
                async move { h.join(c, st).await }
            })
            .await
    } else {
        app.registry
            .with_room(&id, spec, |h| {
                let c = conn.clone();
                async move { h.watch(c).await }
            })
            .await
    };
    r.map(|_| ()).map_err(room_err)
}

/// Classifies a request that did not parse: not JSON, unknown `type`, or a bad field.
fn parse_error(text: &str, e: &serde_json::Error) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return error(None, ErrorCode::BadJson, format!("not JSON: {e}"));
    };
    let reference = v.get("ref");
    match v.get("type").and_then(Value::as_str) {
        None => error(
            reference,
            ErrorCode::BadRequest,
            "a request is a JSON object with a string `type`",
        ),
        Some(t)
            if !matches!(
                t,
                "join" | "watch" | "leave" | "kick" | "state" | "sync" | "ping"
            ) =>
        {
            error(
                reference,
                ErrorCode::UnknownType,
                format!("unknown type {t:?}"),
            )
        }
        Some(_) => error(reference, ErrorCode::BadRequest, e.to_string()),
    }
}
