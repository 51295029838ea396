//! Redis, as the cluster uses it: the keys, one publisher per destination node (to its inbox,
//! read in [`super::inbox`]), leases and room lists, game task keys, and the heartbeat and the
//! sweep that finds dead nodes (the record write-through is [`super::records`]).
//!
//! Keys (each room's keys share the hash tag `{r:<room>}`, each node's `{n:<node>}`, so the same
//! commands run on Redis Cluster):
//! - `rc:{r:<room>}:lease`: the owner's node id (taken with `SET NX`, or by compare-and-set from
//!   a dead holder);
//! - `rc:{r:<room>}:rec`: the room's record as JSON (what a new owner resumes from);
//! - `rc:{n:<node>}:alive`: the node's heartbeat, `PX node_ttl`;
//! - `rc:{n:<node>}:in`: the node's inbox (pub/sub channel);
//! - `rc:{n:<node>}:rooms`: the rooms whose lease the node took (a set; when it dies, the
//!   survivors take these rooms over even if none of their sockets is in them);
//! - `rc:{n:<node>}:hooks:<room>`, `:hookrooms`, `:hookclaim:<room>`: the node's webhook
//!   outbox ([`super::hooks`]);
//! - `rc:nodes`: the set of node ids the sweep checks;
//! - `rc:task:{<id>}` (the node that ran game task `<id>`), `rc:task:{<id>}:res` (its status
//!   body once done) and `rc:task:{<id>}:lost` (its body if its node dies first), all expiring
//!   with the task log's TTL.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wire::{Envelope, Msg};
use super::{Cluster, Ctl};

/// The room's lease key.
pub(super) fn lease_key(room: &str) -> String {
    format!("rc:{{r:{room}}}:lease")
}
/// The room's record key.
pub(super) fn rec_key(room: &str) -> String {
    format!("rc:{{r:{room}}}:rec")
}
fn alive_key(node: &str) -> String {
    format!("rc:{{n:{node}}}:alive")
}
fn rooms_key(node: &str) -> String {
    format!("rc:{{n:{node}}}:rooms")
}
pub(super) fn inbox(node: &str) -> String {
    format!("rc:{{n:{node}}}:in")
}
const NODES: &str = "rc:nodes";
/// How long a stored room record outlives its last write (a room nobody touches for a day is
/// gone; a live owner rewrites it on every change and checkpoint).
pub(super) const REC_TTL_MS: u64 = 24 * 3600 * 1000;

/// Sets the lease to `me` if it is absent or still held by `expected` (a dead node).
const CAS_LEASE: &str = r"
local h = redis.call('GET', KEYS[1])
if (h == false and ARGV[2] == '') or h == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0";

/// Deletes the lease if `me` still holds it.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Starts the node's tasks: inbox, heartbeat and sweep, record writer, call expiry.
pub(super) async fn start(
    c: &Arc<Cluster>,
    records: mpsc::Receiver<super::records::RecordOp>,
) -> Result<(), redis::RedisError> {
    // Subscribe before announcing the node: no call can reach us before we listen.
    let sub = super::inbox::subscribe(c).await?;
    heartbeat_once(c).await?;
    tokio::spawn(super::inbox::read(c.clone(), Some(sub)));
    tokio::spawn(heartbeat(c.clone()));
    tokio::spawn(super::records::write(c.clone(), records));
    let cl = c.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            cl.expire_calls();
            super::owner::collect_idle_proxies(&cl);
        }
    });
    Ok(())
}

/// `PUBLISH`, or on a Redis Cluster `SPUBLISH` (the inboxes are sharded channels there).
fn publish_cmd(c: &Cluster, channel: &str, payload: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd(if c.settings.redis_cluster {
        "SPUBLISH"
    } else {
        "PUBLISH"
    });
    cmd.arg(channel).arg(payload);
    cmd
}

/// The queue of messages for `node`, with its publisher task started on first use.
pub(super) fn queue(c: &Arc<Cluster>, node: &Arc<str>) -> mpsc::Sender<Msg> {
    if let Some(tx) = c.out.get(node) {
        return tx.clone();
    }
    c.out
        .entry(node.clone())
        .or_insert_with(|| {
            let (tx, rx) = mpsc::channel(8192);
            tokio::spawn(publish(c.clone(), node.clone(), rx));
            tx
        })
        .clone()
}

