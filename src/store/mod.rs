//! Durable records: the storage seam and its group-commit writer.
//!
//! Everything an API call commits lives here as well as in memory: room records (a façade
//! room's settings, its members, host, bans, version and expiry; a native room's members at the
//! last presence checkpoint), PLYR task results until their TTL, counters, and the webhook
//! delivery queue. The room actors stay the only code that changes a room: they *stage* their
//! record here ([`Store::put_room`]: a map insert under a short lock, never a wait on disk),
//! latest write wins. One writer thread commits whatever is staged in one transaction per cycle
//! (group commit) through a [`Backend`]: SQLite on the embedded default ([`sqlite`]), Redis in
//! a cluster (later, through the same trait).
//!
//! An answer never precedes its commit: a REST handler's change is staged by the actor *before*
//! the actor replies, and the request ends with [`Store::flush`], a barrier that returns once a
//! cycle that began after it has committed (so it covers every record staged before it). A
//! failed commit keeps what was staged (retried next cycle, older values never overwrite newer
//! ones) and fails the barrier: the caller answers 503 instead of acknowledging.
//!
//! - [`records`]: the record types, as stored (JSON bodies, versioned by `serde` defaults).
//! - [`sqlite`]: the embedded backend (WAL, versioned migrations, refuses newer schemas).

pub mod records;
pub mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

pub use records::{Kind, Loaded, QueuedDelivery, RoomRecord};

/// Everything the storage layer can refuse.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be opened or read (corrupt, not a database, permissions).
    #[error("cannot open the data file {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file was written by a newer rollcall (its schema version is higher than ours).
    #[error(
        "the data file {path} has schema version {found}, newer than this binary's {known}: \
         refusing to open it (upgrade rollcall, or point --data-dir elsewhere)"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// A commit failed (disk full, read-only, I/O error); nothing staged was lost.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// A record store the writer thread commits to. Calls run on that one thread, in order.
pub trait Backend: Send + 'static {
    /// Reads everything back at start (expired records are left out and purged).
    fn load(&mut self, now_ms: i64) -> Result<Loaded, StoreError>;
    /// Commits one batch atomically.
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError>;
    /// Whether what is committed outlives the process.
    fn durable(&self) -> bool;
}

/// A record's body and when it may be forgotten (ms since the epoch; `None`: never).
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// JSON text.
    pub json: String,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
}

/// What one cycle commits: the latest value of every staged record (`None`: delete), new
/// webhook deliveries, and acknowledged ones.
#[derive(Debug, Default)]
pub struct Batch {
    /// `(kind, key)` → body or tombstone.
    pub records: HashMap<(Kind, String), Option<Body>>,
    /// New deliveries, in `seq` order.
    pub deliveries: Vec<QueuedDelivery>,
    /// `(seq, endpoint)` of deliveries done with.
    pub acks: Vec<(u64, String)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.deliveries.is_empty() && self.acks.is_empty()
    }

    /// Puts a failed batch back under what was staged since (newer values win).
    fn restage(&mut self, mut older: Batch) {
        for (k, v) in older.records.drain() {
            self.records.entry(k).or_insert(v);
        }
        older.deliveries.append(&mut self.deliveries);
        self.deliveries = older.deliveries;
        older.acks.append(&mut self.acks);
        self.acks = older.acks;
    }
}

/// Barrier progress: every ticket up to `ok` is committed; up to `failed`, its cycle failed.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    ok: u64,
    failed: u64,
}

struct Shared {
    staged: Batch,
    /// Barrier tickets handed out.
    tickets: u64,
    /// A batch is being committed (taken from `staged`, not yet settled).
    busy: bool,
    stop: bool,
}

/// The store handle: cheap to clone, shared by the actors, the façades and the webhooks.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

struct Inner {
    shared: Mutex<Shared>,
    wake: Condvar,
    progress: watch::Sender<Progress>,
    durable: bool,
    location: String,
    /// Staged webhook deliveries allowed before new ones are refused (bounded memory).
    max_staged_deliveries: usize,
    health: Health,
}

/// Commit counters, read by `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct Health {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Commits that failed (each is retried).
    pub failures: AtomicU64,
    /// The last commit failed and none has succeeded since.
    pub failing: AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.0.location)
            .field("durable", &self.0.durable)
            .finish()
    }
}

/// How long the writer waits for more work after the first item of a cycle: lets a burst of
/// changes share one commit without delaying a lone one noticeably.
const GATHER: Duration = Duration::from_micros(200);
/// Back-off after a failed commit before the next try.
const RETRY: Duration = Duration::from_millis(250);

impl Store {
    /// Opens the store described by `data_dir` (`None`: ephemeral, in memory), loads what it
    /// holds, and starts the writer thread.
    pub fn open(data_dir: Option<&std::path::Path>) -> Result<(Self, Loaded), StoreError> {
        let (backend, location) = match data_dir {
            Some(dir) => {
                let path = dir.join(sqlite::FILE);
                let b = sqlite::Sqlite::open_file(dir, &path)?;
                (b, path.display().to_string())
            }
            None => (sqlite::Sqlite::open_memory()?, ":memory:".to_owned()),
        };
        Self::start(Box::new(backend), location)
    }

