//! [`Ops`]: what a façade's custom change may do inside a room actor, atomically.
//!
//! A façade sends a closure with `RoomHandle::custom`; the actor runs it with an `Ops` over its
//! own state. Reads are plain; every change other subscribers must see goes through a method
//! here that versions and broadcasts it, exactly like the actor's own commands.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::actor::Room;
use super::handle::NewMember;
use super::{now_ms, Added, RoomError, Snapshot};
use crate::ids::MemberId;
use crate::protocol::{LeaveReason, ServerMsg};

/// What a façade's custom change may do inside the actor. Every change that other subscribers
/// should see goes through a method here, which versions and broadcasts it.
pub struct Ops<'a> {
    pub(super) room: &'a mut Room,
    /// A method that changes the room ran: the record is staged before the reply.
    changed: bool,
}

impl<'a> Ops<'a> {
    pub(super) fn new(room: &'a mut Room) -> Self {
        Self {
            room,
            changed: false,
        }
    }

    /// Stages the room's record if this change altered it. Runs before the façade's reply is
    /// sent (`RoomHandle::custom`), so the caller's commit barrier covers it.
    pub(super) fn commit(&mut self) {
        if self.changed {
            self.changed = false;
            self.room.persist();
        }
    }
}

impl Ops<'_> {
    /// A snapshot of the room as it is now.
    pub fn snapshot(&self) -> Snapshot {
        self.room.snapshot()
    }
    /// The façade attributes.
    pub fn attrs(&self) -> &Map<String, Value> {
        &self.room.spec.attrs
    }
    /// The façade attributes, to change. Marks the room updated (no WebSocket event).
    pub fn attrs_mut(&mut self) -> &mut Map<String, Value> {
        self.changed = true;
        self.room.updated_at = now_ms();
        &mut self.room.spec.attrs
    }
    /// Announces the current attributes to every subscriber (one `updated` event).
    pub fn publish_attrs(&mut self) -> u64 {
        self.changed = true;
        let version = self.room.bump();
        let frame = ServerMsg::Updated {
            room: Cow::Borrowed(self.room.id.as_str()),
            epoch: Cow::Borrowed(&self.room.epoch),
            version,
            attrs: Cow::Borrowed(&self.room.spec.attrs),
        }
        .to_frame();
        self.room.broadcast(frame);
        version
    }
    /// Member cap.
    pub fn set_max_members(&mut self, n: usize) {
        self.changed = true;
        self.room.spec.max_members = n;
    }
    /// The host.
    pub fn host(&self) -> Option<&MemberId> {
        self.room.members.host()
    }
    /// Whether `id` is a member.
    pub fn is_member(&self, id: &str) -> bool {
        self.room.members.contains(id)
    }
    /// Member ids in join order.
    pub fn member_ids(&self) -> Vec<MemberId> {
        self.room.members.iter().map(|m| m.id.clone()).collect()
    }
    /// A member's state.
    pub fn state_of(&self, id: &str) -> Option<&Value> {
        self.room.members.get(id).map(|m| &m.state)
    }
    /// A member's kind.
    pub fn kind_of(&self, id: &str) -> Option<crate::protocol::MemberKind> {
        self.room.members.get(id).map(|m| m.kind)
    }
    /// A member's metadata.
    pub fn meta_of(&self, id: &str) -> Option<&Value> {
        self.room.members.get(id).map(|m| &m.meta)
    }
    /// Whether `id` has an open socket in the room.
    pub fn has_socket(&self, id: &str) -> bool {
        self.room
            .members
            .get(id)
            .is_some_and(|m| !m.conns.is_empty())
    }
    /// Adds members (one `joined` event).
    pub fn add(&mut self, members: Vec<NewMember>) -> Result<Added, RoomError> {
        self.changed = true;
        self.room.add_members(members)
    }
    /// Removes members (one `left` event). Returns its version.
    pub fn remove(
        &mut self,
        ids: &[MemberId],
        reason: LeaveReason,
        by: Option<&MemberId>,
    ) -> Option<u64> {
        self.changed = true;
        self.room.remove(ids, reason, by)
    }
    /// Sets a member's state (one `state` event).
    pub fn set_state(&mut self, id: &MemberId, state: Value) {
        self.changed = true;
        self.room.set_state(id, state)
    }
    /// Transfers the host (one `host` event). False if `id` is not a member.
    pub fn set_host(&mut self, id: &MemberId, by: Option<&MemberId>) -> bool {
        self.changed = true;
        if !self.room.members.set_host(id.as_str()) {
            return false;
        }
        let version = self.room.bump();
        let frame = ServerMsg::Host {
            room: Cow::Borrowed(self.room.id.as_str()),
            epoch: Cow::Borrowed(&self.room.epoch),
            version,
            host: Cow::Borrowed(id.as_str()),
            by: by.map(|b| Cow::Borrowed(b.as_str())),
        }
        .to_frame();
        self.room.broadcast(frame);
        true
    }
    /// Closes the room with reason `expired` after `after`, unless it closes first. The timer
    /// is the room's own (no task outside the actor) and goes with it.
    pub fn expire_after(&mut self, after: Duration) {
        self.changed = true;
        self.room.expire_at(Instant::now() + after)
    }
    /// Closes the room after this change.
    pub fn close(&mut self, reason: &str) {
        self.changed = true;
        self.room.close(reason)
    }
}