/// Publishes `node`'s queue in batches, in order. A failed publish drops its batch (the calls
/// in it time out `unavailable`; sockets are resynced when Redis is back).
async fn publish(c: Arc<Cluster>, node: Arc<str>, mut rx: mpsc::Receiver<Msg>) {
    let channel = inbox(&node);
    let mut con = c.redis.clone();
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let env = Envelope {
            from: c.me.to_string(),
            msgs: std::mem::take(&mut batch),
        };
        let Ok(payload) = serde_json::to_vec(&env) else {
            continue;
        };
        let r: Result<i64, _> = publish_cmd(&c, &channel, &payload)
            .query_async(&mut con)
            .await;
        if let Err(e) = r {
            tracing::debug!(%node, error = %e, "publish failed: batch dropped");
        }
    }
}

/// Leaves the node set at once (a graceful stop): the others' next sweep finds us gone.
pub(super) async fn unregister(c: &Cluster) {
    let r: Result<i64, _> = c.redis.clone().del(alive_key(&c.me)).await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not leave the cluster: the others wait for our TTL");
    }
}

/// The room's lease holder, if any.
pub(super) async fn holder(c: &Cluster, room: &str) -> Result<Option<String>, redis::RedisError> {
    c.redis.clone().get(lease_key(room)).await
}

/// Takes the lease if it is free (`expected: None`) or still `expected`'s. True if taken.
pub(super) async fn take_lease(
    c: &Cluster,
    room: &str,
    expected: Option<&str>,
) -> Result<bool, redis::RedisError> {
    let taken: i64 = redis::Script::new(CAS_LEASE)
        .key(lease_key(room))
        .arg(&*c.me)
        .arg(expected.unwrap_or(""))
        .invoke_async(&mut c.redis.clone())
        .await?;
    Ok(taken == 1)
}

/// Gives the lease back (the room's actor exited here) and unlists the room.
pub(super) async fn release_lease(c: &Cluster, room: &str) {
    release(c, room, true).await;
}

/// Gives the lease back; `unlist`: also takes the room off this node's room list (a room handed
/// over stays listed, so the survivors adopt it when this node is gone).
pub(super) async fn release(c: &Cluster, room: &str, unlist: bool) {
    let r: Result<i64, _> = redis::Script::new(RELEASE_LEASE)
        .key(lease_key(room))
        .arg(&*c.me)
        .invoke_async(&mut c.redis.clone())
        .await;
    if let Err(e) = r {
        tracing::debug!(room, error = %e, "lease release failed (it stays until taken over)");
    }
    if !unlist {
        return;
    }
    let r: Result<i64, _> = c.redis.clone().srem(rooms_key(&c.me), room).await;
    if let Err(e) = r {
        tracing::debug!(room, error = %e, "could not unlist the room (a survivor skips it)");
    }
}

/// Lists `room` among this node's rooms (we hold its lease).
pub(super) async fn list_room(c: &Cluster, room: &str) {
    let r: Result<i64, _> = c.redis.clone().sadd(rooms_key(&c.me), room).await;
    if let Err(e) = r {
        tracing::debug!(room, error = %e, "could not list the room (found by its sockets only)");
    }
}

/// The rooms `node` listed as its own.
pub(super) async fn rooms_of(c: &Cluster, node: &str) -> Result<Vec<String>, redis::RedisError> {
    c.redis.clone().smembers(rooms_key(node)).await
}

