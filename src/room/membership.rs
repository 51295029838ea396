//! The membership rules of a room: joins, leaves, kicks, bans, grace periods and state.
//!
//! These are methods of the actor's [`Room`], kept apart from the event loop in `actor.rs` so
//! the rules read on their own. Every leave path goes through [`Room::remove`], which emits the
//! one `left` event of the change.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::Value;
use tokio::time::Instant;

use super::actor::{Room, Timer};
use super::fanout::Role;
use super::handle::NewMember;
use super::members::{Binding, HostChange, Member, RowCache};
use super::{now_ms, Added, Removed, RoomError};
use crate::conn::Conn;
use crate::ids::{ConnId, MemberId};
use crate::protocol::{LeaveReason, ServerMsg};

impl Room {
    pub(super) fn add_members(&mut self, new: Vec<NewMember>) -> Result<Added, RoomError> {
        let mut seen = HashSet::new();
        let new: Vec<NewMember> = new
            .into_iter()
            .filter(|m| seen.insert(m.id.clone()))
            .collect();
        let fresh = new
            .iter()
            .filter(|m| !self.members.contains(m.id.as_str()))
            .count();
        if self.members.len() + fresh > self.spec.max_members {
            return Err(RoomError::Full);
        }
        if new.iter().any(|m| self.banned(&m.id)) {
            return Err(RoomError::Banned);
        }
        let (mut added, mut updated) = (Vec::new(), Vec::new());
        let mut became_host = false;
        let now = now_ms();
        for m in new {
            match self.members.get_mut(m.id.as_str()) {
                Some(old) => {
                    if old.name != m.name || old.meta != m.meta || old.kind != m.kind {
                        old.name = m.name;
                        old.meta = m.meta;
                        old.kind = m.kind;
                        updated.push(m.id);
                    }
                }
                None => {
                    became_host |= self.members.insert(Member {
                        id: m.id.clone(),
                        kind: m.kind,
                        name: m.name,
                        meta: m.meta,
                        state: Value::Null,
                        joined_at: now,
                        conns: Vec::new(),
                        binding: Binding::Api,
                        grace: None,
                        row: RowCache::default(),
                    });
                    added.push(m.id);
                }
            }
        }
        self.registry.stats().members_add(added.len() as i64);
        if added.is_empty() && updated.is_empty() {
            return Ok(Added {
                added,
                updated,
                version: None,
            });
        }
        let version = self.bump();
        let frame = ServerMsg::Joined {
            room: Cow::Borrowed(self.id.as_str()),
            epoch: Cow::Borrowed(&self.epoch),
            version,
            members: added
                .iter()
                .chain(&updated)
                .filter_map(|id| self.members.get(id.as_str()).map(Member::view))
                .collect(),
            host: if became_host {
                self.members.host().map(|h| Cow::Borrowed(h.as_str()))
            } else {
                None
            },
        }
        .to_frame();
        self.broadcast(frame);
        Ok(Added {
            added,
            updated,
            version: Some(version),
        })
    }

    pub(super) fn leave_socket(&mut self, conn: &Conn) -> Result<(), RoomError> {
        match self.subs.role_of(conn.id()) {
            None => Err(RoomError::NotMember),
            Some(Role::Member(member)) => {
                self.remove(&[member], LeaveReason::Leave, None);
                Ok(())
            }
            Some(Role::Watcher) => {
                self.unsubscribe(conn.id());
                Ok(())
            }
        }
    }

    pub(super) fn remove_ids(
        &mut self,
        ids: Vec<MemberId>,
        reason: LeaveReason,
        by: Option<MemberId>,
        atomic: bool,
    ) -> Result<Removed, RoomError> {
        let mut seen = HashSet::new();
        let ids: Vec<MemberId> = ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        let missing: Vec<MemberId> = ids
            .iter()
            .filter(|id| !self.members.contains(id.as_str()))
            .cloned()
            .collect();
        if atomic && !missing.is_empty() {
            return Err(RoomError::NotMembers(missing));
        }
        let present: Vec<MemberId> = ids
            .into_iter()
            .filter(|id| self.members.contains(id.as_str()))
            .collect();
        let version = self.remove(&present, reason, by.as_ref());
        Ok(Removed {
            removed: present,
            version,
        })
    }

    pub(super) fn kick(&mut self, by: Option<MemberId>, target: MemberId) -> Result<(), RoomError> {
        if let Some(by) = &by {
            if !self.members.contains(by.as_str()) {
                return Err(RoomError::NotMember);
            }
            if self.members.host() != Some(by) {
                return Err(RoomError::NotHost);
            }
            if by == &target {
                return Err(RoomError::SelfKick);
            }
        }
        if !self.members.contains(target.as_str()) {
            return Err(RoomError::NotMember);
        }
        self.remove(&[target], LeaveReason::Kick, by.as_ref());
        Ok(())
    }

