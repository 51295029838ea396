//! The embedded backend: one SQLite file (`<data_dir>/rollcall.db`) in WAL mode with
//! `synchronous = FULL`, so a commit survives a process crash and a power loss.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward in one transaction
//! at start. A file that is not a database, cannot be read, or carries a newer schema stops the
//! server with an error naming the file: it is never rewritten or wiped. A lock file
//! (`rollcall.lock`, held for the process's life) keeps a second server off the same data dir.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::records::{Kind, Loaded, QueuedDelivery, RoomRecord};
use super::{Backend, Batch, StoreError};

/// The database file's name inside the data dir.
pub const FILE: &str = "rollcall.db";
/// The lock file's name inside the data dir.
pub const LOCK: &str = "rollcall.lock";

/// Schema migrations: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: records (rooms, tasks, meta) and the webhook delivery queue.
    "CREATE TABLE records (
         kind TEXT NOT NULL,
         key TEXT NOT NULL,
         body TEXT NOT NULL,
         expires_at INTEGER,
         PRIMARY KEY (kind, key)
     ) WITHOUT ROWID;
     CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
     CREATE TABLE deliveries (
         seq INTEGER NOT NULL,
         endpoint TEXT NOT NULL,
         id TEXT NOT NULL,
         event TEXT NOT NULL,
         room TEXT NOT NULL,
         body BLOB NOT NULL,
         timestamp INTEGER NOT NULL,
         PRIMARY KEY (seq, endpoint)
     ) WITHOUT ROWID;",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Expired records are purged at most this often (ms).
const PURGE_EVERY_MS: i64 = 60_000;

/// An open database.
pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    durable: bool,
    last_purge: i64,
    /// Held for the process's life: one server per data dir.
    _lock: Option<File>,
}

impl Sqlite {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open_file(dir: &Path, path: &Path) -> Result<Self, StoreError> {
        let err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create the data dir {}: {e}", dir.display())))?;
        let lock_path = dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(format!("cannot open {}: {e}", lock_path.display())))?;
        lock.try_lock().map_err(|_| {
            err("another rollcall process is using this data dir (its lock is held)".into())
        })?;
        let conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
        let mut me = Self {
            conn,
            path: path.to_path_buf(),
            durable: true,
            last_purge: 0,
            _lock: Some(lock),
        };
        me.prepare()?;
        Ok(me)
    }

    /// An in-memory database (`--ephemeral`): the same code, nothing kept.
    pub fn open_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: ":memory:".into(),
            reason: e.to_string(),
        })?;
        let mut me = Self {
            conn,
            path: ":memory:".into(),
            durable: false,
            last_purge: 0,
            _lock: None,
        };
        me.prepare()?;
        Ok(me)
    }

    fn open_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Open {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Checks the file, sets the journal mode, migrates.
    fn prepare(&mut self) -> Result<(), StoreError> {
        // The first read: a file that is not a database fails here.
        let found: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.open_err(e))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if self.durable {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| self.open_err(e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(self.open_err(format!("cannot switch to WAL (journal mode {mode})")));
            }
            self.conn
                .execute_batch("PRAGMA synchronous = FULL;")
                .map_err(|e| self.open_err(e))?;
        }
        if found < SCHEMA_VERSION {
            let tx = self
                .conn
                .transaction()
                .map_err(|e| open_err(&self.path, e))?;
            for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                tx.execute_batch(m)
                    .map_err(|e| open_err(&self.path, format!("migration {}: {e}", i + 1)))?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| open_err(&self.path, e))?;
            tx.commit().map_err(|e| open_err(&self.path, e))?;
            if found > 0 {
                tracing::info!(file = %self.path.display(), from = found, to = SCHEMA_VERSION, "data file migrated");
            }
        }
        // A quick structural check: a damaged file is refused at start, not found mid-run.
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.open_err(e))?;
        if check != "ok" {
            return Err(self.open_err(format!("integrity check failed: {check}")));
        }
        Ok(())
    }
}