/// The room's stored record.
pub(super) async fn record(
    c: &Cluster,
    room: &str,
) -> Result<Option<crate::store::RoomRecord>, redis::RedisError> {
    let json: Option<String> = c.redis.clone().get(rec_key(room)).await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// The ids in the node set (live or recently dead: [`node_addr`] tells which are alive).
pub(super) async fn node_ids(c: &Cluster) -> Result<Vec<String>, redis::RedisError> {
    c.redis.clone().smembers(NODES).await
}

/// The HTTP address `node` serves on (its heartbeat value), if it is alive.
pub(super) async fn node_addr(
    c: &Cluster,
    node: &str,
) -> Result<Option<String>, redis::RedisError> {
    c.redis.clone().get(alive_key(node)).await
}

/// `INCR` of a cluster-wide counter.
pub(super) async fn incr(c: &Cluster, name: &str) -> Result<u64, redis::RedisError> {
    c.redis.clone().incr(format!("rc:n:{{{name}}}"), 1u64).await
}

/// The key naming the node that holds a game task.
fn task_key(id: &str) -> String {
    format!("rc:task:{{{id}}}")
}

/// `SET NX` of a task id to this node.
pub(super) async fn claim_task(
    c: &Cluster,
    id: &str,
    ttl_secs: u64,
) -> Result<bool, redis::RedisError> {
    let set: Option<String> = redis::cmd("SET")
        .arg(task_key(id))
        .arg(&*c.me)
        .arg("NX")
        .arg("EX")
        .arg(ttl_secs.max(1))
        .query_async(&mut c.redis.clone())
        .await?;
    Ok(set.is_some())
}

/// Stores a task's status body for `ttl_secs` (polled there while its node is down): once done
/// (`:res`), or (`lost`) what it polls as if its node dies first (`:lost`).
pub(super) async fn put_task_result(
    c: &Cluster,
    id: &str,
    body: &str,
    ttl_secs: u64,
    lost: bool,
) -> Result<(), redis::RedisError> {
    let suffix = if lost { "lost" } else { "res" };
    redis::cmd("SET")
        .arg(format!("{}:{suffix}", task_key(id)))
        .arg(body)
        .arg("EX")
        .arg(ttl_secs.max(1))
        .query_async(&mut c.redis.clone())
        .await
}

/// A done task's stored status body; with `lost` (its node is dead), else what it polls as
/// once its node died before finishing it.
pub(super) async fn task_result(
    c: &Cluster,
    id: &str,
    lost: bool,
) -> Result<Option<String>, redis::RedisError> {
    let done: Option<String> = c.redis.clone().get(format!("{}:res", task_key(id))).await?;
    if done.is_some() || !lost {
        return Ok(done);
    }
    c.redis.clone().get(format!("{}:lost", task_key(id))).await
}

/// The node holding a game task.
pub(super) async fn task_node(c: &Cluster, id: &str) -> Result<Option<String>, redis::RedisError> {
    c.redis.clone().get(task_key(id)).await
}

/// Whether `node`'s heartbeat key exists.
pub(super) async fn node_alive(c: &Cluster, node: &str) -> Result<bool, redis::RedisError> {
    c.redis.clone().exists(alive_key(node)).await
}

/// One heartbeat: refresh our key and our entry in the node set.
async fn heartbeat_once(c: &Cluster) -> Result<(), redis::RedisError> {
    let ttl = c.settings.node_ttl.as_millis() as u64;
    let addr = c.addr.get().cloned().unwrap_or_default();
    // Two keys of two slots: two commands, together in flight. The heartbeat is our own key;
    // the node set (on another master of a Redis Cluster) failing to answer is only logged.
    let (mut a, mut b) = (c.redis.clone(), c.redis.clone());
    let mut set = redis::cmd("SET");
    set.arg(alive_key(&c.me)).arg(addr).arg("PX").arg(ttl);
    let mut add = redis::cmd("SADD");
    add.arg(NODES).arg(&*c.me);
    let (beat, listed) =
        futures::join!(set.query_async::<()>(&mut a), add.query_async::<()>(&mut b));
    if let Err(e) = listed {
        tracing::debug!(error = %e, "could not list this node in the node set");
    }
    beat
}

/// The inbox probe's state: what the reader had heard at the last probe, and how many probes
/// in a row found it had heard nothing since.
#[derive(Default)]
struct Probes {
    heard: u64,
    silent: u32,
}

/// Publishes an empty envelope to our own inbox; when the reader has heard nothing (not even
/// these probes) for three heartbeats in a row, tells it to subscribe again.
async fn probe_inbox(c: &Cluster, p: &mut Probes) {
    let heard = c.inbox_heard.load(Ordering::Relaxed);
    if heard == p.heard {
        p.silent += 1;
        if p.silent >= 3 {
            c.inbox_deaf.notify_one();
            p.silent = 0;
        }
    } else {
        p.silent = 0;
    }
    p.heard = heard;
    let env = Envelope {
        from: c.me.to_string(),
        msgs: Vec::new(),
    };
    if let Ok(payload) = serde_json::to_vec(&env) {
        let r: Result<i64, _> = publish_cmd(c, &inbox(&c.me), &payload)
            .query_async(&mut c.redis.clone())
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "inbox probe not published");
        }
    }
}

