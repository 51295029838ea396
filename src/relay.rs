//! The seam to "the rest of the cluster".
//!
//! Every event a room emits is offered to a [`Relay`] after local fan-out. The single-node build
//! uses [`LocalRelay`], which does nothing: there is no rest of the cluster. A Redis-backed relay
//! (pub/sub between nodes, presence records with expiry) implements the same trait later without
//! touching the room actor. [`Relays`] composes several (the local one and the webhook relay,
//! see `App::new`).

use crate::frame::Frame;
use crate::ids::RoomId;

/// Where a room's events go beyond its local subscribers. Called from the room actor, so it must
/// not block: implementations queue and return.
pub trait Relay: Send + Sync + 'static {
    /// A room emitted `frame` (its kind and version are [`Frame::kind`], [`Frame::version`]).
    fn publish(&self, room: &RoomId, frame: &Frame);
}

/// The single-node relay: no other node to tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalRelay;

impl Relay for LocalRelay {
    fn publish(&self, _room: &RoomId, _frame: &Frame) {}
}

/// Several relays side by side (the local one, the webhook relay, later a cluster relay): each
/// `publish` is offered to every one, in order. Each must itself be non-blocking.
#[derive(Clone, Default)]
pub struct Relays(pub Vec<std::sync::Arc<dyn Relay>>);

impl std::fmt::Debug for Relays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relays")
            .field("len", &self.0.len())
            .finish()
    }
}

impl Relay for Relays {
    fn publish(&self, room: &RoomId, frame: &Frame) {
        for r in &self.0 {
            r.publish(room, frame);
        }
    }
}
