//! Counters and latency histograms shared by thousands of client tasks.
//!
//! Counters are relaxed atomics. Latencies go into a histogram sharded by client index: each
//! shard is a `std::sync::Mutex` held only for one `record` (never across `.await`), so 10,000
//! receivers on two cores rarely meet on one lock, and the shards merge at the end.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Latency unit: microseconds, up to 10 minutes, 3 significant digits.
fn new_hist() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// A latency histogram in microseconds, sharded for concurrent writers.
pub struct Hist {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Hist {
    /// 32 shards.
    pub fn new() -> Self {
        Self {
            shards: (0..32).map(|_| Mutex::new(new_hist())).collect(),
        }
    }

    /// Records `micros` from writer `who`.
    pub fn record(&self, who: usize, micros: u64) {
        let mut h = self.shards[who % self.shards.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        h.saturating_record(micros.max(1));
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for s in &self.shards {
            let h = s.lock().unwrap_or_else(|p| p.into_inner());
            // Same bounds on both sides: adding cannot fail.
            all.add(&*h).expect("same histogram bounds");
        }
        all
    }
}

/// Correctness and progress counters of one run.
#[derive(Default)]
pub struct Counters {
    /// Sockets connected and upgraded.
    pub opened: AtomicU64,
    /// Connection or upgrade failures.
    pub conn_failures: AtomicU64,
    /// Requests refused with `error`, unexpected closes, unparsable frames.
    pub errors: AtomicU64,
    /// Server frames received.
    pub frames: AtomicU64,
    /// Versioned events received.
    pub events: AtomicU64,
    /// Versions skipped without a panel (missed events).
    pub gaps: AtomicU64,
    /// The same version received twice.
    pub duplicates: AtomicU64,
    /// A version lower than one already seen.
    pub out_of_order: AtomicU64,
    /// A `left` naming a member the client did not have, or a `joined` of one it had.
    pub inconsistent: AtomicU64,
    /// Panels after the first (resyncs of a lagging socket).
    pub resyncs: AtomicU64,
    /// Versions jumped over by such a resync (announced, not missed).
    pub resync_skipped: AtomicU64,
    /// Latency samples recorded.
    pub samples: AtomicU64,
}

impl Counters {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
    /// Reads `c`.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// A monotonic clock shared by the tasks of one process: nanoseconds since `epoch`, stored in
/// atomics (0 = unset).
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// Starts now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }
    /// Nanoseconds since the epoch, never 0.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }
}

/// Wall-clock nanoseconds since the Unix epoch: a timestamp another process can compare.
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Prints a progress line to stderr every second until `stop` resolves.
pub async fn progress(
    label: &'static str,
    c: std::sync::Arc<Counters>,
    extra: impl Fn() -> String + Send + 'static,
    stop: tokio_util::sync::CancellationToken,
) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let line = format!(
            "[{label}] opened {} failed {} events {} errors {} gaps {} dups {} {}",
            Counters::get(&c.opened),
            Counters::get(&c.conn_failures),
            Counters::get(&c.events),
            Counters::get(&c.errors),
            Counters::get(&c.gaps),
            Counters::get(&c.duplicates),
            extra()
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
    if tty {
        eprintln!();
    }
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
