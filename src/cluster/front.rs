//! A room as one node sees it in cluster mode: a small task standing in the registry where the
//! room's actor would be, with the same mailbox of [`Command`]s.
//!
//! On its first command the front finds the room's owner through the lease. If the lease is
//! free (or its holder is dead) it takes it and runs the actor here (**local**): commands pass
//! through unchanged, closures included, and local sockets attach to the actor directly, so the
//! owner's own traffic pays one extra hop on the first command only. Otherwise (**remote**) it
//! forwards each command to the owner as a [`Call`] and completes the caller's reply with the
//! owner's answer; it remembers which of its sockets are in the room, so that when the owner
//! dies it takes the room over (or finds the new owner) and re-attaches them, without an event:
//! the new owner resumed their members from the record, in their grace.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::wire::{Call, Msg};
use super::{link, After, Cluster, Ctl, Pending};
use crate::conn::Conn;
use crate::ids::RoomId;
use crate::room::{refuse, refuse_with, Command, Registry, RoomError, RoomHandle, RoomSpec};

/// Starts a front and returns its handle (entered in the registry by the caller).
pub(super) fn spawn(
    c: Arc<Cluster>,
    registry: Registry,
    id: RoomId,
    spec: Option<RoomSpec>,
    incarnation: u64,
) -> RoomHandle {
    let (tx, rx) = mpsc::channel(registry.settings().room_mailbox);
    let me = RoomHandle::new(id.clone(), incarnation, tx);
    let (ctl_tx, ctl_rx) = mpsc::channel(256);
    c.fronts.insert(id.clone(), (incarnation, ctl_tx));
    if spec.is_some() {
        c.claiming.fetch_add(1, Ordering::AcqRel); // settled once the front has resolved
    }
    let front = Front {
        c,
        registry,
        id,
        spec,
        me: me.clone(),
        mode: Mode::Unresolved,
        conns: HashMap::new(),
        exiting: false,
        tries: 0,
    };
    let span = tracing::debug_span!("front", room = %front.id);
    tokio::spawn(tracing::Instrument::instrument(front.run(rx, ctl_rx), span));
    me
}

enum Mode {
    /// The owner is not known yet (or was lost).
    Unresolved,
    /// The actor runs here.
    Local(RoomHandle),
    /// The actor runs on this node.
    Remote(Arc<str>),
}

/// A socket of this node in the room, reached through the owner.
struct Tracked {
    conn: Arc<Conn>,
    member: bool,
}

struct Front {
    c: Arc<Cluster>,
    registry: Registry,
    id: RoomId,
    /// `None`: a façade room seen from a socket; it is never created here.
    spec: Option<RoomSpec>,
    me: RoomHandle,
    mode: Mode,
    conns: HashMap<u64, Tracked>,
    /// A graceful stop asked this (remote) front to go.
    exiting: bool,
    /// Refusals of the command being sent again (see [`super::calls::MAX_REFUSALS`]).
    tries: u8,
}

