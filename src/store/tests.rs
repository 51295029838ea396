//! The store's promises, on a real SQLite file: the barrier covers what was staged, a failed
//! commit loses nothing and never lets an older value win, a file it cannot trust is refused
//! untouched, and one data dir serves one process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rollcall-store-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn body(s: &str) -> Body {
    Body {
        json: s.into(),
        expires_at: None,
    }
}

fn delivery(seq: u64) -> QueuedDelivery {
    QueuedDelivery {
        seq,
        endpoint: "hook".into(),
        id: format!("id-{seq}"),
        event: "participant_left".into(),
        room: "r".into(),
        body: b"{}".to_vec(),
        timestamp: 1,
    }
}

/// What a flush returned is on disk: a second open reads it back, deletions and acks included,
/// and an expired record is not loaded.
#[tokio::test]
async fn flushed_records_survive_a_reopen() {
    let dir = temp_dir("reopen");
    {
        let (store, loaded) = Store::open(Some(&dir)).unwrap();
        assert!(loaded.rooms.is_empty() && store.durable());
        store.put(Kind::Meta, "a", body("1"));
        store.put(Kind::Meta, "b", body("2"));
        store.put(
            Kind::Task,
            "old",
            Body {
                json: "{}".into(),
                expires_at: Some(1),
            },
        );
        assert!(store.enqueue(vec![delivery(1), delivery(2)]));
        store.flush().await.unwrap();
        store.delete(Kind::Meta, "b");
        store.ack(1, "hook");
        store.flush().await.unwrap();
        store.stop();
    }
    // The writer thread releases the lock file when it exits; wait for it (bounded).
    let mut reopened = None;
    for _ in 0..100 {
        match Store::open(Some(&dir)) {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    let (_store, loaded) = reopened.expect("reopens once the first writer stopped");
    assert_eq!(loaded.meta, vec![("a".to_owned(), "1".to_owned())]);
    assert!(loaded.tasks.is_empty(), "expired records are not loaded");
    assert_eq!(loaded.deliveries, vec![delivery(2)]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A second process on the same data dir is refused while the first holds it.
#[test]
fn one_process_per_data_dir() {
    let dir = temp_dir("lock");
    let _first = Store::open(Some(&dir)).unwrap();
    let e = Store::open(Some(&dir)).unwrap_err().to_string();
    assert!(e.contains("another rollcall process"), "{e}");
    assert!(
        e.contains(&dir.join(sqlite::FILE).display().to_string()),
        "{e}"
    );
    drop(_first);
    let _ = std::fs::remove_dir_all(dir);
}

/// A file that is not a database, or one with a newer schema, is refused with its path named,
/// and left exactly as it was.
#[test]
fn untrusted_files_are_refused_untouched() {
    let dir = temp_dir("garbage");
    let file = dir.join(sqlite::FILE);
    let garbage = b"this is not a database, it is a shopping list: eggs, milk".repeat(200);
    std::fs::write(&file, &garbage).unwrap();
    let e = Store::open(Some(&dir)).unwrap_err().to_string();
    assert!(e.contains(&file.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), garbage);
    let _ = std::fs::remove_dir_all(&dir);

    let dir = temp_dir("newer");
    let file = dir.join(sqlite::FILE);
    {
        let c = rusqlite::Connection::open(&file).unwrap();
        c.pragma_update(None, "user_version", sqlite::SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&file).unwrap();
    let e = Store::open(Some(&dir)).unwrap_err();
    assert!(matches!(e, StoreError::NewerSchema { .. }), "{e}");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let _ = std::fs::remove_dir_all(dir);
}

/// What the fake backend committed, by record.
type Committed = HashMap<(Kind, String), Option<Body>>;

/// A backend that fails its first `fail` commits, and records what it committed.
struct Flaky {
    fail: Arc<AtomicUsize>,
    seen: Arc<Mutex<Committed>>,
}

impl Backend for Flaky {
    fn load(&mut self, _: i64) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("disk full".into()));
        }
        let mut seen = self.seen.lock().unwrap();
        for (k, v) in &batch.records {
            seen.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn durable(&self) -> bool {
        true
    }
}

/// A failed commit fails the barrier (the caller must not acknowledge), keeps what was staged,
/// and a value staged after the failure wins over the failed older one once commits succeed.
#[tokio::test]
async fn a_failed_commit_loses_nothing_and_never_resurrects_old_values() {
    let fail = Arc::new(AtomicUsize::new(1));
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let (store, _) = Store::start(
        Box::new(Flaky {
            fail: fail.clone(),
            seen: seen.clone(),
        }),
        "flaky".into(),
    )
    .unwrap();
    store.put(Kind::Room, "r", body("v1"));
    store.put(Kind::Room, "s", body("kept"));
    assert!(
        store.flush().await.is_err(),
        "the failed commit fails the barrier"
    );
    store.put(Kind::Room, "r", body("v2"));
    store.flush().await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.get(&(Kind::Room, "r".into())), Some(&Some(body("v2"))));
    assert_eq!(
        seen.get(&(Kind::Room, "s".into())),
        Some(&Some(body("kept")))
    );
}

/// A barrier with nothing staged returns at once; one with work waits for its commit.
#[tokio::test]
async fn an_empty_barrier_is_free() {
    let (store, _) = Store::open(None).unwrap();
    assert!(!store.durable());
    store.flush().await.unwrap();
    store.put(Kind::Meta, "k", body("v"));
    store.flush().await.unwrap();
    store.flush().await.unwrap();
}
