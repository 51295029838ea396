//! The webhook outbox in Redis: webhooks stay at least once across a node's permanent death.
//!
//! Every delivery this node's webhook relay queues is also written, before its first attempt,
//! to `rc:{n:<node>}:hooks:<room>` (a hash: `<delivery id> <endpoint>` → the delivery as JSON)
//! and taken off when its endpoint is done with it; `rc:{n:<node>}:hookrooms` lists the rooms
//! with something kept. Every key of one node's outbox shares its hash tag, so each step below
//! is one script or one pipeline on one slot, on a Redis Cluster too.
//!
//! When a node dies:
//! - whoever takes one of its rooms over takes that room's backlog first, before the room's
//!   actor starts here ([`take_over`]): the backlog goes out ahead of the new owner's events, so
//!   the order per room holds;
//! - the rest (rooms that closed, or that another node took first) is claimed by the survivors'
//!   adoption ([`leftovers`]), and once more when they forget the node.
//!
//! A claim is a marker key (`rc:{n:<node>}:hookclaim:<room>`, 20 s): one survivor copies the
//! entries into its own outbox, then deletes them at the source. A survivor that dies between
//! the two leaves them for the next claim (delivered twice, never lost).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::conn::Redis;
use super::{link, Cluster};
use crate::metrics::WebhookMetrics;
use crate::store::QueuedDelivery;
use crate::webhook::{Origin, Outbox, WebhookRelay};

/// How long a claim on a dead node's room backlog holds before another survivor may retry it.
const CLAIM_MS: u64 = 20_000;
/// Acknowledgements waiting to be written (beyond: dropped, the entry may be delivered twice).
const ACK_QUEUE: usize = 16_384;
/// How long the dispatcher waits for an outbox write: past it the batch goes out anyway (and
/// is counted as an outbox failure), so a slow Redis never holds webhook dispatch back.
const PUT_TIMEOUT: Duration = Duration::from_millis(500);

fn hooks_key(node: &str, room: &str) -> String {
    format!("rc:{{n:{node}}}:hooks:{room}")
}
fn rooms_key(node: &str) -> String {
    format!("rc:{{n:{node}}}:hookrooms")
}
fn claim_key(node: &str, room: &str) -> String {
    format!("rc:{{n:{node}}}:hookclaim:{room}")
}
fn field(id: &str, endpoint: &str) -> String {
    format!("{id} {endpoint}")
}

/// One kept delivery, as stored.
#[derive(Serialize, Deserialize)]
struct Kept {
    seq: u64,
    endpoint: String,
    id: String,
    event: String,
    room: String,
    /// The JSON envelope, as text.
    body: String,
    timestamp: i64,
    /// The process that queued it (a restart under the same node id resends only older ones).
    #[serde(default)]
    boot: String,
}

impl Kept {
    fn new(q: &QueuedDelivery, boot: &str) -> Self {
        Self {
            seq: q.seq,
            endpoint: q.endpoint.clone(),
            id: q.id.clone(),
            event: q.event.clone(),
            room: q.room.clone(),
            body: String::from_utf8_lossy(&q.body).into_owned(),
            timestamp: q.timestamp,
            boot: boot.to_owned(),
        }
    }
}

impl From<Kept> for QueuedDelivery {
    fn from(k: Kept) -> Self {
        Self {
            seq: k.seq,
            endpoint: k.endpoint,
            id: k.id,
            event: k.event,
            room: k.room,
            body: k.body.into_bytes(),
            timestamp: k.timestamp,
        }
    }
}

/// A room's kept entries (`HGETALL`) that `keep` accepts, in their node's queue order
/// (unreadable ones are left out).
fn in_order(entries: Vec<(String, String)>, keep: impl Fn(&Kept) -> bool) -> Vec<QueuedDelivery> {
    let mut kept: Vec<QueuedDelivery> = entries
        .into_iter()
        .filter_map(|(_, json)| serde_json::from_str::<Kept>(&json).ok())
        .filter(|k| keep(k))
        .map(QueuedDelivery::from)
        .collect();
    kept.sort_by_key(|q| q.seq);
    kept
}

/// Deletes one entry; unlists the room when its hash is empty.
const ACK: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1";