fn open_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Backend for Sqlite {
    fn durable(&self) -> bool {
        self.durable
    }

    fn load(&mut self, now_ms: i64) -> Result<Loaded, StoreError> {
        let mut out = Loaded::default();
        let path = self.path.clone();
        let e = |e: rusqlite::Error| open_err(&path, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT kind, key, body FROM records
                 WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY kind, key",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map(params![now_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(e)?;
        for row in rows {
            let (kind, key, body) = row.map_err(e)?;
            match Kind::parse(&kind) {
                Some(Kind::Room) => match serde_json::from_str::<RoomRecord>(&body) {
                    Ok(r) => out.rooms.push(r),
                    Err(err) => out.unreadable.push((kind, key, err.to_string())),
                },
                Some(Kind::Task) => out.tasks.push((key, body)),
                Some(Kind::Meta) => out.meta.push((key, body)),
                None => out
                    .unreadable
                    .push((kind, key, "unknown record kind".into())),
            }
        }
        drop(stmt);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, endpoint, id, event, room, body, timestamp FROM deliveries
                 ORDER BY seq, endpoint",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(QueuedDelivery {
                    seq: r.get::<_, i64>(0)? as u64,
                    endpoint: r.get(1)?,
                    id: r.get(2)?,
                    event: r.get(3)?,
                    room: r.get(4)?,
                    body: r.get(5)?,
                    timestamp: r.get(6)?,
                })
            })
            .map_err(e)?;
        for row in rows {
            out.deliveries.push(row.map_err(e)?);
        }
        Ok(out)
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let now = crate::room::now_ms();
        let purge = now - self.last_purge >= PURGE_EVERY_MS;
        let tx = self.conn.transaction().map_err(unavailable)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO records (kind, key, body, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, key) DO UPDATE
                     SET body = excluded.body, expires_at = excluded.expires_at",
                )
                .map_err(unavailable)?;
            let mut del = tx
                .prepare_cached("DELETE FROM records WHERE kind = ?1 AND key = ?2")
                .map_err(unavailable)?;
            for ((kind, key), body) in &batch.records {
                match body {
                    Some(b) => put
                        .execute(params![kind.as_str(), key, b.json, b.expires_at])
                        .map_err(unavailable)?,
                    None => del
                        .execute(params![kind.as_str(), key])
                        .map_err(unavailable)?,
                };
            }
            let mut add = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO deliveries
                     (seq, endpoint, id, event, room, body, timestamp)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(unavailable)?;
            for d in &batch.deliveries {
                add.execute(params![
                    d.seq as i64,
                    d.endpoint,
                    d.id,
                    d.event,
                    d.room,
                    d.body,
                    d.timestamp
                ])
                .map_err(unavailable)?;
            }
            let mut ack = tx
                .prepare_cached("DELETE FROM deliveries WHERE seq = ?1 AND endpoint = ?2")
                .map_err(unavailable)?;
            for (seq, endpoint) in &batch.acks {
                ack.execute(params![*seq as i64, endpoint])
                    .map_err(unavailable)?;
            }
            if purge {
                tx.execute(
                    "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    params![now],
                )
                .map_err(unavailable)?;
            }
        }
        tx.commit().map_err(unavailable)?;
        if purge {
            self.last_purge = now;
        }
        Ok(())
    }
}

/// The highest delivery `seq` in `loaded` (the next one is above it).
pub fn max_seq(loaded: &Loaded) -> u64 {
    loaded.deliveries.iter().map(|d| d.seq).max().unwrap_or(0)
}

/// Reads one meta value straight from a file (tests and tools).
pub fn read_meta(path: &Path, key: &str) -> Result<Option<String>, StoreError> {
    let conn = Connection::open(path).map_err(|e| open_err(path, e))?;
    conn.query_row(
        "SELECT body FROM records WHERE kind = 'meta' AND key = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| open_err(path, e))
}