    /// The one way members leave: one `left` event for the whole batch (with the new host when
    /// it changed), then `kicked` to kicked members' sockets, then their sockets are detached.
    /// Returns the event's version, or `None` when nobody in `ids` was a member.
    pub(super) fn remove(
        &mut self,
        ids: &[MemberId],
        reason: LeaveReason,
        by: Option<&MemberId>,
    ) -> Option<u64> {
        let set: HashSet<&str> = ids.iter().map(MemberId::as_str).collect();
        let (gone, host_change) = self.members.remove_many(&set);
        if gone.is_empty() {
            return None;
        }
        self.registry.stats().members_add(-(gone.len() as i64));
        for m in &gone {
            if let Some(key) = &m.grace {
                self.timers.remove(key);
            }
            self.resumed.remove(&m.id);
        }
        if reason == LeaveReason::Kick && !self.registry.settings().ban.is_zero() {
            let until = Instant::now() + self.registry.settings().ban;
            for m in &gone {
                self.bans.insert(m.id.clone(), until);
            }
        }
        let version = self.bump();
        let frame = ServerMsg::Left {
            room: Cow::Borrowed(self.id.as_str()),
            epoch: Cow::Borrowed(&self.epoch),
            version,
            members: gone.iter().map(|m| Cow::Borrowed(m.id.as_str())).collect(),
            reason,
            by: by.map(|b| Cow::Borrowed(b.as_str())),
            host: match &host_change {
                HostChange::To(h) => Some(Cow::Borrowed(h.as_str())),
                HostChange::Unchanged | HostChange::Vacant => None,
            },
        }
        .to_frame();
        self.broadcast(frame);
        let kicked = (reason == LeaveReason::Kick).then(|| {
            ServerMsg::Kicked {
                room: Cow::Borrowed(self.id.as_str()),
                by: by.map(|b| Cow::Borrowed(b.as_str())),
            }
            .to_frame()
        });
        for m in &gone {
            for c in &m.conns {
                if let Some(frame) = &kicked {
                    self.push_to(*c, frame.clone());
                }
                self.unsubscribe(*c);
            }
        }
        tracing::debug!(
            version,
            reason = reason.as_str(),
            count = gone.len(),
            "members left"
        );
        Some(version)
    }

    pub(super) fn detach(&mut self, conn: ConnId, timed_out: bool) {
        let Some(sub) = self.subs.remove(conn, self.registry.stats()) else {
            return;
        };
        let Some(id) = sub.member else { return };
        let grace = self.registry.settings().grace;
        let Some(member) = self.members.get_mut(id.as_str()) else {
            return;
        };
        member.conns.retain(|c| *c != conn);
        if !member.conns.is_empty() || member.binding != Binding::Socket {
            return;
        }
        if self.registry.handing_over() {
            // The server is stopping to restart: the member is recorded as it is and restored,
            // in its grace, by the next process. Nobody sees it leave.
            return;
        }
        if timed_out {
            self.remove(&[id], LeaveReason::Timeout, None);
        } else if grace.is_zero() {
            self.remove(&[id], LeaveReason::Disconnect, None);
        } else {
            member.grace = Some(self.timers.insert(Timer::Grace(id), grace));
        }
    }

    pub(super) fn set_state(&mut self, id: &MemberId, state: Value) {
        let Some(member) = self.members.get_mut(id.as_str()) else {
            return;
        };
        member.state = state;
        let version = self.bump();
        let frame = match self.members.get(id.as_str()) {
            Some(m) => ServerMsg::State {
                room: Cow::Borrowed(self.id.as_str()),
                epoch: Cow::Borrowed(&self.epoch),
                version,
                member: Cow::Borrowed(id.as_str()),
                state: Cow::Borrowed(&m.state),
            }
            .to_frame(),
            None => return,
        };
        self.broadcast(frame);
    }

    pub(super) fn close(&mut self, reason: &str) {
        let frame = ServerMsg::Closed {
            room: Cow::Borrowed(self.id.as_str()),
            reason: Cow::Borrowed(reason),
        }
        .to_frame();
        self.broadcast(frame);
        for c in self.subs.conns() {
            self.unsubscribe(c);
        }
        self.exit = true;
    }

    pub(super) fn banned(&mut self, id: &MemberId) -> bool {
        match self.bans.get(id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.bans.remove(id);
                false
            }
            None => false,
        }
    }
}