impl Front {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut ctl: mpsc::Receiver<Ctl>) {
        let idle = self.registry.settings().room_idle;
        if self.spec.is_some() {
            // A room created here (a façade's REST create, a first join) is claimed at once, so
            // the other nodes find its owner even before its first command.
            if let Err(e) = self.resolve().await {
                tracing::debug!(error = %e, "owner not resolved yet; the first command retries");
            }
            self.c.claiming.fetch_sub(1, Ordering::AcqRel);
            self.c.claimed.notify_waiters();
        }
        while !self.exiting {
            let actor = match &self.mode {
                Mode::Local(h) => Some(h.clone()),
                _ => None,
            };
            let unused = !matches!(self.mode, Mode::Local(_)) && self.conns.is_empty();
            // Control first: a command retried after `Closed` must meet the re-resolved owner.
            tokio::select! {
                biased;
                Some(ctl) = ctl.recv() => {
                    if !self.control(ctl).await {
                        break;
                    }
                }
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => break,
                },
                _ = async { match &actor { Some(h) => h.closed().await, None => std::future::pending().await } } => {
                    // The actor exited here (idle, closed): give the lease back.
                    self.c.releasing.insert(self.id.clone(), ());
                    self.c.owned.remove(&self.id);
                    self.c.release_after_records(&self.id).await;
                    break;
                }
                _ = tokio::time::sleep(idle), if unused => break,
            }
        }
        let incarnation = self.me.incarnation();
        self.c
            .fronts
            .remove_if(&self.id, |_, (n, _)| *n == incarnation);
        self.registry.forget(&self.id, incarnation);
        rx.close();
        while let Some(cmd) = rx.recv().await {
            refuse(cmd);
        }
    }

    async fn command(&mut self, cmd: Command) {
        if let Command::Checkpoint { stop, force, reply } = cmd {
            match &self.mode {
                Mode::Local(h) => {
                    let cmd = Command::Checkpoint { stop, force, reply };
                    if let Err(cmd) = h.send(cmd).await {
                        refuse(cmd);
                    }
                }
                // The owner checkpoints the room; a graceful stop lets this stand-in go.
                _ => {
                    self.exiting |= stop;
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            return;
        }
        if matches!(self.mode, Mode::Unresolved) {
            if let Err(e) = self.resolve().await {
                // A room that exists nowhere: this stand-in has nothing to stand for.
                self.exiting |= e == RoomError::Closed && self.spec.is_none();
                refuse_with(cmd, e);
                return;
            }
        }
        match &self.mode {
            Mode::Local(h) => {
                if let Err(cmd) = h.send(cmd).await {
                    refuse(cmd); // the actor exited: the loop notices and this front goes
                }
            }
            Mode::Remote(node) => {
                let node = node.clone();
                self.forward(&node, cmd).await;
            }
            Mode::Unresolved => refuse_with(cmd, RoomError::Unavailable),
        }
    }

    /// Finds the owner: takes the lease if it is free (only with a spec: this node may create
    /// the room) or its holder is dead; else forwards to the holder.
    async fn resolve(&mut self) -> Result<(), RoomError> {
        let c = self.c.clone();
        let room = self.id.as_str();
        let unavailable = |e: redis::RedisError| {
            tracing::debug!(error = %e, "resolving the owner failed");
            RoomError::Unavailable
        };
        if !c.redis_up() {
            return Err(RoomError::Unavailable);
        }
        for _ in 0..4 {
            match link::holder(&c, room).await.map_err(unavailable)? {
                None => {
                    // No owner: a façade room exists only with one (or with a record).
                    let has_rec = link::record(&c, room).await.map_err(unavailable)?.is_some();
                    if self.spec.is_none() && !has_rec {
                        return Err(RoomError::Closed);
                    }
                    // Listed first: if we die right after taking it, the survivors find it.
                    link::list_room(&c, room).await;
                    if link::take_lease(&c, room, None)
                        .await
                        .map_err(unavailable)?
                    {
                        return self.take(None).await;
                    }
                }
                Some(h) if h == c.node_id() => return self.take(None).await,
                Some(h) => {
                    if link::node_alive(&c, &h).await.map_err(unavailable)? {
                        self.mode = Mode::Remote(h.into());
                        return Ok(());
                    }
                    link::list_room(&c, room).await;
                    if link::take_lease(&c, room, Some(&h))
                        .await
                        .map_err(unavailable)?
                    {
                        return self.take(Some(&h)).await;
                    }
                }
            }
        }
        Err(RoomError::Unavailable)
    }

    /// We hold the lease: start the actor here, from the stored record if there is one, and
    /// re-attach this node's sockets that reached the room through a former owner. `dead`: the
    /// holder it was taken from, whose undelivered webhooks of the room go out first.
    async fn take(&mut self, dead: Option<&str>) -> Result<(), RoomError> {
        if let Some(from) = dead {
            super::hooks::take_over(&self.c, from, self.id.as_str()).await;
        }
        let rec = link::record(&self.c, self.id.as_str())
            .await
            .map_err(|_| RoomError::Unavailable)?;
        let spec = match (&rec, &self.spec) {
            (Some(r), _) => crate::room::registry::spec_of(r),
            (None, Some(s)) => s.clone(),
            (None, None) => {
                link::release_lease(&self.c, self.id.as_str()).await;
                return Err(RoomError::Closed);
            }
        };
        if rec.is_some() {
            self.c.stats.takeovers.fetch_add(1, Ordering::Relaxed);
            tracing::info!("room taken over from its record");
        }
        let facade = rec
            .clone()
            .filter(|r| r.kind != crate::room::RoomKind::Native);
        let h = self.registry.spawn_actor(self.id.clone(), spec, rec);
        self.c.owned.insert(self.id.clone(), ());
        for (_, t) in self.conns.drain() {
            let (reply, _answer) = oneshot::channel();
            let cmd = if t.member {
                Command::Join {
                    conn: t.conn,
                    state: None,
                    reply,
                }
            } else {
                Command::Watch {
                    conn: t.conn,
                    reply,
                }
            };
            if let Err(cmd) = h.send(cmd).await {
                refuse(cmd);
            }
        }
        self.mode = Mode::Local(h);
        if let (Some(rec), Some(f)) = (facade, self.c.on_takeover.get()) {
            f(&rec); // the façade finds the room through the registry: this front
        }
        Ok(())
    }

    /// What the node tells us; false: this front stops.
    async fn control(&mut self, ctl: Ctl) -> bool {
        match ctl {
            Ctl::NodeDead(n) => {
                if matches!(&self.mode, Mode::Remote(o) if *o == n) {
                    self.mode = Mode::Unresolved;
                    self.recover(&n).await;
                }
            }
            Ctl::Refused(node, w) => self.retry(node, *w).await,
            Ctl::Detached(conn) => {
                self.conns.remove(&conn);
            }
            Ctl::Resync => {
                if let Mode::Remote(node) = &self.mode {
                    let node = node.clone();
                    for id in self.conns.keys().copied().collect::<Vec<_>>() {
                        self.call(&node, Call::Sync { conn: id }, None).await;
                    }
                }
            }
            Ctl::Fenced => {
                if let Mode::Local(h) = &self.mode {
                    let _ = h.checkpoint_and_stop().await; // exiting either way
                    self.c.owned.remove(&self.id);
                }
                return false;
            }
        }
        true
    }

    /// The owner died: find (or become) the new one, within a bound, and re-attach our sockets
    /// there; the calls still waiting on the old owner go to the new one. Until then commands
    /// wait in the mailbox.
    async fn recover(&mut self, old: &Arc<str>) {
        let mut backoff = Duration::from_millis(100);
        for _ in 0..40 {
            match self.resolve().await {
                Ok(()) => break,
                Err(RoomError::Closed) => return,
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
        if matches!(&self.mode, Mode::Remote(n) if n == old) {
            return; // the same owner after all: what waits on it is still coming
        }
        let waiting = self.c.take_waiting(&self.id, old);
        if let Mode::Remote(node) = &self.mode {
            let node = node.clone();
            let mut again = std::collections::HashSet::new();
            for (_, w) in waiting {
                if let Call::Join { conn, .. } | Call::Watch { conn, .. } = &w.call {
                    again.insert(*conn);
                }
                self.call(&node, w.call, Some(w.pending)).await;
            }
            let tracked: Vec<(Arc<Conn>, bool)> = self
                .conns
                .values()
                .filter(|t| !again.contains(&t.conn.id().get()))
                .map(|t| (t.conn.clone(), t.member))
                .collect();
            for (conn, member) in tracked {
                let who = conn.identity().into();
                let id = conn.id().get();
                let call = if member {
                    Call::Join {
                        conn: id,
                        who,
                        state: None,
                    }
                } else {
                    Call::Watch { conn: id, who }
                };
                self.call(&node, call, None).await;
            }
        } else {
            // Taken over here: the sockets re-attached in `take`; other calls are refused (the
            // caller retries them against the new actor). Not resolved at all (Redis away):
            // every call is refused, joins included: nothing attached them anywhere.
            let local = matches!(self.mode, Mode::Local(_));
            for (_, w) in waiting {
                let r = match w.call {
                    Call::Join { .. } | Call::Watch { .. } if local => Ok(serde_json::Value::Null),
                    _ => Err(RoomError::Unavailable),
                };
                super::complete(w.pending, r);
            }
        }
    }

    /// `node` refused a call (it does not own the room, or not yet: it is taking the lease or
    /// giving it back), and the pause has passed: find the owner and handle the command again.
    async fn retry(&mut self, node: Arc<str>, w: super::Waiting) {
        let tries = w.tries.saturating_add(1);
        let Some(cmd) = super::calls::rebuild(&self.c, w.call, w.pending) else {
            return;
        };
        if matches!(&self.mode, Mode::Remote(o) if *o == node) {
            self.mode = Mode::Unresolved;
            self.recover(&node).await;
        }
        self.tries = tries;
        self.command(cmd).await;
        self.tries = 0;
    }

    /// Sends `call` to `node`; its answer completes `pending` (none: nobody waits).
    async fn call(&self, node: &Arc<str>, call: Call, pending: Option<Pending>) {
        let pending = pending.unwrap_or_else(|| Pending::Unit {
            reply: oneshot::channel().0,
            after: After::Nothing,
        });
        let req = self
            .c
            .register(node, &self.id, call.clone(), pending, self.tries);
        self.c.stats.calls_out.fetch_add(1, Ordering::Relaxed);
        let msg = Msg::Call {
            req,
            room: self.id.clone(),
            call,
        };
        self.c.send(node, msg).await;
    }

    fn track(&mut self, conn: &Arc<Conn>, member: bool) {
        let id = conn.id().get();
        self.c.locals.insert(id, Arc::downgrade(conn));
        let t = self.conns.entry(id).or_insert(Tracked {
            conn: conn.clone(),
            member,
        });
        t.member |= member;
    }

    /// Forwards one command to the owner `node`.
    async fn forward(&mut self, node: &Arc<str>, cmd: Command) {
        match &cmd {
            Command::Join { conn, .. } => self.track(conn, true),
            Command::Watch { conn, .. } => self.track(conn, false),
            Command::Leave { conn, .. } => {
                self.conns.remove(&conn.id().get());
            }
            Command::Detach { conn, .. } => {
                self.conns.remove(&conn.get());
            }
            _ => {}
        }
        let (call, pending) = match super::calls::split(cmd, &self.me) {
            Ok(split) => split,
            // A checkpoint is answered in `command`, never forwarded; a façade's own change
            // runs where the room's actor is (its REST call is forwarded over HTTP instead).
            Err(cmd) => return refuse_with(cmd, RoomError::Unavailable),
        };
        match pending {
            Some(p) => self.call(node, call, Some(p)).await,
            None => {
                // No answer expected (a closed socket): request id 0.
                self.c.stats.calls_out.fetch_add(1, Ordering::Relaxed);
                let msg = Msg::Call {
                    req: 0,
                    room: self.id.clone(),
                    call,
                };
                self.c.send(node, msg).await;
            }
        }
    }
}
