//! Process-wide counters, bumped with relaxed atomics on the hot path and read by `/metrics`
//! and the operator endpoints. Plain atomics keep the room actor free of any exporter's types.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Event kinds counted by [`Stats::event`] (leave reasons are kinds of `left`).
pub const EVENT_KINDS: [&str; 10] = [
    "joined",
    "leave",
    "kick",
    "left",
    "disconnect",
    "timeout",
    "state",
    "host",
    "closed",
    "other",
];

/// The counters.
#[derive(Debug, Default)]
pub struct Stats {
    events: [AtomicU64; EVENT_KINDS.len()],
    deliveries: AtomicU64,
    lagging: AtomicI64,
    resyncs: AtomicU64,
    slow_closes: AtomicU64,
    sockets: AtomicI64,
    sockets_total: AtomicU64,
}

impl Stats {
    /// One event of `kind`, pushed to `delivered` outboxes.
    pub fn event(&self, kind: &str, delivered: u64) {
        let i = EVENT_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(EVENT_KINDS.len() - 1);
        self.events[i].fetch_add(1, Relaxed);
        self.deliveries.fetch_add(delivered, Relaxed);
    }
    /// Events of each kind so far.
    pub fn events(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        EVENT_KINDS
            .iter()
            .zip(&self.events)
            .map(|(k, v)| (*k, v.load(Relaxed)))
    }
    /// Frames queued to sockets so far.
    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Relaxed)
    }
    /// `n` subscriptions started lagging.
    pub fn lagging_add(&self, n: u64) {
        self.lagging.fetch_add(n as i64, Relaxed);
    }
    /// A lagging subscription ended (resynced or detached).
    pub fn lagging_dec(&self) {
        self.lagging.fetch_sub(1, Relaxed);
    }
    /// Subscriptions lagging now.
    pub fn lagging(&self) -> i64 {
        self.lagging.load(Relaxed)
    }
    /// `n` lagging subscriptions got a fresh panel.
    pub fn resynced(&self, n: u64) {
        if n > 0 {
            self.resyncs.fetch_add(n, Relaxed);
            self.lagging.fetch_sub(n as i64, Relaxed);
        }
    }
    /// Resyncs so far.
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Relaxed)
    }
    /// `n` sockets were closed with 4008.
    pub fn slow_closed(&self, n: u64) {
        self.slow_closes.fetch_add(n, Relaxed);
    }
    /// Slow-consumer closes so far.
    pub fn slow_closes(&self) -> u64 {
        self.slow_closes.load(Relaxed)
    }
    /// A socket opened (+1) or closed (-1).
    pub fn socket(&self, delta: i64) {
        self.sockets.fetch_add(delta, Relaxed);
        if delta > 0 {
            self.sockets_total.fetch_add(1, Relaxed);
        }
    }
    /// Open sockets now.
    pub fn sockets(&self) -> i64 {
        self.sockets.load(Relaxed)
    }
    /// Sockets opened so far.
    pub fn sockets_total(&self) -> u64 {
        self.sockets_total.load(Relaxed)
    }
}
