//! The subscriber seam: what a room actor may do to a connection, and nothing more.
//!
//! A room never awaits a socket. It holds an `Arc<Conn>` per subscriber and can only
//! push pre-serialized frames into the connection's bounded outbox (never waiting), ask it to close
//! with a code, and record which rooms the connection is in. The WebSocket task owns the other
//! end (the receiver and the socket itself). A cluster build adds remote subscribers behind the
//! [`crate::relay::Relay`] seam, not here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Weak;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::ids::{ConnId, MemberId, RoomId};
use crate::outbox::{Outbox, Receiver};
use crate::protocol::MemberKind;
use crate::room::RoomHandle;

/// Who is on the other end of a connection, from its verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The member id (`sub`, or `plyrId` for game session tokens).
    pub member: MemberId,
    /// Display name (`name` claim), if any.
    pub name: Option<String>,
    /// Participant kind (`player` by default, `web` for video-room tokens).
    pub kind: MemberKind,
    /// Token expiry, seconds since the Unix epoch.
    pub exp: Option<u64>,
    /// When set, the token only admits this room (video-room tokens).
    pub only_room: Option<RoomId>,
    /// Which rooms the credential may see at all (tenant isolation; `protocol/README.md`).
    pub access: Access,
}

/// What kind of credential a socket holds, which decides the rooms it may join or watch (checked
/// in `ws::access` before any room is asked; `protocol/README.md`, "Who may see a room").
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Access {
    /// A native token: native rooms (all of them, or those its `rooms` claim admits), and a
    /// lobby room only where its member is one of the lobby's players. Never video or game rooms.
    Native(Option<RoomAllow>),
    /// A PLYR session token: the game rooms of this game (`game:<gameId>:*`) only.
    Game(String),
    /// A façade credential bound to [`Identity::only_room`] (video room tokens, a lobby's own
    /// SSE and liveness watchers): that room only.
    #[default]
    Room,
    /// The operator (`admin_token`): may watch any room and join native rooms.
    Operator,
}

impl Access {
    /// A native token with no `rooms` claim.
    pub const NATIVE: Self = Self::Native(None);
}

/// A native token's `rooms` claim: room name patterns, each an exact name or a prefix ending in
/// `*` (`"chess-*"`; `"*"` admits every native room).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomAllow(std::sync::Arc<[String]>);

impl RoomAllow {
    /// At most this many patterns in one claim.
    pub const MAX_PATTERNS: usize = 64;

    /// Validates the claim: 1..=64 patterns, each a room name (or a room name prefix then `*`).
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        if patterns.is_empty() || patterns.len() > Self::MAX_PATTERNS {
            return Err(format!(
                "the rooms claim holds 1 to {} patterns",
                Self::MAX_PATTERNS
            ));
        }
        for p in &patterns {
            let stem = p.strip_suffix('*').unwrap_or(p);
            let ok = p == "*" || crate::ids::valid_room_name(stem);
            if !ok {
                return Err(format!("rooms claim: {p:?} is not a room name or prefix*"));
            }
        }
        Ok(Self(patterns.into()))
    }

    /// Whether `room` matches one of the patterns.
    pub fn admits(&self, room: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => p == room,
        })
    }
}

/// One serialized server message (a JSON text frame), shared by every outbox it is pushed to.
///
/// A thin pointer on purpose: an outbox slot is paid per queued frame per socket (8 bytes here
/// instead of 32 for a `Bytes`). The text is validated as UTF-8 once, when it is built, not once
/// per delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(std::sync::Arc<Utf8Bytes>);

