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

// Their old paths (`rollcall::conn::Identity`, `::Push` ...), which bench/ and tests/ import.
pub use crate::auth::{Access, Identity, RoomAllow};
pub use crate::frame::{Frame, Push};
use crate::ids::{ConnId, MemberId, RoomId};
use crate::outbox::Outbox;
use crate::room::RoomHandle;

/// The shared half of one WebSocket connection: who it is, its outbox and the rooms it is in.
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
    /// Cluster: this is the owner's proxy of a socket on another node (its node id), and what
    /// to do when a room stops delivering to it (tell that node).
    remote: std::sync::OnceLock<Remote>,
}

/// What makes a [`Conn`] the proxy of a socket held by another cluster node.
pub struct Remote {
    /// The node holding the real socket.
    pub node: std::sync::Arc<str>,
    /// Called (inside the room actor, so it must not block) when a room detaches the proxy.
    pub on_detach: Box<dyn Fn(&RoomId) + Send + Sync>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("node", &self.node).finish()
    }
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
            remote: std::sync::OnceLock::new(),
        });
        let rx = Receiver::new(conn.clone());
        (conn, rx)
    }

    fn outbox(&self) -> &Outbox {
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

    /// Makes this connection the proxy of a socket on another node (first call wins).
    pub fn set_remote(&self, remote: Remote) {
        // A second call would be a bug with no effect: the first node stays.
        let _ = self.remote.set(remote);
    }

    /// The node holding the real socket, when this is a cluster proxy.
    pub fn node(&self) -> Option<&str> {
        self.remote.get().map(|r| &*r.node)
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
        if let Some(r) = self.remote.get() {
            (r.on_detach)(room);
        }
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

/// The receiving end of a connection's outbox (one per connection): dropping it closes the
/// outbox, so rooms see [`Push::Gone`] and forget the connection.
#[derive(Debug)]
pub struct Receiver {
    conn: std::sync::Arc<Conn>,
}

impl Receiver {
    fn new(conn: std::sync::Arc<Conn>) -> Self {
        Self { conn }
    }

    /// The next frame, waiting for one. Cancel-safe.
    pub async fn recv(&mut self) -> Frame {
        self.conn.outbox().recv().await
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.conn.outbox().try_pop()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.conn.outbox().close();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MemberKind;

    /// Dropping a connection's receiver closes its outbox: rooms pushing to it see `Gone`.
    #[test]
    fn a_dropped_receiver_closes_the_outbox() {
        let who = Identity {
            member: "m".into(),
            name: None,
            kind: MemberKind::Player,
            exp: None,
            only_room: None,
            access: Access::NATIVE,
        };
        let (c, mut rx) = Conn::new(who, 2);
        let frame = Frame::new("{}".into());
        assert_eq!(c.push(frame.clone()), Push::Queued);
        assert_eq!(rx.try_recv(), Some(frame.clone()));
        drop(rx);
        assert_eq!(c.push(frame), Push::Gone);
    }
}
