//! The inactivity `timeout`: who is still there, and the per-lobby task that drops who is not.
//!
//! A player is alive while it has an open WebSocket in the lobby's room or an open SSE stream
//! for the lobby, or while its last sign of life (create, join, heartbeat, an update it made, or
//! the moment its last socket/stream was last seen open) is younger than `timeout`. Each lobby
//! has one task that wakes every `timeout / 4` and runs [`Live::sweep`] *inside the room actor*
//! (`custom`), so a heartbeat is never raced: it is either before the sweep (and counts) or after
//! it. Dead players leave in one `left` event with reason `timeout` (the host migrates as for any
//! leave); when nobody alive remains, the lobby is deleted (room closed with reason `deleted`).
//! Work per wake-up is bounded by the lobby's own size. The task ends with the lobby or at
//! shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::index::Indexes;
use super::model::LobbyAttrs;
use super::ops::atomically;
use crate::ids::MemberId;
use crate::protocol::LeaveReason;
use crate::room::actor::Ops;

/// The shortest wake-up period (keeps tiny test timeouts from spinning).
const MIN_PERIOD: Duration = Duration::from_millis(50);

/// One lobby's liveness book.
#[derive(Debug)]
pub struct Live {
    timeout: Duration,
    inner: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    /// Last sign of life of every player the façade added and has not seen leave.
    seen: HashMap<MemberId, Instant>,
    /// Open SSE streams per player.
    streams: HashMap<MemberId, usize>,
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    /// Players removed with reason `timeout`.
    pub removed: Vec<MemberId>,
    /// Players the book knew that are no longer members (removed by a socket).
    pub vanished: Vec<MemberId>,
    /// The lobby was deleted (nobody alive).
    pub deleted: bool,
}

impl Live {
    /// A book for a lobby whose `timeout` is given.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            inner: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A poisoned lock only means a panic mid-insert into a map of instants; still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lobby's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A sign of life from `player` (also how a player enters the book).
    pub fn touch(&self, player: &MemberId) {
        self.book().seen.insert(player.clone(), Instant::now());
    }

    /// `player` left: forget it.
    pub fn forget(&self, player: &MemberId) {
        let mut b = self.book();
        b.seen.remove(player);
        b.streams.remove(player);
    }

    /// Every player in the book.
    pub fn known(&self) -> Vec<MemberId> {
        self.book().seen.keys().cloned().collect()
    }

    /// An SSE stream of `player` opened.
    pub fn stream_opened(&self, player: &MemberId) {
        *self.book().streams.entry(player.clone()).or_default() += 1;
    }

    /// An SSE stream of `player` closed: its timeout starts now.
    pub fn stream_closed(&self, player: &MemberId) {
        let mut b = self.book();
        if let Some(n) = b.streams.get_mut(player) {
            *n -= 1;
            if *n == 0 {
                b.streams.remove(player);
            }
        }
        if let Some(t) = b.seen.get_mut(player) {
            *t = Instant::now();
        }
    }

    /// Runs inside the room actor: drops dead players, deletes the lobby if nobody is alive.
    pub fn sweep(&self, ops: &mut Ops<'_>) -> Swept {
        let now = Instant::now();
        let members = ops.member_ids();
        let mut dead = Vec::new();
        let vanished;
        {
            let mut b = self.book();
            for m in &members {
                let attached = ops.has_socket(m.as_str()) || b.streams.contains_key(m);
                let seen = b.seen.entry(m.clone()).or_insert(now);
                if attached {
                    *seen = now;
                } else if now.duration_since(*seen) >= self.timeout {
                    dead.push(m.clone());
                }
            }
            vanished = b
                .seen
                .keys()
                .filter(|k| !ops.is_member(k.as_str()))
                .cloned()
                .collect::<Vec<_>>();
            for m in dead.iter().chain(&vanished) {
                b.seen.remove(m);
                b.streams.remove(m);
            }
        }
        if !dead.is_empty() {
            ops.remove(&dead, LeaveReason::Timeout, None);
            if let Ok(mut a) = LobbyAttrs::read(ops.attrs()) {
                a.touch();
                *ops.attrs_mut() = a.to_map();
            }
        }
        let deleted = dead.len() == members.len();
        if deleted {
            ops.close("deleted");
        }
        Swept {
            removed: dead,
            vanished,
            deleted,
        }
    }
}

/// Starts the liveness task of the lobby registered in `indexes` under `id`.
pub fn spawn(indexes: Arc<Indexes>, entry: Arc<super::index::LobbyEntry>) {
    let period = (entry.live.timeout() / 4).max(MIN_PERIOD);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = entry.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let live = entry.live.clone();
            match atomically(&entry.handle, move |ops| live.sweep(ops)).await {
                Ok(swept) => {
                    for p in swept.removed.iter().chain(&swept.vanished) {
                        indexes.release(&entry.scope, p, entry.id);
                    }
                    if !swept.removed.is_empty() {
                        tracing::debug!(lobby = %entry.id, count = swept.removed.len(), "players timed out");
                    }
                    if swept.deleted {
                        tracing::debug!(lobby = %entry.id, "lobby deleted: nobody alive");
                        indexes.forget(&entry.id);
                        return;
                    }
                }
                Err(_) => {
                    // The room is gone (deleted through the API meanwhile): nothing to watch.
                    indexes.forget(&entry.id);
                    return;
                }
            }
        }
    });
}
