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
use super::handle::{Command, Joiner, Reply};
use super::members::{Binding, Member, RowCache};
use super::{now_ms, RoomError};
use crate::conn::Conn;
use crate::ids::MemberId;
use crate::protocol::ServerMsg;

/// Most socket joins announced in one `joined` event.
const JOIN_BATCH: usize = 256;

impl Room {
    /// Handles `first` and every join queued right behind it in the mailbox as one batch (see
    /// [`Room::join_sockets`]). Returns the command that ended the run of joins, if any, for the
    /// caller to handle next.
    pub(super) fn on_join(
        &mut self,
        first: (Arc<Conn>, Option<Value>, Reply<()>),
        rx: &mut mpsc::Receiver<Command>,
    ) -> Option<Command> {
        let (conn, state, reply) = first;
        let (mut joins, mut replies) = (vec![(conn, state)], vec![reply]);
        let mut next = None;
        while joins.len() < JOIN_BATCH {
            match rx.try_recv() {
                Ok(Command::Join {
                    who: Joiner::Socket { conn, state },
                    reply,
                }) => {
                    joins.push((conn, state));
                    replies.push(reply);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        for (reply, r) in replies.into_iter().zip(self.join_sockets(joins)) {
            let _ = reply.send(r); // the caller may have given up; nothing to undo
        }
        next
    }

    /// Sockets join, in order, as one step: every new member is announced in one `joined` event,
    /// then each joining socket is subscribed and gets the panel of that version (the event goes
    /// to those already there; the panel tells the joiners). Refusals change nothing. Returns one
    /// result per join, in order.
    pub(super) fn join_sockets(
        &mut self,
        joins: Vec<(Arc<Conn>, Option<Value>)>,
    ) -> Vec<Result<(), RoomError>> {
        let mut results = Vec::with_capacity(joins.len());
        let mut fresh: Vec<MemberId> = Vec::new();
        let mut new_host = None;
        let mut attach: Vec<(Arc<Conn>, Option<MemberId>)> = Vec::new();
        for (conn, state) in joins {
            let id = conn.member().clone();
            if self.subs.member_of(conn.id()) == Some(&id) {
                attach.push((conn, None)); // already joined on this socket: just a panel
                results.push(Ok(()));
                continue;
            }
            if self.banned(&id) {
                results.push(Err(RoomError::Banned));
                continue;
            }
            if let Some(member) = self.members.get_mut(id.as_str()) {
                // Another socket of the same member, a reconnect within grace, or a REST-added
                // member attaching its socket: one member, no event.
                if let Some(key) = member.grace.take() {
                    self.timers.remove(&key);
                }
                member.conns.push(conn.id());
            } else {
                if !self.spec.open_join() {
                    results.push(Err(RoomError::Forbidden));
                    continue;
                }
                if self.members.len() >= self.spec.max_members {
                    results.push(Err(RoomError::Full));
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
            attach.push((conn, Some(id)));
            results.push(Ok(()));
        }
        if !fresh.is_empty() {
            self.registry.stats().members_add(fresh.len() as i64);
            let version = self.bump();
            let frame = ServerMsg::Joined {
                room: Cow::Borrowed(self.id.as_str()),
                version,
                members: fresh
                    .iter()
                    .filter_map(|id| self.members.get(id.as_str()).map(Member::view))
                    .collect(),
                host: new_host.as_ref().map(|h| Cow::Borrowed(h.as_str())),
            }
            .to_frame();
            // Before the joiners subscribe: their panel, not this event, tells them.
            self.broadcast(frame, "joined");
        }
        for (conn, member) in &attach {
            if let Some(id) = member {
                self.subscribe(conn, Some(id.clone()));
            }
        }
        for (conn, _) in &attach {
            self.send_panel(conn.id());
        }
        results
    }
}
