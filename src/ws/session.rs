//! One WebSocket connection: a single task that reads requests, writes its outbox, pings, and
//! on exit tells every room it was in.
//!
//! Requests are pipelined: up to [`MAX_IN_FLIGHT`] may be with rooms at once (what may and may
//! not overlap is decided in [`super::requests`]), so one publisher is not held to one event per
//! fan-out sweep. Each request gets exactly one reply (`ack`, `error` or `pong`), in request
//! order, written only after everything already queued in the outbox: a room pushes a request's
//! effects (the `panel` of a join, the `left` of a leave) before it answers, so a client always
//! sees the effects of a request before its `ack`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::requests::{self, error, Later, Step};
use super::socket::Sock;
use super::upgrade::Socket;
use crate::app::App;
use crate::conn::{Conn, Receiver};
use crate::frame::Frame;
use crate::protocol::{close, ErrorCode};

/// Frames written per flush when the outbox has a backlog.
const BATCH: usize = 64;

/// Requests one socket may have unanswered; beyond this the task stops reading, and TCP pushes
/// back on the client.
pub const MAX_IN_FLIGHT: usize = 32;

/// A request whose reply is not written yet.
enum Pending {
    /// Known already.
    Ready(Frame),
    /// A room is working on it.
    Room(Later),
}

/// Takes the oldest unwritten reply if it is already known.
fn take_known(pending: &mut VecDeque<Pending>) -> Option<Frame> {
    match pending.front_mut()? {
        Pending::Room(l) => {
            let frame = l.now()?;
            pending.pop_front();
            Some(frame)
        }
        Pending::Ready(_) => match pending.pop_front() {
            Some(Pending::Ready(f)) => Some(f),
            _ => None,
        },
    }
}

