//! The seam to "the rest of the cluster".
//!
//! Every event a room emits is offered to a [`Relay`] after local fan-out. The single-node build
//! uses [`LocalRelay`], which does nothing: there is no rest of the cluster. A Redis-backed relay
//! (pub/sub between nodes, presence records with expiry) implements the same trait later without
//! touching the room actor.

use crate::conn::Frame;
use crate::ids::RoomId;

/// Where a room's events go beyond its local subscribers. Called from the room actor, so it must
/// not block: implementations queue and return.
pub trait Relay: Send + Sync + 'static {
    /// A room emitted `frame` at `version`.
    fn publish(&self, room: &RoomId, version: u64, frame: &Frame);
}

/// The single-node relay: no other node to tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalRelay;

impl Relay for LocalRelay {
    fn publish(&self, _room: &RoomId, _version: u64, _frame: &Frame) {}
}
