//! The room actor: the only code that mutates a room.
//!
//! It owns the member set, the subscribers (sockets of members and watchers), the version, the
//! kick bans and its timers (grace periods, idle exit, lagging-socket resync) in one
//! `DelayQueue`. Each applied change is one event: version + 1, serialized once, the same
//! `Frame` pushed, without waiting, into every subscriber's bounded outbox. The actor never awaits
//! a socket, so a slow client cannot stall the room; it only awaits its own mailbox.
//!
//! A subscriber whose outbox is full is *lagging*: it gets no more diffs (they would be stale),
//! and a resync timer retries every [`RESYNC_EVERY`] to hand it a fresh `panel` once half its
//! outbox is free; if it stays behind for `slow_consumer_secs` it is closed with 4008.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};

use super::fanout::Subscribers;
use super::handle::Command;
use super::members::Members;
use super::ops::Ops;
use super::{now_ms, Registry, RoomError, RoomHandle, RoomSpec, Snapshot};
use crate::conn::Conn;
use crate::frame::Frame;
use crate::ids::{ConnId, MemberId, RoomId};
use crate::protocol::{LeaveReason, MemberView, PanelRows};

/// Cluster: how soon after a change the room's record is written through to Redis (changes in
/// between are coalesced), so a node taking the room over finds at most this much missing.
pub(super) const WRITE_THROUGH: Duration = Duration::from_millis(100);

/// How often a room retries lagging subscribers.
pub(super) const RESYNC_EVERY: Duration = Duration::from_millis(50);

/// A room's timers (grace periods, idle exit, resync). The timer wheel costs ~6 KiB, so it is
/// allocated only while a timer is pending and dropped when the last one fired or was removed
/// (a quiet room of ten members otherwise pays ~0.6 KiB per socket for an empty wheel; see
/// bench/RESULTS.md). Keys never outlive the wheel: it is dropped only when empty.
#[derive(Default)]
pub(super) struct Timers(Option<DelayQueue<Timer>>);

impl Timers {
    pub(super) fn insert(&mut self, timer: Timer, after: Duration) -> delay_queue::Key {
        self.0
            .get_or_insert_with(DelayQueue::new)
            .insert(timer, after)
    }

