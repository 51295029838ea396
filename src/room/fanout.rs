//! A room's subscribers and the fan-out of its events.
//!
//! Each subscriber is a socket (a member's or a watcher's) reached through its [`Conn`] handle.
//! An event is pushed as one shared [`Frame`] into every outbox with [`Conn::push`]: nothing here
//! ever waits. A full outbox makes the subscriber *lagging*: it gets no more diffs (they would
//! be stale) until [`Subscribers::resync`] can hand it a fresh panel, or closes it with 4008
//! once it has lagged for the slow-consumer bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::conn::Conn;
use crate::frame::{Frame, Push};
use crate::ids::{ConnId, MemberId};
use crate::protocol::close;
use crate::stats::Stats;

/// What a subscribed socket is in its room.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Role {
    /// It joined as this member.
    Member(MemberId),
    /// It only watches.
    Watcher,
}

/// One subscribed socket.
#[derive(Debug)]
pub(super) struct Sub {
    /// The socket.
    pub(super) conn: Arc<Conn>,
    /// The member it joined as; `None` for a watcher.
    pub(super) member: Option<MemberId>,
    /// Since when its outbox has been full, while lagging.
    lagging_since: Option<Instant>,
}

/// Every subscriber of one room.
#[derive(Debug, Default)]
pub(super) struct Subscribers {
    map: HashMap<ConnId, Sub>,
}

impl Subscribers {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.map.contains_key(&conn)
    }

    /// The member a socket joined as (`None` if it only watches or is not subscribed).
    pub(super) fn member_of(&self, conn: ConnId) -> Option<&MemberId> {
        self.map.get(&conn).and_then(|s| s.member.as_ref())
    }

    /// What a subscribed socket is in the room; `None` if it is not subscribed.
    pub(super) fn role_of(&self, conn: ConnId) -> Option<Role> {
        self.map.get(&conn).map(|s| match &s.member {
            Some(m) => Role::Member(m.clone()),
            None => Role::Watcher,
        })
    }

    /// The nodes holding these sockets (cluster records): a proxy's node, else `me`.
    pub(super) fn nodes_of(&self, conns: &[ConnId], me: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in conns {
            if let Some(sub) = self.map.get(c) {
                let n = sub.conn.node().unwrap_or(me);
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_owned());
                }
            }
        }
        out
    }

    pub(super) fn conns(&self) -> Vec<ConnId> {
        self.map.keys().copied().collect()
    }

    /// Adds a socket, or upgrades a watcher to a member.
    pub(super) fn subscribe(&mut self, conn: &Arc<Conn>, member: Option<MemberId>) {
        match self.map.get_mut(&conn.id()) {
            Some(sub) => {
                if member.is_some() {
                    sub.member = member;
                }
            }
            None => {
                self.map.insert(
                    conn.id(),
                    Sub {
                        conn: conn.clone(),
                        member,
                        lagging_since: None,
                    },
                );
            }
        }
    }

    /// Removes a socket.
    pub(super) fn remove(&mut self, conn: ConnId, stats: &Stats) -> Option<Sub> {
        let sub = self.map.remove(&conn)?;
        if sub.lagging_since.is_some() {
            stats.lagging_dec();
        }
        Some(sub)
    }

    /// Pushes `frame` to every subscriber that is not lagging. True if some became lagging
    /// (the caller schedules a resync).
    pub(super) fn broadcast(&mut self, frame: &Frame, stats: &Stats) -> bool {
        let now = Instant::now();
        let mut delivered = 0u64;
        let mut newly_lagging = 0u64;
        for sub in self.map.values_mut() {
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
        stats.event(frame.kind(), delivered);
        if newly_lagging > 0 {
            stats.lagging_add(newly_lagging);
        }
        newly_lagging > 0
    }

    /// Pushes `frame` to one subscriber. True if it became lagging.
    pub(super) fn push_to(&mut self, conn: ConnId, frame: Frame, stats: &Stats) -> bool {
        let Some(sub) = self.map.get_mut(&conn) else {
            return false;
        };
        if sub.lagging_since.is_some() || sub.conn.push(frame) != Push::Full {
            return false;
        }
        sub.lagging_since = Some(Instant::now());
        stats.lagging_add(1);
        true
    }

    /// Hands lagging subscribers a fresh panel (built at most once, by `panel`) once half their
    /// outbox is free; asks those lagging longer than `limit` to close with 4008. True while
    /// some are still lagging (the caller reschedules).
    pub(super) fn resync(
        &mut self,
        panel: impl FnOnce() -> Frame,
        limit: Duration,
        stats: &Stats,
    ) -> bool {
        let now = Instant::now();
        let mut panel = Some(panel);
        let mut frame: Option<Frame> = None;
        let mut still = false;
        let (mut resynced, mut closed) = (0u64, 0u64);
        for sub in self.map.values_mut() {
            let Some(since) = sub.lagging_since else {
                continue;
            };
            if sub.conn.is_closing() {
                continue; // asked to close already (here or by another room): its Detach is on the way
            }
            if sub.conn.free_slots() * 2 >= sub.conn.capacity() {
                if frame.is_none() {
                    frame = panel.take().map(|f| f());
                }
                if let Some(f) = &frame {
                    if sub.conn.push(f.clone()) == Push::Queued {
                        sub.lagging_since = None;
                        resynced += 1;
                        continue;
                    }
                }
            }
            if now.duration_since(since) >= limit {
                if sub.conn.close(close::SLOW_CONSUMER) {
                    closed += 1;
                }
                continue;
            }
            still = true;
        }
        stats.resynced(resynced);
        stats.slow_closed(closed);
        still
    }
}