    /// Starts a store over any backend.
    pub fn start(
        mut backend: Box<dyn Backend>,
        location: String,
    ) -> Result<(Self, Loaded), StoreError> {
        let loaded = backend.load(crate::room::now_ms())?;
        let (progress, _) = watch::channel(Progress::default());
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared {
                staged: Batch::default(),
                tickets: 0,
                busy: false,
                stop: false,
            }),
            wake: Condvar::new(),
            progress,
            durable: backend.durable(),
            location,
            max_staged_deliveries: 100_000,
            health: Health::default(),
        });
        let writer = inner.clone();
        std::thread::Builder::new()
            .name("rollcall-store".into())
            .spawn(move || writer.run(backend))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok((Self(inner), loaded))
    }

    /// Whether records outlive the process (false with `--ephemeral`).
    pub fn durable(&self) -> bool {
        self.0.durable
    }

    /// Commit counters.
    pub fn health(&self) -> &Health {
        &self.0.health
    }

    /// Where the data lives (a file path, or `:memory:`).
    pub fn location(&self) -> &str {
        &self.0.location
    }

    /// Stages a record (latest wins). Never waits for disk.
    pub fn put(&self, kind: Kind, key: &str, body: Body) {
        self.stage(|b| {
            b.records.insert((kind, key.to_owned()), Some(body));
        });
    }

    /// Stages a deletion.
    pub fn delete(&self, kind: Kind, key: &str) {
        self.stage(|b| {
            b.records.insert((kind, key.to_owned()), None);
        });
    }

    /// Stages a room's record.
    pub fn put_room(&self, rec: &RoomRecord) {
        // A record is strings, numbers and JSON values: serializing it cannot fail.
        let json = serde_json::to_string(rec).unwrap_or_default();
        self.put(
            Kind::Room,
            &rec.id,
            Body {
                json,
                expires_at: None,
            },
        );
    }

    /// Stages webhook deliveries; false (nothing staged) when the staging bound is reached.
    pub fn enqueue(&self, deliveries: Vec<QueuedDelivery>) -> bool {
        let max = self.0.max_staged_deliveries;
        let mut ok = true;
        self.stage(|b| {
            if b.deliveries.len() + deliveries.len() > max {
                ok = false;
            } else {
                b.deliveries.extend(deliveries);
            }
        });
        ok
    }

    /// Stages the end of a delivery to one endpoint (delivered or given up).
    pub fn ack(&self, seq: u64, endpoint: &str) {
        self.stage(|b| b.acks.push((seq, endpoint.to_owned())));
    }

    fn stage(&self, f: impl FnOnce(&mut Batch)) {
        let mut s = self.lock();
        f(&mut s.staged);
        drop(s);
        self.0.wake.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock()
    }

    /// Waits until everything staged before this call is committed. Returns at once with
    /// nothing staged. An error means the commit failed: do not acknowledge.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = {
            let mut s = self.lock();
            if s.staged.is_empty() && !s.busy {
                // Nothing staged and nothing being committed: everything before us is settled.
                // (A failed batch is put back into `staged` before `busy` clears.)
                return Ok(());
            }
            s.tickets += 1;
            s.tickets
        };
        self.0.wake.notify_one();
        let mut rx = self.0.progress.subscribe();
        loop {
            let p = *rx.borrow_and_update();
            if p.ok >= ticket {
                return Ok(());
            }
            if p.failed >= ticket {
                return Err(StoreError::Unavailable(
                    "the commit failed; see the server log".into(),
                ));
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Unavailable("the store stopped".into()));
            }
        }
    }

    /// Stops the writer after its current cycle (what is staged is committed first).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.0.wake.notify_one();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A poisoned lock means a panic while staging (a map insert): the data is usable.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer thread: take what is staged, commit it, report, repeat.
    fn run(self: Arc<Self>, mut backend: Box<dyn Backend>) {
        let mut failing = false;
        loop {
            let mut s = self.lock();
            while s.staged.is_empty() && !s.stop && s.tickets <= self.settled() {
                s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if s.stop && s.staged.is_empty() {
                let t = s.tickets;
                drop(s);
                self.progress.send_modify(|p| p.ok = p.ok.max(t));
                return;
            }
            drop(s);
            // Gather: a burst staged right behind the first change joins this commit.
            std::thread::sleep(GATHER);
            let mut s = self.lock();
            let batch = std::mem::take(&mut s.staged);
            let covered = s.tickets;
            s.busy = !batch.is_empty();
            drop(s);
            if batch.is_empty() {
                self.progress.send_modify(|p| p.ok = p.ok.max(covered));
                continue;
            }
            let result = backend.commit(&batch);
            let mut s = self.lock();
            s.busy = false;
            if result.is_err() {
                s.staged.restage(batch);
            }
            drop(s);
            match result {
                Ok(()) => {
                    self.health.commits.fetch_add(1, Ordering::Relaxed);
                    self.health.failing.store(false, Ordering::Relaxed);
                    if failing {
                        tracing::info!(store = %self.location, "storage writes succeed again");
                        failing = false;
                    }
                    self.progress.send_modify(|p| p.ok = p.ok.max(covered));
                }
                Err(e) => {
                    self.health.failures.fetch_add(1, Ordering::Relaxed);
                    self.health.failing.store(true, Ordering::Relaxed);
                    if !failing {
                        tracing::error!(store = %self.location, error = %e, "storage commit failed; writes answer 503 until it succeeds");
                        failing = true;
                    }
                    self.progress
                        .send_modify(|p| p.failed = p.failed.max(covered));
                    std::thread::sleep(RETRY);
                }
            }
        }
    }

    /// The highest ticket settled (committed or failed).
    fn settled(&self) -> u64 {
        let p = *self.progress.borrow();
        p.ok.max(p.failed)
    }
}

#[cfg(test)]
mod tests;