    pub(super) fn remove(&mut self, key: &delay_queue::Key) {
        if let Some(q) = &mut self.0 {
            q.remove(key);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(DelayQueue::is_empty)
    }

    /// The next expired timer (pending forever when there is none: guard with `is_empty`).
    async fn next(&mut self) -> Option<Timer> {
        match &mut self.0 {
            Some(q) => q.next().await.map(|e| e.into_inner()),
            None => std::future::pending().await,
        }
    }

    /// Gives the wheel back when nothing is pending.
    fn trim(&mut self) {
        if self.0.as_ref().is_some_and(DelayQueue::is_empty) {
            self.0 = None;
        }
    }
}

/// The longest step an expiry timer is armed for: the wheel refuses (panics on) deadlines past
/// ~2 years, so a later expiry is reached in steps, each re-armed when it fires.
const EXPIRY_STEP: Duration = Duration::from_secs(365 * 24 * 60 * 60);

pub(super) enum Timer {
    Grace(MemberId),
    Idle,
    Resync,
    /// Cluster: write the record through if it changed.
    WriteThrough,
    /// The room closes with reason `expired` at this instant (game rooms' `expiresIn`).
    Expire(Instant),
}

/// One room's state and its event loop.
pub(super) struct Room {
    pub(super) id: RoomId,
    pub(super) me: RoomHandle,
    pub(super) spec: RoomSpec,
    pub(super) registry: Registry,
    pub(super) version: u64,
    pub(super) members: Members,
    pub(super) subs: Subscribers,
    pub(super) bans: HashMap<MemberId, Instant>,
    pub(super) timers: Timers,
    pub(super) idle_key: Option<delay_queue::Key>,
    pub(super) resync_key: Option<delay_queue::Key>,
    /// Cluster: a record write-through is scheduled (see [`WRITE_THROUGH`]).
    write_key: Option<delay_queue::Key>,
    /// Cluster: when the record was last written through (a quiet room writes at once).
    pub(super) last_write: Option<Instant>,
    pub(super) created_at: i64,
    /// The last serialized `panel` and its version. Every change a panel shows bumps the
    /// version, so a panel at the same version is byte-identical: a reconnect storm, syncs and
    /// silent re-attaches reuse it instead of serializing every member again.
    panel_cache: Option<(u64, Frame)>,
    pub(super) updated_at: i64,
    pub(super) exit: bool,
    /// This incarnation's epoch: a restarted or re-created room never reuses a version under
    /// the same epoch (protocol/README.md, "Ordering and versions").
    pub(super) epoch: String,
    /// When the room closes with reason `expired`, ms since the epoch (stored with the room).
    pub(super) expires_at: Option<i64>,
    /// Something a presence checkpoint should record changed since the last staged record.
    pub(super) dirty: bool,
    /// Exiting keeps the stored record (a graceful restart resumes the room).
    pub(super) keep_record: bool,
    /// Members restored from a checkpoint whose sockets have not come back: when their grace
    /// runs out they leave with `timeout`, not `disconnect`.
    pub(super) resumed: std::collections::HashSet<MemberId>,
}

impl Room {
    /// Spawns the actor for `id` and returns its handle.
    pub(super) fn spawn(
        id: RoomId,
        spec: RoomSpec,
        registry: Registry,
        incarnation: u64,
        restore: Option<crate::store::RoomRecord>,
    ) -> RoomHandle {
        let (tx, rx) = mpsc::channel(registry.settings().room_mailbox);
        let me = RoomHandle::new(id.clone(), incarnation, tx);
        let now = now_ms();
        let mut room = Room {
            id,
            me: me.clone(),
            spec,
            registry,
            version: 0,
            members: Members::default(),
            subs: Subscribers::default(),
            bans: HashMap::new(),
            timers: Timers::default(),
            idle_key: None,
            resync_key: None,
            write_key: None,
            last_write: None,
            created_at: now,
            panel_cache: None,
            updated_at: now,
            exit: false,
            epoch: super::record::new_epoch(),
            expires_at: None,
            dirty: true,
            keep_record: false,
            resumed: Default::default(),
        };
        match restore {
            Some(rec) => room.restore(rec),
            // A façade room exists from its creation on: recorded before the API answers.
            None if room.spec.kind != super::RoomKind::Native => room.persist(),
            None => {}
        }
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
                    Some(Command::Join { conn, state, reply }) => {
                        self.dirty = true;
                        if let Some(cmd) = self.on_join((conn, state, reply), &mut rx) {
                            self.handle(cmd);
                        }
                    }
                    Some(cmd) => self.handle(cmd),
                    // Unreachable while `self.me` holds a sender; kept for robustness.
                    None => break,
                },
                Some(t) = self.timers.next(), if !self.timers.is_empty() => self.on_timer(t),
            }
            if !self.exit {
                self.check_idle();
                let clustered = self.registry.cluster().is_some();
                if clustered && self.dirty && self.write_key.is_none() {
                    // A change after a quiet spell is written at once; the changes of a burst
                    // coalesce into one write per `WRITE_THROUGH`.
                    match self.last_write.map(|t| t.elapsed()) {
                        Some(e) if e < WRITE_THROUGH => {
                            let wait = WRITE_THROUGH - e;
                            self.write_key = Some(self.timers.insert(Timer::WriteThrough, wait));
                        }
                        _ => self.persist(),
                    }
                }
            }
            self.timers.trim();
        }
        // Members of a closed room are gone with it: keep the process-wide gauge true.
        self.registry
            .stats()
            .members_add(-(self.members.len() as i64));
        if !self.keep_record {
            self.unrecord();
        }
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
        // Every `reply.send` below may find its caller gone (it gave up waiting); the change is
        // made either way and there is nothing to undo. A REST change is staged in the store
        // *before* its reply (the caller's answer waits for the commit: `Store::flush`); socket
        // presence only marks the room for the next checkpoint.
        if !matches!(
            cmd,
            Command::Checkpoint { .. } | Command::Snapshot { .. } | Command::AreMembers { .. }
        ) {
            self.dirty = true;
        }
        match cmd {
            Command::Join { conn, state, reply } => {
                self.join_sockets(vec![(conn, state, reply)]);
            }
            Command::AddMembers { members, reply } => {
                let r = self.add_members(members);
                self.persist();
                let _ = reply.send(r);
            }
            Command::Watch { conn, reply } => {
                // A native token watches a lobby only as one of its players (tenant isolation).
                let outsider = self.spec.kind == super::RoomKind::Lobby
                    && matches!(conn.identity().access, crate::auth::Access::Native(_))
                    && !self.members.contains(conn.member().as_str());
                if outsider {
                    let _ = reply.send(Err(RoomError::Forbidden));
                } else {
                    self.subscribe(&conn, None);
                    self.send_panel(conn.id());
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Leave { conn, reply } => {
                let _ = reply.send(self.leave_socket(&conn));
            }
            Command::Remove {
                ids,
                reason,
                by,
                atomic,
                reply,
            } => {
                let r = self.remove_ids(ids, reason, by, atomic);
                self.persist();
                let _ = reply.send(r);
            }
            Command::Kick { by, target, reply } => {
                let r = self.kick(by, target);
                self.persist();
                let _ = reply.send(r);
            }
            Command::State { conn, state, reply } => {
                let r = match self.subs.member_of(conn.id()).cloned() {
                    Some(m) => {
                        self.set_state(&m, state);
                        Ok(())
                    }
                    None => Err(RoomError::NotMember),
                };
                let _ = reply.send(r);
            }
            Command::Sync { conn, reply } => {
                let r = if self.subs.contains(conn.id()) {
                    self.send_panel(conn.id());
                    Ok(())
                } else {
                    Err(RoomError::NotMember)
                };
                let _ = reply.send(r);
            }
            Command::Detach { conn, timed_out } => self.detach(conn, timed_out),
            Command::Snapshot { reply } => {
                let _ = reply.send(Ok(self.snapshot()));
            }
            Command::AreMembers { ids, reply } => {
                let r = ids.iter().map(|id| self.members.contains(id.as_str()));
                let _ = reply.send(Ok(r.collect()));
            }
            Command::Custom(op) => op(&mut Ops::new(self)),
            Command::Checkpoint { stop, force, reply } => {
                if stop || force || self.dirty {
                    self.persist();
                }
                if stop {
                    self.keep_record = true;
                    self.exit = true;
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Close { reason, reply } => {
                self.close(&reason);
                self.unrecord();
                let _ = reply.send(Ok(()));
            }
        }
    }

    pub(super) fn on_timer(&mut self, t: Timer) {
        self.dirty = true;
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
                    // A member restored from a checkpoint never came back: its connection is
                    // gone since the restart (a `timeout`), not closed within this process.
                    let reason = if self.resumed.remove(&m) {
                        LeaveReason::Timeout
                    } else {
                        LeaveReason::Disconnect
                    };
                    self.remove(&[m], reason, None);
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
            Timer::WriteThrough => {
                self.write_key = None;
                if self.dirty && !self.exit {
                    self.persist();
                }
            }
            Timer::Expire(at) => self.expire_at(at),
        }
    }

    /// Closes the room with reason `expired` at `at`, or arms the timer that will (in steps of
    /// at most [`EXPIRY_STEP`]). The timer lives in this room's wheel and goes with the room.
    pub(super) fn expire_at(&mut self, at: Instant) {
        let left = at.saturating_duration_since(Instant::now());
        self.expires_at = Some(now_ms().saturating_add(left.as_millis() as i64));
        if left.is_zero() {
            self.close("expired");
        } else {
            self.timers.insert(Timer::Expire(at), left.min(EXPIRY_STEP));
        }
    }

    // ----- subscribers and fan-out (see fanout.rs) ----------------------------------------

    pub(super) fn subscribe(&mut self, conn: &Arc<Conn>, member: Option<MemberId>) {
        self.subs.subscribe(conn, member);
        conn.attached(&self.id, &self.me);
    }

    pub(super) fn unsubscribe(&mut self, conn: ConnId) {
        if let Some(sub) = self.subs.remove(conn, self.registry.stats()) {
            sub.conn.detached(&self.id);
        }
    }

    pub(super) fn bump(&mut self) -> u64 {
        self.version += 1;
        self.updated_at = now_ms();
        self.version
    }

    /// Pushes one serialized event to every subscriber that is not lagging, then to the relay.
    pub(super) fn broadcast(&mut self, frame: Frame) {
        let started = std::time::Instant::now();
        let lagging = self.subs.broadcast(&frame, self.registry.stats());
        self.registry.stats().fanout(started.elapsed());
        if lagging {
            self.schedule_resync();
        }
        self.registry.relay().publish(&self.id, &frame);
    }

    fn panel_frame(&mut self) -> Frame {
        if let Some((version, frame)) = &self.panel_cache {
            if *version == self.version {
                return frame.clone();
            }
        }
        let host = self.members.host().cloned();
        let frame = PanelRows {
            room: self.id.as_str(),
            epoch: &self.epoch,
            version: self.version,
            host: host.as_ref().map(MemberId::as_str),
            members: self.members.rows(),
        }
        .to_frame();
        self.panel_cache = Some((self.version, frame.clone()));
        frame
    }

    pub(super) fn send_panel(&mut self, conn: ConnId) {
        let frame = self.panel_frame();
        self.push_to(conn, frame);
    }

    pub(super) fn push_to(&mut self, conn: ConnId, frame: Frame) {
        if self.subs.push_to(conn, frame, self.registry.stats()) {
            self.schedule_resync();
        }
    }

    fn schedule_resync(&mut self) {
        if self.resync_key.is_none() {
            self.resync_key = Some(self.timers.insert(Timer::Resync, RESYNC_EVERY));
        }
    }

    fn resync(&mut self) {
        let limit = self.registry.settings().slow_consumer;
        let panel = self.panel_frame();
        if self.subs.resync(|| panel, limit, self.registry.stats()) {
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

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            room: self.id.to_string(),
            kind: self.spec.kind,
            epoch: self.epoch.clone(),
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

/// Answers a command the room will never apply: `Closed` (or drops it when nobody waits).
pub(crate) fn refuse(cmd: Command) {
    refuse_with(cmd, RoomError::Closed)
}

/// Answers a command the room will never apply with `e` (or drops it when nobody waits).
pub(crate) fn refuse_with(cmd: Command, e: RoomError) {
    // Every reply below may find its caller gone; there is nothing to undo either way.
    match cmd {
        Command::Join { reply, .. }
        | Command::Watch { reply, .. }
        | Command::Leave { reply, .. }
        | Command::Kick { reply, .. }
        | Command::State { reply, .. }
        | Command::Sync { reply, .. }
        | Command::Close { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Command::AddMembers { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Command::Remove { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Command::Snapshot { reply } => {
            let _ = reply.send(Err(e.clone()));
        }
        Command::AreMembers { reply, .. } => {
            let _ = reply.send(Err(e.clone()));
        }
        Command::Checkpoint { reply, .. } => {
            if let Some(reply) = reply {
                let _ = reply.send(Err(e.clone()));
            }
        }
        // Dropping the change drops its reply channel: the caller sees `Closed`.
        Command::Custom(_) | Command::Detach { .. } => {}
    }
}