/// Claims a room's backlog for `ARGV[1]` and returns it, unless a claim holds already (another
/// survivor's, or one of ours still under way).
const CLAIM: &str = r"
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('HGETALL', KEYS[1])";

/// Deletes the claimed entries and the claim; unlists the room when nothing is left.
const FINISH: &str = r"
for i = 2, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
return 1";

/// This node's outbox: what the webhook relay writes to and acknowledges in.
pub(super) struct RedisOutbox {
    redis: Redis,
    me: Arc<str>,
    /// Whether Redis answers (the cluster's heartbeat says), to fail fast while it does not.
    cluster: std::sync::Weak<Cluster>,
    /// This process's id in what it writes.
    pub(super) boot: String,
    acks: mpsc::Sender<(String, String)>,
    metrics: WebhookMetrics,
}

impl RedisOutbox {
    /// Starts the acknowledgement writer (one task, batches of up to 256 in one pipeline).
    pub(super) fn start(c: &Arc<Cluster>, metrics: &WebhookMetrics) -> Arc<Self> {
        let (acks, rx) = mpsc::channel(ACK_QUEUE);
        tokio::spawn(write_acks(Arc::downgrade(c), rx));
        Arc::new(Self {
            redis: c.redis.clone(),
            me: c.me.clone(),
            cluster: Arc::downgrade(c),
            boot: uuid::Uuid::new_v4().to_string(),
            acks,
            metrics: metrics.clone(),
        })
    }
}

impl Outbox for RedisOutbox {
    fn put<'a>(&'a self, batch: &'a [QueuedDelivery]) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            let mut rooms = HashSet::new();
            for q in batch {
                let json = serde_json::to_string(&Kept::new(q, &self.boot)).unwrap_or_default();
                pipe.hset(
                    hooks_key(&self.me, &q.room),
                    field(&q.id, &q.endpoint),
                    json,
                )
                .ignore();
                if rooms.insert(q.room.as_str()) {
                    pipe.sadd(rooms_key(&self.me), &q.room).ignore();
                }
            }
            let up = self.cluster.upgrade().is_some_and(|c| c.redis_up());
            let written = match up {
                true => {
                    let mut con = self.redis.clone();
                    tokio::time::timeout(PUT_TIMEOUT, pipe.query_async::<()>(&mut con)).await
                }
                false => Ok(Err((redis::ErrorKind::Io, "redis is down").into())),
            };
            match written {
                Ok(Ok(())) => true,
                failed => {
                    self.metrics.outbox_failures.inc_by(batch.len() as u64);
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(
                        error,
                        deliveries = batch.len(),
                        "webhook outbox write failed: these stay with this node only"
                    );
                    false
                }
            }
        })
    }

    fn ack(&self, room: &str, id: &str, endpoint: &str) {
        if self
            .acks
            .try_send((room.to_owned(), field(id, endpoint)))
            .is_err()
        {
            // Left in the outbox: only ever delivered again if this node dies.
            tracing::debug!(room, "webhook outbox acknowledgement dropped (queue full)");
        }
    }
}

/// Writes acknowledgements in batches (one pipeline on our slot per batch); a batch that fails
/// is tried again (with backoff) until it is written or the node is gone: an acknowledgement
/// lost here would have a survivor send the delivery again if this node died.
async fn write_acks(cluster: std::sync::Weak<Cluster>, mut rx: mpsc::Receiver<(String, String)>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let (redis, me) = (c.redis.clone(), c.me.clone());
        drop(c);
        let mut pipe = redis::pipe();
        for (room, field) in batch.drain(..) {
            pipe.cmd("EVAL")
                .arg(ACK)
                .arg(2)
                .arg(hooks_key(&me, &room))
                .arg(rooms_key(&me))
                .arg(field)
                .arg(&room)
                .ignore();
        }
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = pipe.query_async::<()>(&mut redis.clone()).await {
            tracing::debug!(error = %e, "webhook outbox acknowledgements not written yet");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            if cluster.strong_count() == 0 {
                return;
            }
        }
    }
}

