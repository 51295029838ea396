//! Socket joins: how they are batched and announced.
//!
//! Every join already queued in a room's mailbox is taken with the first one, and all are
//! announced in **one** `joined` event (one version); each joiner gets the panel of that version
//! (one serialization). A join storm that outpaces the room then costs each member one delivery
//! per batch instead of one per joiner. Nothing waits for a batch to fill: a join that finds the
//! mailbox empty is announced at once.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::actor::Room;
use super::handle::{Command, Reply};
use super::members::{Binding, Member, RowCache};
use super::{now_ms, RoomError};
use crate::conn::Conn;
use crate::ids::MemberId;
use crate::protocol::ServerMsg;

/// Most socket joins announced in one `joined` event.
const JOIN_BATCH: usize = 256;

/// One socket's join: who, its initial state, and where the answer goes.
pub(super) type SocketJoin = (Arc<Conn>, Option<Value>, Reply<()>);

impl Room {
    /// Handles `first` and every join queued right behind it in the mailbox as one batch (see
    /// [`Room::join_sockets`]). Returns the command that ended the run of joins, if any, for the
    /// caller to handle next.
    pub(super) fn on_join(
        &mut self,
        first: SocketJoin,
        rx: &mut mpsc::Receiver<Command>,
    ) -> Option<Command> {
        let mut joins = vec![first];
        let mut next = None;
        while joins.len() < JOIN_BATCH {
            match rx.try_recv() {
                Ok(Command::Join { conn, state, reply }) => joins.push((conn, state, reply)),
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        self.join_sockets(joins);
        next
    }

    /// Sockets join, in order, as one step: every new member is announced in one `joined` event,
    /// then each joining socket is subscribed and gets the panel of that version (the event goes
    /// to those already there; the panel tells the joiners). A refusal changes nothing and is
    /// answered at once; every other join is answered after its panel is queued.
    pub(super) fn join_sockets(&mut self, joins: Vec<SocketJoin>) {
        // Every reply below may find its caller gone; there is nothing to undo either way.
        let mut fresh: Vec<MemberId> = Vec::new();
        let mut new_host = None;
        let mut attach: Vec<(Arc<Conn>, Option<MemberId>, Reply<()>)> = Vec::new();
        for (conn, state, reply) in joins {
            let id = conn.member().clone();
            if self.subs.member_of(conn.id()) == Some(&id) {
                attach.push((conn, None, reply)); // already joined on this socket: just a panel
                continue;
            }
            if self.banned(&id) {
                let _ = reply.send(Err(RoomError::Banned));
                continue;
            }
            if let Some(member) = self.members.get_mut(id.as_str()) {
                // Another socket of the same member, a reconnect within grace, or a REST-added
                // member attaching its socket: one member, no event.
                if let Some(key) = member.grace.take() {
                    self.timers.remove(&key);
                }
                self.resumed.remove(&id);
                member.conns.push(conn.id());
            } else {
                if !self.spec.open_join() {
                    let _ = reply.send(Err(RoomError::Forbidden));
                    continue;
                }
                if self.members.len() >= self.spec.max_members {
                    let _ = reply.send(Err(RoomError::Full));
                    continue;
                }
                let ident = conn.identity();
                let member = Member {
                    id: id.clone(),
                    kind: ident.kind,
                    name: ident.name.clone(),
                    meta: Value::Null,
                    state: state.unwrap_or(Value::Null),
                    joined_at: now_ms(),
                    conns: vec![conn.id()],
                    binding: Binding::Socket,
                    grace: None,
                    row: RowCache::default(),
                };
                if self.members.insert(member) {
                    new_host = Some(id.clone());
                }
                fresh.push(id.clone());
            }
            attach.push((conn, Some(id), reply));
        }
        if !fresh.is_empty() {
            self.registry.stats().members_add(fresh.len() as i64);
            let version = self.bump();
            let frame = ServerMsg::Joined {
                room: Cow::Borrowed(self.id.as_str()),
                epoch: Cow::Borrowed(&self.epoch),
                version,
                members: fresh
                    .iter()
                    .filter_map(|id| self.members.get(id.as_str()).map(Member::view))
                    .collect(),
                host: new_host.as_ref().map(|h| Cow::Borrowed(h.as_str())),
            }
            .to_frame();
            // Before the joiners subscribe: their panel, not this event, tells them.
            self.broadcast(frame);
        }
        for (conn, member, _) in &attach {
            if let Some(id) = member {
                self.subscribe(conn, Some(id.clone()));
            }
        }
        for (conn, _, reply) in attach {
            self.send_panel(conn.id());
            let _ = reply.send(Ok(()));
        }
    }
}
