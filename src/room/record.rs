//! A room's stored record: how the actor stages it ([`Room::persist`]) and resumes from it
//! ([`Room::restore`]) after a restart.
//!
//! The record is the room as an API sees it: spec, attributes, members (with what keeps them),
//! host, bans, version and expiry. Sockets are not recorded: a member kept by its sockets is
//! restored *in its reconnect grace*, so one that reconnects (to this process) within the grace
//! resumes without an event, and one that does not leaves with `timeout`, once.

use std::time::Duration;

use tokio::time::Instant;

use super::actor::{Room, Timer};
use super::members::{Binding, Member, RowCache};
use super::now_ms;
use crate::ids::MemberId;
use crate::store::records::{Bound, MemberRecord};
use crate::store::{Kind, RoomRecord};

/// A fresh epoch for a new room incarnation: 8 random hex digits.
pub(super) fn new_epoch() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// An instant `ms_from_now` milliseconds away (negative: now).
fn instant_in(ms_from_now: i64) -> Instant {
    Instant::now() + Duration::from_millis(ms_from_now.max(0) as u64)
}

impl Room {
    /// The room as stored.
    pub(super) fn record(&self) -> RoomRecord {
        let now = Instant::now();
        let wall = now_ms();
        let me = self.registry.node_id();
        RoomRecord {
            id: self.id.to_string(),
            kind: self.spec.kind,
            max_members: self.spec.max_members,
            linger_ms: self.spec.linger.map(|d| d.as_millis() as u64),
            attrs: self.spec.attrs.clone(),
            private: self.spec.private.clone(),
            version: self.version,
            host: self.members.host().map(|h| h.to_string()),
            members: self
                .members
                .iter()
                .map(|m| MemberRecord {
                    id: m.id.to_string(),
                    kind: m.kind,
                    name: m.name.clone(),
                    meta: m.meta.clone(),
                    state: m.state.clone(),
                    joined_at: m.joined_at,
                    bound: match m.binding {
                        Binding::Socket => Bound::Socket,
                        Binding::Api => Bound::Api,
                    },
                    nodes: match me {
                        Some(me) => self.subs.nodes_of(&m.conns, me),
                        None => Vec::new(),
                    },
                })
                .collect(),
            bans: self
                .bans
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(id, until)| {
                    let left = until.saturating_duration_since(now).as_millis() as i64;
                    (id.to_string(), wall.saturating_add(left))
                })
                .collect(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Stages the record (a map insert; the store's writer commits it); a room that is
    /// closing stages its deletion instead.
    pub(super) fn persist(&mut self) {
        self.dirty = false;
        self.last_write = Some(Instant::now());
        if self.exit && !self.keep_record {
            self.unrecord();
        } else {
            let rec = self.record();
            if let Some(c) = self.registry.cluster() {
                c.put_record(&rec);
            }
            self.registry.store().put_room(&rec);
        }
    }

    /// Stages the record's deletion (the room is closed or idle: nothing to resume).
    pub(super) fn unrecord(&mut self) {
        self.registry.store().delete(Kind::Room, self.id.as_str());
        if let Some(c) = self.registry.cluster() {
            c.delete_record(&self.id);
        }
    }

    /// Resumes from a stored record: members, host, bans, version and expiry as they were; a
    /// new epoch; members kept by sockets wait in their grace for the sockets to come back.
    pub(super) fn restore(&mut self, rec: RoomRecord) {
        let wall = now_ms();
        self.version = rec.version;
        self.created_at = rec.created_at;
        self.updated_at = rec.updated_at;
        // Checked at start like any grace; a zero grace would drop them at once: wait at
        // least a second so a reconnect racing the start still finds its member.
        let grace = self.registry.settings().grace.max(Duration::from_secs(1));
        let cluster = self.registry.cluster().cloned();
        for m in rec.members {
            // Cluster: a member whose every socket was on a dead node is not coming back; it
            // leaves with `timeout` after a short settle (the other nodes' sockets re-attach
            // first, so they see its `left`).
            let orphan = cluster
                .as_ref()
                .is_some_and(|c| !m.nodes.is_empty() && m.nodes.iter().all(|n| !c.is_alive(n)));
            let grace = if orphan {
                crate::cluster::SETTLE
            } else {
                grace
            };
            let id = MemberId::from(m.id.as_str());
            let binding = match m.bound {
                Bound::Socket => Binding::Socket,
                Bound::Api => Binding::Api,
            };
            let grace_key = (binding == Binding::Socket)
                .then(|| self.timers.insert(Timer::Grace(id.clone()), grace));
            if grace_key.is_some() {
                self.resumed.insert(id.clone());
            }
            self.members.insert(Member {
                id,
                kind: m.kind,
                name: m.name,
                meta: m.meta,
                state: m.state,
                joined_at: m.joined_at,
                conns: Vec::new(),
                binding,
                grace: grace_key,
                row: RowCache::default(),
            });
        }
        if let Some(h) = rec.host {
            self.members.set_host(&h);
        }
        self.registry.stats().members_add(self.members.len() as i64);
        for (id, until) in rec.bans {
            if until > wall {
                self.bans
                    .insert(MemberId::from(id.as_str()), instant_in(until - wall));
            }
        }
        if let Some(at) = rec.expires_at {
            self.expire_at(instant_in(at - wall));
        }
        self.dirty = false;
    }
}
