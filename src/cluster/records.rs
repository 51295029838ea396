//! The record write-through: the owner's room records go to Redis (`rc:{r:<room>}:rec`) from
//! one writer task, coalesced (the latest value of each room per round, every room's command in
//! flight at once: rooms live in different slots of a Redis Cluster, so never one pipeline). A
//! lease goes back only after the room's last record is written, so whoever takes the room next
//! resumes from what this node wrote last; a room whose record is deleted (it closed) gives its
//! names back ([`super::names`]).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::link::{rec_key, release, REC_TTL_MS};
use super::Cluster;
use crate::ids::RoomId;

/// What the record writer is asked.
pub(super) enum RecordOp {
    /// Write a room's record (JSON).
    Put(RoomId, String),
    /// Delete it (the room closed).
    Delete(RoomId),
    /// Give the room's lease back, once what was queued before is written; `true`: also take
    /// it off this node's room list (not when handing it over: the survivors adopt it).
    Release(RoomId, bool),
    /// Answer once everything queued before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes room records through, coalesced: the latest value of each room per round.
pub(super) async fn write(c: Arc<Cluster>, mut rx: mpsc::Receiver<RecordOp>) {
    let con = c.redis.clone();
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut latest: HashMap<RoomId, Option<String>> = HashMap::new();
        let mut flushed = Vec::new();
        let mut releases = Vec::new();
        for op in batch.drain(..) {
            match op {
                RecordOp::Put(room, json) => latest.insert(room, Some(json)),
                RecordOp::Delete(room) => latest.insert(room, None),
                RecordOp::Release(room, unlist) => {
                    releases.push((room, unlist));
                    None
                }
                RecordOp::Flush(done) => {
                    flushed.push(done);
                    None
                }
            };
        }
        if c.fenced() || (latest.is_empty() && releases.is_empty()) {
            // Fenced: another node owns our rooms now: never overwrite its records.
            for (room, _) in &releases {
                c.releasing.remove(room);
            }
            for done in flushed {
                let _ = done.send(());
            }
            continue;
        }
        // One command per room, all in flight at once (rooms live in different slots of a
        // Redis Cluster, so never one pipeline).
        let writes = latest.iter().map(|(room, rec)| {
            let mut con = con.clone();
            let cmd = match rec {
                Some(json) => {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(rec_key(room.as_str()))
                        .arg(json)
                        .arg("PX")
                        .arg(REC_TTL_MS);
                    cmd
                }
                None => {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(rec_key(room.as_str()));
                    cmd
                }
            };
            async move { cmd.query_async::<()>(&mut con).await }
        });
        let failed: Vec<redis::RedisError> = futures::future::join_all(writes)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if let Some(e) = failed.first() {
            tracing::warn!(error = %e, rooms = failed.len(), "record write-through failed");
        }
        // Rooms closed for good give their names (friendly URLs, invite codes) back.
        for room in latest
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(room, _)| room)
        {
            // Beside the writer, which never waits for them.
            let (c, room) = (c.clone(), room.clone());
            tokio::spawn(async move { super::names::drop_room(&c, room.as_str()).await });
        }
        // Leases go back only after the rooms' last records (or their deletion) are written:
        // whoever takes the room next resumes from what this node wrote last.
        for (room, unlist) in releases {
            release(&c, room.as_str(), unlist).await;
            c.releasing.remove(&room);
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}