/// Takes `room`'s backlog from dead node `from` into this node's queue (written to our outbox
/// first), ahead of what the room emits here next. Nothing to do without webhooks here.
pub(super) async fn take_over(c: &Cluster, from: &str, room: &str) {
    let Some(relay) = c.webhooks.get() else {
        return;
    };
    let claimed: Result<Option<Vec<(String, String)>>, _> = redis::Script::new(CLAIM)
        .key(hooks_key(from, room))
        .key(claim_key(from, room))
        .arg(&*c.me)
        .arg(CLAIM_MS)
        .invoke_async(&mut c.redis.clone())
        .await;
    let entries = match claimed {
        Ok(Some(e)) => e,
        Ok(None) => return, // another survivor's claim holds
        Err(e) => {
            tracing::warn!(%from, room, error = %e, "could not claim a dead node's webhooks");
            return;
        }
    };
    let fields: Vec<String> = entries.iter().map(|(f, _)| f.clone()).collect();
    let kept = in_order(entries, |_| true);
    if !kept.is_empty() && !relay.adopt(kept, Origin::Taken).await {
        // Not in our outbox: left at the source, and the claim lifted for the next try.
        let _: Result<i64, _> =
            redis::AsyncCommands::del(&mut c.redis.clone(), claim_key(from, room)).await;
        return;
    }
    let done: Result<i64, _> = redis::Script::new(FINISH)
        .key(hooks_key(from, room))
        .key(claim_key(from, room))
        .key(rooms_key(from))
        .arg(room)
        .arg(fields)
        .invoke_async(&mut c.redis.clone())
        .await;
    if let Err(e) = done {
        tracing::debug!(%from, room, error = %e, "claimed webhooks not cleared (sent twice)");
    }
}

/// How many rooms dead node `from` still keeps deliveries for (0 on an error: nothing known).
pub(super) async fn kept_rooms(c: &Cluster, from: &str) -> usize {
    redis::AsyncCommands::scard(&mut c.redis.clone(), rooms_key(from))
        .await
        .unwrap_or(0)
}

/// Claims what dead node `from` kept for rooms nobody will take over through [`take_over`]:
/// `all` (the node is being forgotten) takes every room; otherwise rooms it listed as its own
/// and still holds (or left free) are skipped, since their adopter takes them in order.
pub(super) async fn leftovers(c: Arc<Cluster>, from: Arc<str>, all: bool) {
    if c.webhooks.get().is_none() {
        return;
    }
    let rooms: Vec<String> =
        match redis::AsyncCommands::smembers(&mut c.redis.clone(), rooms_key(&from)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%from, error = %e, "could not list a dead node's webhook rooms");
                return;
            }
        };
    let listed: HashSet<String> = if all {
        HashSet::new()
    } else {
        link::rooms_of(&c, &from)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    futures::stream::iter(rooms)
        .for_each_concurrent(16, |room| {
            let (c, from, listed) = (c.clone(), from.clone(), &listed);
            async move {
                if listed.contains(&room) {
                    // Its adopter takes these, in order, as it takes the room over from `from`
                    // (or the forget pass does, for a room handed over by a drain); only an
                    // adopter that died since leaves them to us.
                    match link::holder(&c, &room).await {
                        Ok(Some(h)) if *h != *from => match link::node_alive(&c, &h).await {
                            Ok(false) => {}
                            _ => return,
                        },
                        _ => return,
                    }
                }
                take_over(&c, &from, &room).await;
            }
        })
        .await;
}

/// After a restart under the same node id: what our outbox still holds from an earlier process
/// goes out again (deliveries the store replayed already are skipped; `boot` is this process).
pub(super) async fn resume_mine(c: Arc<Cluster>, relay: Arc<WebhookRelay>, boot: String) {
    let mut con = c.redis.clone();
    let rooms: Vec<String> = match redis::AsyncCommands::smembers(&mut con, rooms_key(&c.me)).await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read this node's webhook outbox");
            return;
        }
    };
    for room in rooms {
        let entries: Vec<(String, String)> =
            match redis::AsyncCommands::hgetall(&mut con, hooks_key(&c.me, &room)).await {
                Ok(e) => e,
                Err(_) => continue,
            };
        let kept = in_order(entries, |k| k.boot != boot);
        relay.adopt(kept, Origin::Mine).await;
    }
}