/// The sweep: which nodes of `rc:nodes` still have their heartbeat key.
async fn sweep(c: &Cluster) -> Result<(Vec<String>, HashSet<String>), redis::RedisError> {
    let mut con = c.redis.clone();
    let nodes: Vec<String> = con.smembers(NODES).await?;
    let exists = nodes.iter().map(|n| {
        let mut con = con.clone();
        let key = alive_key(n);
        async move { con.exists::<_, bool>(key).await }
    });
    let exists: Vec<bool> = futures::future::try_join_all(exists).await?;
    let alive = nodes
        .iter()
        .zip(exists)
        .filter(|(_, e)| *e)
        .map(|(n, _)| n.clone())
        .collect();
    Ok((nodes, alive))
}

/// Every `node_ttl / 4` (at most a second): heartbeat, then sweep. A node is declared dead by
/// each survivor on its own (each handles only its own sockets and rooms with it, so no vote is
/// needed); after a Redis outage nobody is declared dead for one TTL, so every node has time to
/// heartbeat again first. A node that was cut off from Redis for longer than its TTL has been
/// declared dead by the others: it leaves ([`Cluster::fence`]).
async fn heartbeat(c: Arc<Cluster>) {
    let ttl = c.settings.node_ttl;
    let period = (ttl / 4).min(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    let mut settle_until = Instant::now() + ttl;
    let mut dead_since: HashMap<String, Instant> = HashMap::new();
    // Dead nodes whose kept webhooks a task of ours is claiming.
    let mut claiming: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut probes = Probes::default();
    loop {
        tick.tick().await;
        if c.gone.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = heartbeat_once(&c).await {
            if c.up.swap(false, Ordering::AcqRel) {
                tracing::error!(error = %e, "redis unreachable: room changes are refused until it is back");
            }
            continue;
        }
        if last_ok.elapsed() >= ttl {
            // Cut off (Redis unreachable, or this process paused) for longer than our TTL: the
            // others have declared us dead and taken our rooms.
            c.fence().await;
        }
        if !c.up.load(Ordering::Acquire) {
            tracing::info!("redis reachable again");
            c.up.store(true, Ordering::Release);
            settle_until = Instant::now() + ttl;
            super::owner::reassert(&c).await;
            c.tell_fronts(|| Ctl::Resync);
        }
        last_ok = Instant::now();
        probe_inbox(&c, &mut probes).await;
        let Ok((nodes, alive)) = sweep(&c).await else {
            continue;
        };
        *c.alive_set() = alive.clone();
        if Instant::now() < settle_until {
            continue;
        }
        for n in &nodes {
            if alive.contains(n) {
                dead_since.remove(n);
                continue;
            }
            let first = !dead_since.contains_key(n);
            let since = *dead_since.entry(n.clone()).or_insert_with(Instant::now);
            if first && n.as_str() != &*c.me {
                tracing::warn!(node = %n, "node dead: its members leave with timeout");
                c.stats.dead_nodes.fetch_add(1, Ordering::Relaxed);
                let node: Arc<str> = n.as_str().into();
                super::owner::drop_node(&c, &node).await;
                c.tell_fronts(|| Ctl::NodeDead(node.clone()));
                tokio::spawn(super::owner::adopt(c.clone(), node));
            }
            if since.elapsed() >= ttl * 6 {
                // Every survivor has long handled it: forget the node, once what it still kept
                // for webhooks has gone out from a survivor, whatever room it was for (tried
                // again every sweep while claims are held; given up after 60 TTLs).
                if c.webhooks.get().is_some()
                    && since.elapsed() < ttl * 60
                    && super::hooks::kept_rooms(&c, n).await > 0
                {
                    if claiming.get(n).is_none_or(|t| t.is_finished()) {
                        let task = super::hooks::leftovers(c.clone(), n.as_str().into(), true);
                        claiming.insert(n.clone(), tokio::spawn(task));
                    }
                    continue;
                }
                claiming.remove(n);
                let _: Result<i64, _> = c.redis.clone().srem(NODES, n).await;
                let _: Result<i64, _> = c.redis.clone().del(rooms_key(n)).await;
            }
        }
    }
}
