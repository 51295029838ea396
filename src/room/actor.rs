//! The room actor: the only code that mutates a room.
//!
//! It owns the member set, the subscribers (sockets of members and watchers), the version, the
//! kick bans and its timers (grace periods, idle exit, lagging-socket resync) in one
//! `DelayQueue`. Each applied change is one event: version + 1, serialized once, the same
//! `Bytes` pushed with `try_send` into every subscriber's bounded outbox. The actor never awaits
//! a socket, so a slow client cannot stall the room; it only awaits its own mailbox.
//!
//! A subscriber whose outbox is full is *lagging*: it gets no more diffs (they would be stale),
//! and a resync timer retries every [`RESYNC_EVERY`] to hand it a fresh `panel` once half its
//! outbox is free; if it stays behind for `slow_consumer_secs` it is closed with 4008.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};

use super::handle::{Command, Joiner, NewMember};
use super::members::{Binding, Member, Members};
use super::{now_ms, Added, Registry, Removed, RoomError, RoomHandle, RoomSpec, Snapshot};
use crate::conn::{Conn, Push};
use crate::ids::{ConnId, MemberId, RoomId};
use crate::protocol::{close, LeaveReason, MemberView, ServerMsg};

/// How often a room retries lagging subscribers.
pub const RESYNC_EVERY: Duration = Duration::from_millis(50);

enum Timer {
    Grace(MemberId),
    Idle,
    Resync,
}

struct Sub {
    conn: Arc<Conn>,
    member: Option<MemberId>,
    lagging_since: Option<Instant>,
}

/// One room's state and its event loop.
pub struct Room {
    id: RoomId,
    me: RoomHandle,
    spec: RoomSpec,
    registry: Registry,
    version: u64,
    members: Members,
    subs: HashMap<ConnId, Sub>,
    bans: HashMap<MemberId, Instant>,
    timers: DelayQueue<Timer>,
    idle_key: Option<delay_queue::Key>,
    resync_key: Option<delay_queue::Key>,
    created_at: i64,
    updated_at: i64,
    exit: bool,
}

