//! Process-wide counters, bumped with relaxed atomics on the hot path and read by `/metrics`
//! and the operator endpoints. Plain atomics keep the room actor free of any exporter's types.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::frame::Kind;
use crate::protocol::LeaveReason;

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

/// Upper bounds (seconds) of the fan-out latency histogram buckets; `+Inf` is implied.
pub const FANOUT_BUCKETS: [f64; 12] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.05,
];

/// Task states counted by [`Stats::task`] (the game façade's async tasks); anything else is
/// counted as `other`.
pub const TASK_STATES: [&str; 6] = [
    "pending",
    "success",
    "failed",
    "timeout",
    "not_found",
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
    members: AtomicI64,
    fanout: Histogram,
    tasks: [AtomicU64; TASK_STATES.len()],
    conns: Conns,
}

/// Why a TCP connection was refused (the `reason` label of `rollcall_connections_refused`).
pub const REFUSAL_REASONS: [&str; 2] = ["at_capacity", "fd_exhausted"];

/// TCP connection counters (before any upgrade): open now, refused, closed by a deadline.
#[derive(Debug, Default)]
struct Conns {
    open: AtomicI64,
    /// The highest `open` since [`Stats::take_connection_peak`] last read it.
    peak: AtomicI64,
    refused: [AtomicU64; REFUSAL_REASONS.len()],
    deadlines: [AtomicU64; crate::deadlines::Phase::ALL.len()],
}