/// Takes the oldest unwritten reply, waiting until it is known. Cancel-safe: the entry is
/// removed only in the poll that returns it.
async fn next_reply(pending: &mut VecDeque<Pending>) -> Frame {
    if let Some(Pending::Room(l)) = pending.front_mut() {
        let frame = l.reply().await;
        pending.pop_front();
        return frame;
    }
    match pending.pop_front() {
        Some(Pending::Ready(f)) => f,
        _ => std::future::pending().await, // empty: the caller guards against this
    }
}

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
pub async fn run(socket: Socket, app: App, conn: Arc<Conn>, mut outbox: Receiver) {
    let mut socket = Sock::new(socket);
    app.stats.socket(1);
    app.sockets.register(&conn);
    if app.shutdown.is_cancelled() {
        // Upgraded while the server was stopping; nothing else can have closed it yet.
        let _ = conn.close(close::GOING_AWAY);
    }
    let s = app.settings.clone();
    let mut ping = interval_at(Instant::now() + s.ping_interval, s.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    // Token expiry is checked on the ping tick: one timer per socket instead of two.
    let expires = conn.identity().exp.unwrap_or(u64::MAX);
    let closed = conn.closed();
    tokio::pin!(closed);
    let mut pending = VecDeque::new();

    let exit = loop {
        // Order: a close request, then replies (they drain the outbox too), then the peer's
        // requests and the ping tick, and only then the outbox, so a socket whose outbox never
        // empties (a busy room) still reads its peer and keeps its heartbeat.
        tokio::select! {
            biased;
            code = &mut closed => break Exit::Close(code, close_reason(code)),
            reply = next_reply(&mut pending), if !pending.is_empty() => {
                if let Err(exit) = guarded(closed.as_mut(), write_replies(&mut socket, &mut outbox, reply, &mut pending)).await {
                    break exit;
                }
            }
            msg = socket.recv(), if pending.len() < MAX_IN_FLIGHT => {
                last_seen = Instant::now();
                let step = match msg {
                    None | Some(Ok(Message::Close(_))) => break Exit::PeerGone,
                    Some(Err(e)) if is_too_big(&e) => break Exit::Close(close::TOO_BIG, "message too big"),
                    Some(Err(WsError::Utf8(_))) => break Exit::Close(close::INVALID_PAYLOAD, "invalid UTF-8"),
                    Some(Err(WsError::Protocol(_))) => break Exit::Close(close::PROTOCOL_ERROR, "protocol error"),
                    Some(Err(_)) => break Exit::PeerGone,
                    Some(Ok(Message::Text(text))) => {
                        // Waits for room mailbox space at most: still give way to a close.
                        tokio::select! {
                            biased;
                            code = closed.as_mut() => break Exit::Close(code, close_reason(code)),
                            step = Box::pin(requests::step(&app, &conn, text.as_str())) => step,
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        Step::Now(error(None, ErrorCode::BadRequest, "binary frames are not part of the protocol"))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                };
                match step {
                    Step::Now(f) => pending.push_back(Pending::Ready(f)),
                    Step::Later(l) => pending.push_back(Pending::Room(l)),
                    Step::Alone(sub) => {
                        // It changes which rooms this socket is in: every earlier reply first.
                        if let Err(exit) = guarded(closed.as_mut(), write_all_replies(&mut socket, &mut outbox, &mut pending)).await {
                            break exit;
                        }
                        let reply = tokio::select! {
                            biased;
                            code = closed.as_mut() => break Exit::Close(code, close_reason(code)),
                            reply = Box::pin(requests::subscribe(&app, &conn, sub)) => reply,
                        };
                        pending.push_back(Pending::Ready(reply));
                    }
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() >= s.heartbeat_timeout {
                    break Exit::TimedOut;
                }
                if crate::auth::unix_now() >= expires {
                    break Exit::Close(close::TOKEN_EXPIRED, "token expired");
                }
                if let Err(exit) = guarded(closed.as_mut(), socket.ping()).await {
                    break exit;
                }
            }
            frame = outbox.recv() => {
                if let Err(exit) = guarded(closed.as_mut(), write_batch(&mut socket, frame, &mut outbox)).await {
                    break exit;
                }
            }
        }
    };
    let timed_out = matches!(exit, Exit::TimedOut);
    // Leave the rooms first: they stop pushing to a socket that is going, and its member does
    // not wait on the peer reading its close frame.
    for room in conn.take_rooms() {
        room.detach(conn.id(), timed_out).await;
    }
    if let Exit::Close(code, reason) = exit {
        // The outbox is abandoned: the close frame goes right after what is already written to
        // the socket, and the peer has a bounded time to read up to it.
        socket.close(code, reason, close_wait(code)).await;
    }
    app.sockets.unregister(conn.id());
    app.stats.socket(-1);
    tracing::debug!(conn = %conn.id(), timed_out, "socket closed");
}

/// How long the close frame may take to get out. A slow consumer is closed because it is behind,
/// so it gets [`SLOW_CLOSE_WAIT`] to read what was already written before the close frame.
fn close_wait(code: u16) -> Duration {
    if code == close::SLOW_CONSUMER {
        SLOW_CLOSE_WAIT
    } else {
        Duration::from_secs(1)
    }
}

/// How long a slow consumer's close frame may wait behind the data already on its socket.
pub const SLOW_CLOSE_WAIT: Duration = Duration::from_secs(5);

fn is_too_big(e: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    matches!(e, WsError::Capacity(CapacityError::MessageTooLong { .. }))
}

/// Runs a write, but gives up on it when the socket is asked to close (slow consumer, shutdown):
/// a peer that stopped reading must not pin its task in a write forever.
async fn guarded<C, F>(closed: std::pin::Pin<&mut C>, write: F) -> Result<(), Exit>
where
    C: std::future::Future<Output = u16>,
    F: std::future::Future<Output = Result<(), WsError>>,
{
    tokio::select! {
        biased;
        r = write => r.map_err(|_| Exit::PeerGone),
        code = closed => Err(Exit::Close(code, close_reason(code))),
    }
}

async fn write_batch(
    socket: &mut Sock,
    first: Frame,
    outbox: &mut Receiver,
) -> Result<(), WsError> {
    socket.feed(first).await?;
    for _ in 1..BATCH {
        match outbox.try_recv() {
            Some(f) => socket.feed(f).await?,
            None => break,
        }
    }
    socket.flush().await
}

/// Feeds everything queued in the outbox, then `reply` (not flushed).
async fn feed_after_outbox(
    socket: &mut Sock,
    outbox: &mut Receiver,
    reply: Frame,
) -> Result<(), WsError> {
    while let Some(f) = outbox.try_recv() {
        socket.feed(f).await?;
    }
    socket.feed(reply).await
}

/// Writes `first` (after the outbox), then every following reply that is already known, in one
/// flush.
async fn write_replies(
    socket: &mut Sock,
    outbox: &mut Receiver,
    first: Frame,
    pending: &mut VecDeque<Pending>,
) -> Result<(), WsError> {
    feed_after_outbox(socket, outbox, first).await?;
    while let Some(reply) = take_known(pending) {
        feed_after_outbox(socket, outbox, reply).await?;
    }
    socket.flush().await
}

/// Waits for every unanswered request and writes the replies, in order.
async fn write_all_replies(
    socket: &mut Sock,
    outbox: &mut Receiver,
    pending: &mut VecDeque<Pending>,
) -> Result<(), WsError> {
    while !pending.is_empty() {
        let first = next_reply(pending).await;
        write_replies(socket, outbox, first, pending).await?;
    }
    Ok(())
}