impl Room {
    /// Spawns the actor for `id` and returns its handle.
    pub(super) fn spawn(
        id: RoomId,
        spec: RoomSpec,
        registry: Registry,
        incarnation: u64,
    ) -> RoomHandle {
        let (tx, rx) = mpsc::channel(registry.settings().room_mailbox);
        let me = RoomHandle::new(id.clone(), incarnation, tx);
        let now = now_ms();
        let room = Room {
            id,
            me: me.clone(),
            spec,
            registry,
            version: 0,
            members: Members::default(),
            subs: HashMap::new(),
            bans: HashMap::new(),
            timers: DelayQueue::new(),
            idle_key: None,
            resync_key: None,
            created_at: now,
            updated_at: now,
            exit: false,
        };
        let span = tracing::debug_span!("room", room = %room.id);
        tokio::spawn(tracing::Instrument::instrument(room.run(rx), span));
        me
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        tracing::debug!(kind = ?self.spec.kind, "room started");
        self.check_idle();
        while !self.exit {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    // Unreachable while `self.me` holds a sender; kept for robustness.
                    None => break,
                },
                Some(t) = self.timers.next(), if !self.timers.is_empty() => self.on_timer(t.into_inner()),
            }
            if !self.exit {
                self.check_idle();
            }
        }
        // Members of a closed room are gone with it: keep the process-wide gauge true.
        self.registry
            .stats()
            .members_add(-(self.members.len() as i64));
        // Leave the registry first (only if the entry is still ours), then refuse what is queued:
        // callers see `Closed`, re-resolve and land in a fresh room.
        self.registry.forget(&self.id, self.me.incarnation());
        rx.close();
        while let Some(cmd) = rx.recv().await {
            refuse(cmd);
        }
        tracing::debug!("room stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join {
                who: Joiner::Socket { conn, state },
                reply,
            } => {
                let r = self.join_socket(conn, state);
                let _ = reply.send(r); // the caller may have given up; nothing to undo
            }
            Command::AddMembers { members, reply } => {
                let _ = reply.send(self.add_members(members)); // as above
            }
            Command::Watch { conn, reply } => {
                self.subscribe(&conn, None);
                self.send_panel(conn.id());
                let _ = reply.send(Ok(())); // as above
            }
            Command::Leave { conn, reply } => {
                let _ = reply.send(self.leave_socket(&conn)); // as above
            }
            Command::Remove {
                ids,
                reason,
                by,
                atomic,
                reply,
            } => {
                let _ = reply.send(self.remove_ids(ids, reason, by, atomic)); // as above
            }
            Command::Kick { by, target, reply } => {
                let _ = reply.send(self.kick(by, target)); // as above
            }
            Command::State { conn, state, reply } => {
                let r = match self.subs.get(&conn.id()).and_then(|s| s.member.clone()) {
                    Some(m) => {
                        self.set_state(&m, state);
                        Ok(())
                    }
                    None => Err(RoomError::NotMember),
                };
                let _ = reply.send(r); // as above
            }
            Command::Sync { conn, reply } => {
                let r = if self.subs.contains_key(&conn.id()) {
                    self.send_panel(conn.id());
                    Ok(())
                } else {
                    Err(RoomError::NotMember)
                };
                let _ = reply.send(r); // as above
            }
            Command::Detach { conn, timed_out } => self.detach(conn, timed_out),
            Command::Snapshot { reply } => {
                let _ = reply.send(Ok(self.snapshot())); // as above
            }
            Command::Custom { op, reply } => {
                let r = op(&mut Ops { room: self });
                let _ = reply.send(Ok(r)); // as above
            }
            Command::Close { reason, reply } => {
                self.close(&reason);
                let _ = reply.send(Ok(())); // as above
            }
        }
    }

    fn on_timer(&mut self, t: Timer) {
        match t {
            Timer::Grace(m) => {
                let expired = match self.members.get_mut(m.as_str()) {
                    Some(member) if member.conns.is_empty() => {
                        member.grace = None;
                        true
                    }
                    _ => false,
                };
                if expired {
                    self.remove(&[m], LeaveReason::Disconnect, None);
                }
            }
            Timer::Idle => {
                self.idle_key = None;
                if self.is_idle() {
                    self.exit = true;
                }
            }
            Timer::Resync => {
                self.resync_key = None;
                self.resync();
            }
        }
    }

    // ----- membership -------------------------------------------------------------------------

    fn join_socket(&mut self, conn: Arc<Conn>, state: Option<Value>) -> Result<(), RoomError> {
        let id = conn.member().clone();
        if self
            .subs
            .get(&conn.id())
            .is_some_and(|s| s.member.as_ref() == Some(&id))
        {
            self.send_panel(conn.id()); // already joined on this socket: idempotent
            return Ok(());
        }
        if self.banned(&id) {
            return Err(RoomError::Banned);
        }
        if let Some(member) = self.members.get_mut(id.as_str()) {
            // Another socket of the same member, a reconnect within grace, or a REST-added member
            // attaching its socket: one member, no event.
            if let Some(key) = member.grace.take() {
                self.timers.remove(&key);
            }
            member.conns.push(conn.id());
            self.subscribe(&conn, Some(id));
        } else {
            if !self.spec.open_join() {
                return Err(RoomError::Forbidden);
            }
            if self.members.len() >= self.spec.max_members {
                return Err(RoomError::Full);
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
            };
            let became_host = self.members.insert(member);
            self.registry.stats().members_add(1);
            let version = self.bump();
            let frame = {
                let m = self.members.get(id.as_str()).map(Member::view);
                ServerMsg::Joined {
                    room: Cow::Borrowed(self.id.as_str()),
                    version,
                    members: m.into_iter().collect(),
                    host: became_host.then(|| Cow::Borrowed(id.as_str())),
                }
                .to_bytes()
            };
            self.broadcast(frame, "joined");
            self.subscribe(&conn, Some(id));
        }
        self.send_panel(conn.id());
        Ok(())
    }

    fn add_members(&mut self, new: Vec<NewMember>) -> Result<Added, RoomError> {
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
        if let Some(b) = new.iter().find(|m| self.banned(&m.id)) {
            let _ = b;
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
        .to_bytes();
        self.broadcast(frame, "joined");
        Ok(Added {
            added,
            updated,
            version: Some(version),
        })
    }

    fn leave_socket(&mut self, conn: &Conn) -> Result<(), RoomError> {
        match self.subs.get(&conn.id()).map(|s| s.member.clone()) {
            None => Err(RoomError::NotMember),
            Some(Some(member)) => {
                self.remove(&[member], LeaveReason::Leave, None);
                Ok(())
            }
            Some(None) => {
                self.unsubscribe(conn.id());
                Ok(())
            }
        }
    }

    fn remove_ids(
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

    fn kick(&mut self, by: Option<MemberId>, target: MemberId) -> Result<(), RoomError> {
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
    fn remove(
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
            version,
            members: gone.iter().map(|m| Cow::Borrowed(m.id.as_str())).collect(),
            reason,
            by: by.map(|b| Cow::Borrowed(b.as_str())),
            host: host_change
                .as_ref()
                .and_then(|h| h.as_ref())
                .map(|h| Cow::Borrowed(h.as_str())),
        }
        .to_bytes();
        self.broadcast(frame, reason.as_str());
        let kicked = (reason == LeaveReason::Kick).then(|| {
            ServerMsg::Kicked {
                room: Cow::Borrowed(self.id.as_str()),
                by: by.map(|b| Cow::Borrowed(b.as_str())),
            }
            .to_bytes()
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

    fn detach(&mut self, conn: ConnId, timed_out: bool) {
        let Some(sub) = self.subs.remove(&conn) else {
            return;
        };
        if sub.lagging_since.is_some() {
            self.registry.stats().lagging_dec();
        }
        let Some(id) = sub.member else { return };
        let grace = self.registry.settings().grace;
        let Some(member) = self.members.get_mut(id.as_str()) else {
            return;
        };
        member.conns.retain(|c| *c != conn);
        if !member.conns.is_empty() || member.binding != Binding::Socket {
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

    fn set_state(&mut self, id: &MemberId, state: Value) {
        let Some(member) = self.members.get_mut(id.as_str()) else {
            return;
        };
        member.state = state;
        let version = self.bump();
        let frame = match self.members.get(id.as_str()) {
            Some(m) => ServerMsg::State {
                room: Cow::Borrowed(self.id.as_str()),
                version,
                member: Cow::Borrowed(id.as_str()),
                state: Cow::Borrowed(&m.state),
            }
            .to_bytes(),
            None => return,
        };
        self.broadcast(frame, "state");
    }

    fn close(&mut self, reason: &str) {
        let frame = ServerMsg::Closed {
            room: Cow::Borrowed(self.id.as_str()),
            reason: Cow::Borrowed(reason),
        }
        .to_bytes();
        self.broadcast(frame, "closed");
        let conns: Vec<ConnId> = self.subs.keys().copied().collect();
        for c in conns {
            self.unsubscribe(c);
        }
        self.exit = true;
    }

    fn banned(&mut self, id: &MemberId) -> bool {
        match self.bans.get(id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.bans.remove(id);
                false
            }
            None => false,
        }
    }

    // ----- subscribers and fan-out ------------------------------------------------------------

    fn subscribe(&mut self, conn: &Arc<Conn>, member: Option<MemberId>) {
        match self.subs.get_mut(&conn.id()) {
            Some(sub) => {
                if member.is_some() {
                    sub.member = member;
                }
            }
            None => {
                self.subs.insert(
                    conn.id(),
                    Sub {
                        conn: conn.clone(),
                        member,
                        lagging_since: None,
                    },
                );
            }
        }
        conn.attached(&self.id, &self.me);
    }

    fn unsubscribe(&mut self, conn: ConnId) {
        if let Some(sub) = self.subs.remove(&conn) {
            if sub.lagging_since.is_some() {
                self.registry.stats().lagging_dec();
            }
            sub.conn.detached(&self.id);
        }
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.updated_at = now_ms();
        self.version
    }

    /// Pushes one serialized event to every subscriber that is not lagging.
    fn broadcast(&mut self, frame: Bytes, kind: &'static str) {
        let started = std::time::Instant::now();
        let now = Instant::now();
        let mut delivered = 0u64;
        let mut newly_lagging = 0u64;
        for sub in self.subs.values_mut() {
            if sub.lagging_since.is_some() {
                continue; // a stale diff: it will get a fresh panel instead
            }
            match sub.conn.push(frame.clone()) {
                Push::Queued => delivered += 1,
                Push::Full => {
                    sub.lagging_since = Some(now);
                    newly_lagging += 1;
                }
                Push::Gone => {} // its Detach is on the way
            }
        }
        let stats = self.registry.stats();
        stats.fanout(started.elapsed());
        stats.event(kind, delivered);
        if newly_lagging > 0 {
            stats.lagging_add(newly_lagging);
            self.schedule_resync();
        }
        self.registry
            .relay()
            .publish(&self.id, self.version, &frame);
    }

    fn panel_frame(&self) -> Bytes {
        ServerMsg::Panel {
            room: Cow::Borrowed(self.id.as_str()),
            version: self.version,
            host: self.members.host().map(|h| Cow::Borrowed(h.as_str())),
            members: self.members.views(),
        }
        .to_bytes()
    }

    fn send_panel(&mut self, conn: ConnId) {
        let frame = self.panel_frame();
        self.push_to(conn, frame);
    }

    fn push_to(&mut self, conn: ConnId, frame: Bytes) {
        let Some(sub) = self.subs.get_mut(&conn) else {
            return;
        };
        if sub.lagging_since.is_some() {
            return;
        }
        if sub.conn.push(frame) == Push::Full {
            sub.lagging_since = Some(Instant::now());
            self.registry.stats().lagging_add(1);
            self.schedule_resync();
        }
    }

    fn schedule_resync(&mut self) {
        if self.resync_key.is_none() {
            self.resync_key = Some(self.timers.insert(Timer::Resync, RESYNC_EVERY));
        }
    }

    /// Hands lagging subscribers a fresh panel once half their outbox is free; closes those
    /// lagging longer than `slow_consumer_secs`.
    fn resync(&mut self) {
        let limit = self.registry.settings().slow_consumer;
        let now = Instant::now();
        let mut panel: Option<Bytes> = None;
        let mut still = false;
        let (mut resynced, mut closed) = (0u64, 0u64);
        for sub in self.subs.values_mut() {
            let Some(since) = sub.lagging_since else {
                continue;
            };
            if sub.conn.free_slots() * 2 >= sub.conn.capacity() {
                let frame = panel.get_or_insert_with(|| {
                    ServerMsg::Panel {
                        room: Cow::Borrowed(self.id.as_str()),
                        version: self.version,
                        host: self.members.host().map(|h| Cow::Borrowed(h.as_str())),
                        members: self.members.views(),
                    }
                    .to_bytes()
                });
                if sub.conn.push(frame.clone()) == Push::Queued {
                    sub.lagging_since = None;
                    resynced += 1;
                    continue;
                }
            }
            if now.duration_since(since) >= limit {
                sub.conn.close(close::SLOW_CONSUMER);
                closed += 1;
            }
            still = true;
        }
        let stats = self.registry.stats();
        stats.resynced(resynced);
        stats.slow_closed(closed);
        if still {
            self.schedule_resync();
        }
    }

    // ----- lifecycle --------------------------------------------------------------------------

    fn is_idle(&self) -> bool {
        self.spec.linger.is_some() && self.members.is_empty() && self.subs.is_empty()
    }

    fn check_idle(&mut self) {
        match (self.is_idle(), self.idle_key.is_some()) {
            (true, false) => {
                if let Some(linger) = self.spec.linger {
                    self.idle_key = Some(self.timers.insert(Timer::Idle, linger));
                }
            }
            (false, true) => {
                if let Some(key) = self.idle_key.take() {
                    self.timers.remove(&key);
                }
            }
            _ => {}
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            room: self.id.to_string(),
            kind: self.spec.kind,
            version: self.version,
            host: self.members.host().map(|h| h.to_string()),
            members: self.members.iter().map(|m| owned_view(m.view())).collect(),
            subscribers: self.subs.len(),
            attrs: self.spec.attrs.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn owned_view(v: MemberView<'_>) -> MemberView<'static> {
    MemberView {
        id: Cow::Owned(v.id.into_owned()),
        kind: v.kind,
        name: v.name.map(|n| Cow::Owned(n.into_owned())),
        state: Cow::Owned(v.state.into_owned()),
        joined_at: v.joined_at,
    }
}

fn refuse(cmd: Command) {
    // Every reply below may find its caller gone; there is nothing to undo either way.
    match cmd {
        Command::Join { reply, .. }
        | Command::Watch { reply, .. }
        | Command::Leave { reply, .. }
        | Command::Kick { reply, .. }
        | Command::State { reply, .. }
        | Command::Sync { reply, .. }
        | Command::Close { reply, .. } => {
            let _ = reply.send(Err(RoomError::Closed));
        }
        Command::AddMembers { reply, .. } => {
            let _ = reply.send(Err(RoomError::Closed));
        }
        Command::Remove { reply, .. } => {
            let _ = reply.send(Err(RoomError::Closed));
        }
        Command::Snapshot { reply } => {
            let _ = reply.send(Err(RoomError::Closed));
        }
        Command::Custom { reply, .. } => {
            let _ = reply.send(Err(RoomError::Closed));
        }
        Command::Detach { .. } => {}
    }
}

/// What a façade's custom change may do inside the actor. Every change that other subscribers
/// should see goes through a method here, which versions and broadcasts it.
pub struct Ops<'a> {
    room: &'a mut Room,
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
        self.room.updated_at = now_ms();
        &mut self.room.spec.attrs
    }
    /// Announces the current attributes to every subscriber (one `updated` event).
    pub fn publish_attrs(&mut self) -> u64 {
        let version = self.room.bump();
        let frame = ServerMsg::Updated {
            room: Cow::Borrowed(self.room.id.as_str()),
            version,
            attrs: Cow::Borrowed(&self.room.spec.attrs),
        }
        .to_bytes();
        self.room.broadcast(frame, "other");
        version
    }
    /// Member cap.
    pub fn set_max_members(&mut self, n: usize) {
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
        self.room.add_members(members)
    }
    /// Removes members (one `left` event). Returns its version.
    pub fn remove(
        &mut self,
        ids: &[MemberId],
        reason: LeaveReason,
        by: Option<&MemberId>,
    ) -> Option<u64> {
        self.room.remove(ids, reason, by)
    }
    /// Sets a member's state (one `state` event).
    pub fn set_state(&mut self, id: &MemberId, state: Value) {
        self.room.set_state(id, state)
    }
    /// Transfers the host (one `host` event). False if `id` is not a member.
    pub fn set_host(&mut self, id: &MemberId, by: Option<&MemberId>) -> bool {
        if !self.room.members.set_host(id.as_str()) {
            return false;
        }
        let version = self.room.bump();
        let frame = ServerMsg::Host {
            room: Cow::Borrowed(self.room.id.as_str()),
            version,
            host: Cow::Borrowed(id.as_str()),
            by: by.map(|b| Cow::Borrowed(b.as_str())),
        }
        .to_bytes();
        self.room.broadcast(frame, "host");
        true
    }
    /// Closes the room after this change.
    pub fn close(&mut self, reason: &str) {
        self.room.close(reason)
    }
}