/// A fixed-bucket latency histogram on plain atomics (buckets: [`FANOUT_BUCKETS`]).
#[derive(Debug, Default)]
struct Histogram {
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: [AtomicU64; FANOUT_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// A point-in-time copy of a histogram, in the exporter's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound, count in this bucket alone)`, ending with `+Inf`; the exporter makes
    /// them cumulative.
    pub buckets: Vec<(f64, u64)>,
}

impl Stats {
    /// One event of `kind`, pushed to `delivered` outboxes, counted under its [`EVENT_KINDS`]
    /// label. `updated` counts as `other` (exported as `type="updated"`); panels, `kicked` and
    /// replies are never broadcast, and would count there too.
    pub fn event(&self, kind: Kind, delivered: u64) {
        let i = match kind {
            Kind::Joined => 0,
            Kind::Left(LeaveReason::Leave) => 1,
            Kind::Left(LeaveReason::Kick) => 2,
            Kind::Left(LeaveReason::Left) => 3,
            Kind::Left(LeaveReason::Disconnect) => 4,
            Kind::Left(LeaveReason::Timeout) => 5,
            Kind::State => 6,
            Kind::Host => 7,
            Kind::Closed => 8,
            Kind::Panel | Kind::Updated | Kind::Kicked | Kind::Reply => 9,
        };
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
    /// `delta` members joined (+) or left (-) some room (kept by the room actors).
    pub fn members_add(&self, delta: i64) {
        if delta != 0 {
            self.members.fetch_add(delta, Relaxed);
        }
    }
    /// Members in all rooms now.
    pub fn members(&self) -> i64 {
        self.members.load(Relaxed)
    }
    /// One event took `took` to push into every subscriber's outbox.
    pub fn fanout(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = FANOUT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(FANOUT_BUCKETS.len());
        let h = &self.fanout;
        h.buckets[i].fetch_add(1, Relaxed);
        h.sum_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        h.count.fetch_add(1, Relaxed);
    }
    /// The fan-out latency histogram so far.
    pub fn fanout_histogram(&self) -> HistogramSnapshot {
        let h = &self.fanout;
        let buckets: Vec<(f64, u64)> = FANOUT_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&h.buckets)
            .map(|(le, n)| (le, n.load(Relaxed)))
            .collect();
        HistogramSnapshot {
            sum: h.sum_nanos.load(Relaxed) as f64 / 1e9,
            // The count is the buckets' total, so `_count` and `le="+Inf"` always agree.
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
    /// An async task (the game façade's) reached `state` (`PENDING`, `SUCCESS`, `FAILED`,
    /// `TIMEOUT`, `NOT_FOUND`; case-insensitive; anything else counts as `other`).
    pub fn task(&self, state: &str) {
        let i = TASK_STATES
            .iter()
            .position(|k| k.eq_ignore_ascii_case(state))
            .unwrap_or(TASK_STATES.len() - 1);
        self.tasks[i].fetch_add(1, Relaxed);
    }
    /// A TCP connection was accepted (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        let open = self.conns.open.fetch_add(delta, Relaxed) + delta;
        if delta > 0 {
            self.conns.peak.fetch_max(open, Relaxed);
        }
    }
    /// The most TCP connections open at once since the last call (a burst shorter than the
    /// memory task's tick still counts); starts over from the count open now.
    pub fn take_connection_peak(&self) -> i64 {
        let open = self.conns.open.load(Relaxed);
        self.conns.peak.swap(open, Relaxed).max(open)
    }
    /// TCP connections open now (WebSockets included).
    pub fn connections(&self) -> i64 {
        self.conns.open.load(Relaxed)
    }
    /// A connection was refused; `at_capacity` is index 0, `fd_exhausted` 1 (see
    /// [`REFUSAL_REASONS`]).
    pub fn refused(&self, fd_exhausted: bool) {
        self.conns.refused[usize::from(fd_exhausted)].fetch_add(1, Relaxed);
    }
    /// Refusals so far by reason.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REFUSAL_REASONS
            .iter()
            .zip(&self.conns.refused)
            .map(|(k, v)| (*k, v.load(Relaxed)))
    }
    /// A connection was closed by the deadline of `phase`.
    pub fn deadline(&self, phase: crate::deadlines::Phase) {
        self.conns.deadlines[phase as usize].fetch_add(1, Relaxed);
    }
    /// Deadline closes so far by phase.
    pub fn deadlines(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        crate::deadlines::Phase::ALL
            .iter()
            .zip(&self.conns.deadlines)
            .map(|(p, v)| (p.label(), v.load(Relaxed)))
    }
    /// Tasks that reached each state so far.
    pub fn tasks(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        TASK_STATES
            .iter()
            .zip(&self.tasks)
            .map(|(k, v)| (*k, v.load(Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event kind is counted under the `/metrics` label it always had (leave reasons are
    /// kinds of `left`; `updated` counts as `other`).
    #[test]
    fn event_kinds_keep_their_labels() {
        let cases = [
            (Kind::Joined, "joined"),
            (Kind::Left(LeaveReason::Leave), "leave"),
            (Kind::Left(LeaveReason::Kick), "kick"),
            (Kind::Left(LeaveReason::Left), "left"),
            (Kind::Left(LeaveReason::Disconnect), "disconnect"),
            (Kind::Left(LeaveReason::Timeout), "timeout"),
            (Kind::State, "state"),
            (Kind::Host, "host"),
            (Kind::Closed, "closed"),
            (Kind::Updated, "other"),
        ];
        for (kind, label) in cases {
            let s = Stats::default();
            s.event(kind, 2);
            let counted: Vec<_> = s.events().filter(|(_, n)| *n > 0).collect();
            assert_eq!(counted, [(label, 1)], "{kind:?}");
            assert_eq!(s.deliveries(), 2);
        }
    }

    /// Each observation lands in one bucket; the count is their total.
    #[test]
    fn fanout_histogram_buckets_observations() {
        let s = Stats::default();
        s.fanout(Duration::from_micros(3));
        s.fanout(Duration::from_micros(300));
        s.fanout(Duration::from_secs(1));
        let h = s.fanout_histogram();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets.first(), Some(&(0.000_005, 1)));
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(h.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert!((h.sum - 1.000_303).abs() < 1e-9, "{}", h.sum);
    }

    /// A burst of connections that has closed again still shows in the next peak, once.
    #[test]
    fn connection_peak_remembers_a_burst_between_reads() {
        let s = Stats::default();
        for _ in 0..5 {
            s.connection(1);
        }
        for _ in 0..4 {
            s.connection(-1);
        }
        assert_eq!(s.connections(), 1);
        assert_eq!(s.take_connection_peak(), 5);
        assert_eq!(
            s.take_connection_peak(),
            1,
            "starts over from the count open now"
        );
    }

    /// Task states are matched case-insensitively; unknown ones land in `other`.
    #[test]
    fn task_states_are_normalised() {
        let s = Stats::default();
        s.task("PENDING");
        s.task("success");
        s.task("weird");
        let t: Vec<_> = s.tasks().filter(|(_, n)| *n > 0).collect();
        assert_eq!(t, vec![("pending", 1), ("success", 1), ("other", 1)]);
    }
}