impl Frame {
    /// Wraps serialized JSON.
    pub fn new(json: String) -> Self {
        Self(std::sync::Arc::new(Utf8Bytes::from(json)))
    }
    /// The text, for a WebSocket `Text` message (a reference-count bump, no copy).
    pub fn text(&self) -> Utf8Bytes {
        (*self.0).clone()
    }
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Result of [`Conn::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// The outbox is full: the connection is lagging.
    Full,
    /// The connection is gone.
    Gone,
}

/// The shared half of one WebSocket connection.
#[derive(Debug)]
pub struct Conn {
    id: ConnId,
    identity: Identity,
    outbox: Outbox,
    /// Rooms this connection is subscribed to. Written by room actors (attach/detach) and read by
    /// the socket task; a std mutex because it is held for a map operation, never across `.await`.
    rooms: Mutex<HashMap<RoomId, RoomHandle>>,
    close_code: AtomicU16,
    close: Notify,
    /// The client's address (the TCP peer), for per-address limits; set once at the upgrade.
    peer: std::sync::OnceLock<std::net::IpAddr>,
}

impl Conn {
    /// A connection and the receiving end of its outbox.
    pub fn new(identity: Identity, capacity: usize) -> (std::sync::Arc<Self>, Receiver) {
        let conn = std::sync::Arc::new(Self {
            id: ConnId::next(),
            identity,
            outbox: Outbox::new(capacity),
            rooms: Mutex::new(HashMap::new()),
            close_code: AtomicU16::new(0),
            close: Notify::new(),
            peer: std::sync::OnceLock::new(),
        });
        let rx = Receiver::new(conn.clone());
        (conn, rx)
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Records the client's address (first call wins).
    pub fn set_peer(&self, ip: std::net::IpAddr) {
        // A second call would be a bug with no effect: the first address stays.
        let _ = self.peer.set(ip);
    }

    /// The client's address, when known (sockets; not the façades' internal watchers).
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.peer.get().copied()
    }

    /// Who is connected.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The member id of the connection's identity.
    pub fn member(&self) -> &MemberId {
        &self.identity.member
    }

    /// Queues one frame without waiting.
    pub fn push(&self, frame: Frame) -> Push {
        self.outbox.push(frame)
    }

    /// Free slots in the outbox.
    pub fn free_slots(&self) -> usize {
        self.outbox.free_slots()
    }

    /// Total slots in the outbox.
    pub fn capacity(&self) -> usize {
        self.outbox.capacity()
    }

    /// Asks the socket task to close with `code` (first request wins). True if this call was
    /// the first, so a caller counting closes counts each socket once.
    pub fn close(&self, code: u16) -> bool {
        let first = self
            .close_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.close.notify_one();
        }
        first
    }

    /// Whether [`Conn::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.close_code.load(Ordering::Acquire) != 0
    }

    /// Resolves when [`Conn::close`] was called; returns the code.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.close_code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.close.notified().await;
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomId, RoomHandle>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `room` now delivers to this connection.
    pub fn attached(&self, room: &RoomId, handle: &RoomHandle) {
        self.rooms().insert(room.clone(), handle.clone());
    }

    /// Records that `room` no longer delivers to this connection.
    pub fn detached(&self, room: &RoomId) {
        self.rooms().remove(room);
    }

    /// The handle of `room`, if this connection is in it.
    pub fn room(&self, room: &str) -> Option<RoomHandle> {
        self.rooms().get(room).cloned()
    }

    /// How many rooms this connection is in.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// Empties the room list (on close), returning the handles to notify.
    pub fn take_rooms(&self) -> Vec<RoomHandle> {
        self.rooms().drain().map(|(_, h)| h).collect()
    }
}

/// Every open socket of the process, so shutdown can tell each one to close through its own
/// [`Conn::close`] (one uncontended notification per socket) instead of every socket polling a
/// shared cancellation token on each wake-up.
#[derive(Debug, Default)]
pub struct Sockets {
    map: dashmap::DashMap<crate::ids::ConnId, Weak<Conn>>,
}

impl Sockets {
    /// Records an open socket.
    pub fn register(&self, conn: &std::sync::Arc<Conn>) {
        self.map.insert(conn.id(), std::sync::Arc::downgrade(conn));
    }
    /// Forgets a closed socket.
    pub fn unregister(&self, id: crate::ids::ConnId) {
        self.map.remove(&id);
    }
    /// Open sockets.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// No open sockets.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Asks every open socket to close with `code`.
    pub fn close_all(&self, code: u16) {
        for entry in self.map.iter() {
            if let Some(conn) = entry.value().upgrade() {
                // Already closing with another code: that close stands.
                let _ = conn.close(code);
            }
        }
    }
}
