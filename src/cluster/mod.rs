//! Several nodes on one Redis (issue #12; the design is `protocol/cluster.md`).
//!
//! One node at a time **owns** a room: it holds the room's lease in Redis and runs the room's
//! actor, so every rule stays in the actor and every event gets its version in one place. Every
//! other node reaches the room through a **front** ([`front`]): a stand-in actor in its
//! registry that forwards the room commands of its sockets and REST calls to the owner
//! ([`wire::Msg::Call`]) and hands the answers back. The owner represents each remote socket by
//! a proxy connection ([`owner`]) whose frames travel, in order, back to the socket's node.
//! Nodes talk through one Redis pub/sub channel per node (the node's inbox, [`inbox`]).
//!
//! Liveness is Redis key expiry, nothing of our own: each node refreshes its heartbeat key
//! (`node_ttl`); a node whose key expired is dead. Owners then drop the dead node's sockets
//! (their members leave with `timeout`), and fronts whose owner died take the room over from
//! its record, which the owner writes through to Redis ([`Cluster::put_record`]).
//!
//! - [`config`]: `[cluster]`, the flags, [`ClusterSettings`].
//! - [`wire`]: the messages between nodes.
//! - [`conn`]: the Redis connection (one server or a Redis Cluster).
//! - [`inbox`]: this node's inbox (classic pub/sub, or sharded on a Redis Cluster).
//! - [`link`]: Redis keys, the per-node publishers, heartbeat and sweep.
//! - [`front`]: a room as seen from a node that may not own it.
//! - [`hooks`]: the webhook outbox in Redis (a dead node's backlog goes out from a survivor).
//! - [`lists`]: listings answered cluster-wide (`GET /lobbies`).
//! - [`names`]: names that mean one room cluster-wide (friendly URLs, invite codes).
//! - [`owner`]: the owner's side of remote sockets and remote calls.
//! - [`records`]: the record write-through.

mod calls;
pub mod config;
mod conn;
pub mod forward;
mod front;
mod hooks;
mod inbox;
mod link;
mod lists;
mod metrics;
mod names;
mod owner;
mod records;
pub mod wire;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;

use calls::complete;
pub use config::{ClusterConfig, ClusterSettings};
pub(crate) use metrics::encode_metrics;

use crate::conn::Conn;
use crate::ids::RoomId;
use crate::room::{Added, Registry, Removed, RoomHandle, RoomSpec, Snapshot};
use crate::store::RoomRecord;
use wire::Msg;

/// How long a new owner waits before members whose nodes died leave (the other nodes'
/// sockets re-attach first, so they see the `left`).
pub const SETTLE: Duration = Duration::from_millis(1500);
/// How long a forwarded call may wait for the owner's answer before it fails `unavailable`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What the node does with the record of a room it takes over.
type TakeoverHook = Box<dyn Fn(&RoomRecord) + Send + Sync>;

/// A forwarded call waiting for its answer.
enum Pending {
    /// Join/Watch (attach the socket to the front on success), Leave (detach it), State, Sync.
    Unit {
        reply: crate::room::handle::Reply<()>,
        after: After,
    },
    Added(crate::room::handle::Reply<Added>),
    Removed(crate::room::handle::Reply<Removed>),
    Snapshot(crate::room::handle::Reply<Snapshot>),
    AreMembers(crate::room::handle::Reply<Vec<bool>>),
}

/// A call on its way: when it was sent, to whom, and what completes it.
struct Waiting {
    at: Instant,
    /// The owner asked, the room, and the call (sent again if that owner dies first).
    node: Arc<str>,
    room: RoomId,
    call: wire::Call,
    pending: Pending,
    /// How many owners refused it already (answered `Closed` while the room changed hands).
    tries: u8,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("node", &self.node)
            .field("room", &self.room)
            .field("tries", &self.tries)
            .finish_non_exhaustive()
    }
}

/// What a successful socket call changes on the caller's side.
enum After {
    Nothing,
    /// The room now delivers to this socket (through the front).
    Attach(Arc<Conn>, RoomHandle),
    /// It no longer does.
    Detach(Arc<Conn>, RoomId),
}

/// What a front is told by the rest of its node.
#[derive(Debug)]
enum Ctl {
    /// This node died: if it owned the room, take it over or find its new owner.
    NodeDead(Arc<str>),
    /// The owner says the room stopped delivering to this socket.
    Detached(u64),
    /// This node answered this call with `Closed`: find the owner and send it again.
    Refused(Arc<str>, Box<Waiting>),
    /// Redis came back: ask a fresh panel for every remote socket (frames may be lost).
    Resync,
    /// This node was declared dead by the others: stop the room here.
    Fenced,
}

/// One node's membership in the cluster. Cheap to share: everything is behind `Arc`s.
pub struct Cluster {
    settings: ClusterSettings,
    me: Arc<str>,
    /// Where this node's HTTP and WebSocket clients are served (told to the other nodes).
    addr: OnceLock<String>,
    redis: conn::Redis,
    /// Where the inbox subscribes, in the order tried.
    clients: Vec<redis::Client>,
    registry: OnceLock<Registry>,
    /// Redis answered the last heartbeat.
    up: AtomicBool,
    /// We were cut off longer than our TTL: the other nodes took our rooms; write nothing.
    fenced: AtomicBool,
    /// A graceful stop left the cluster: no more heartbeats.
    gone: AtomicBool,
    /// What the node does when fenced (close every socket: they reconnect elsewhere).
    on_fenced: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// What the node does when it takes a room over (the façades index it again).
    on_takeover: OnceLock<TakeoverHook>,
    /// This node's webhook relay, when `[[webhooks]]` are configured.
    webhooks: OnceLock<Arc<crate::webhook::WebhookRelay>>,
    next_req: AtomicU64,
    /// Messages the inbox reader has received (our own probes included).
    inbox_heard: AtomicU64,
    /// Tells the inbox reader its subscription went deaf.
    inbox_deaf: tokio::sync::Notify,
    pending: DashMap<u64, Waiting>,
    /// Outgoing queues, one per destination node.
    out: DashMap<Arc<str>, mpsc::Sender<Msg>>,
    /// Our sockets attached to rooms owned elsewhere, by connection id.
    locals: DashMap<u64, Weak<Conn>>,
    /// Rooms whose actor runs here (we hold their lease).
    owned: DashMap<RoomId, ()>,
    /// Rooms whose actor exited here and whose lease is on its way back (never resumed here
    /// meanwhile: their last record may still be on its way too).
    releasing: DashMap<RoomId, ()>,
    /// Control channels of this node's fronts.
    fronts: DashMap<RoomId, (u64, mpsc::Sender<Ctl>)>,
    /// Proxies of remote sockets in rooms we own: (node, remote conn, room).
    proxies: DashMap<owner::Key, Arc<owner::Proxy>>,
    /// Nodes alive at the last sweep (this one included).
    alive: Mutex<HashSet<String>>,
    /// Record write-through queue: `None` deletes.
    records: mpsc::Sender<records::RecordOp>,
    /// Fronts of rooms created here that have not claimed their lease yet.
    claiming: std::sync::atomic::AtomicUsize,
    claimed: tokio::sync::Notify,
    /// Counters for `/metrics`.
    pub stats: ClusterStats,
}

/// Cluster counters.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Calls forwarded to other nodes.
    pub calls_out: AtomicU64,
    /// Calls answered for other nodes.
    pub calls_in: AtomicU64,
    /// Calls that got no answer in time.
    pub call_timeouts: AtomicU64,
    /// Calls answered `Closed` by a node the lease named (sent again).
    pub calls_refused: AtomicU64,
    /// Rooms taken over from a dead owner.
    pub takeovers: AtomicU64,
    /// Nodes seen dying.
    pub dead_nodes: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.me).finish()
    }
}

impl Cluster {
    /// Connects to Redis (bounded: a node that cannot reach its Redis at start refuses to
    /// start), registers this node and starts its tasks. `registry` routes through the cluster
    /// from now on.
    pub async fn start(
        settings: ClusterSettings,
        registry: &Registry,
        addr: String,
    ) -> Result<Arc<Self>, ClusterError> {
        let (redis, clients) = conn::connect(&settings).await?;
        let (records, records_rx) = mpsc::channel(4096);
        let me: Arc<str> = settings.node_id.clone().into();
        let cluster = Arc::new(Self {
            settings,
            me: me.clone(),
            addr: OnceLock::new(),
            redis,
            clients,
            registry: OnceLock::new(),
            up: AtomicBool::new(true),
            fenced: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            on_fenced: OnceLock::new(),
            on_takeover: OnceLock::new(),
            webhooks: OnceLock::new(),
            next_req: AtomicU64::new(1),
            inbox_heard: AtomicU64::new(0),
            inbox_deaf: tokio::sync::Notify::new(),
            pending: DashMap::new(),
            out: DashMap::new(),
            locals: DashMap::new(),
            owned: DashMap::new(),
            releasing: DashMap::new(),
            fronts: DashMap::new(),
            proxies: DashMap::new(),
            alive: Mutex::new(HashSet::from([me.to_string()])),
            records,
            claiming: Default::default(),
            claimed: tokio::sync::Notify::new(),
            stats: ClusterStats::default(),
        });
        let _ = cluster.registry.set(registry.clone()); // set once, here
                                                        // Known before the first heartbeat: a call forwarded here as soon as we are listed
                                                        // finds our address.
        let _ = cluster.addr.set(addr); // set once, here
        link::start(&cluster, records_rx).await?;
        registry.set_cluster(cluster.clone());
        tracing::info!(node = %me, "joined the cluster");
        Ok(cluster)
    }

    /// What to do when this node finds it was declared dead (close its sockets).
    pub fn on_fenced(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_fenced.set(Box::new(f)); // first call wins
    }

    /// What to do with the record of a room this node takes over (façade indexes).
    pub fn on_takeover(&self, f: impl Fn(&RoomRecord) + Send + Sync + 'static) {
        let _ = self.on_takeover.set(Box::new(f)); // first call wins
    }

    /// Keeps this node's webhook deliveries in Redis as well until delivered, so that a survivor
    /// delivers them if this node dies, and sends again what our outbox held before a restart.
    pub fn serve_webhooks(self: &Arc<Self>, relay: &Arc<crate::webhook::WebhookRelay>) {
        if self.webhooks.set(relay.clone()).is_err() {
            return; // once
        }
        let outbox = hooks::RedisOutbox::start(self, relay.metrics());
        let boot = outbox.boot.clone();
        relay.set_outbox(outbox);
        tokio::spawn(hooks::resume_mine(self.clone(), relay.clone(), boot));
    }

    fn fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// We were cut off from Redis for longer than our TTL, so the other nodes declared us dead,
    /// removed our members and took our rooms. Stop every room here without writing its record,
    /// close every socket (they reconnect, to any node, and join again), then start afresh.
    async fn fence(self: &Arc<Self>) {
        tracing::error!("cut off from redis longer than node_ttl: leaving our rooms to the other nodes and closing our sockets (1012)");
        self.fenced.store(true, Ordering::Release);
        self.tell_fronts(|| Ctl::Fenced);
        // The other nodes' sockets were re-attached to the rooms' new owners already.
        self.proxies.retain(|_, p| {
            p.stop.cancel();
            false
        });
        if let Some(f) = self.on_fenced.get() {
            f();
        }
        // Let the fronts stop their actors before records may be written again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.fenced.store(false, Ordering::Release);
    }

    /// A graceful stop: once the rooms here have stopped and staged their records, write them,
    /// let the queued messages out, and leave the cluster, so the other nodes take our rooms
    /// over at their next sweep instead of after our TTL.
    pub async fn leave(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self
            .records
            .send(records::RecordOp::Flush(done))
            .await
            .is_ok()
        {
            let _ = wait.await; // the writer answers once everything before it is written
        }
        for q in self.out.iter() {
            while q.value().capacity() < q.value().max_capacity() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // The last batch taken from a queue may still be in flight.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.gone.store(true, Ordering::Release);
        link::unregister(self).await;
        tracing::info!("left the cluster");
    }

    /// The next value of a cluster-wide counter (`INCR rc:n:<name>`), from 1.
    pub async fn next_number(&self, name: &str) -> Result<u64, redis::RedisError> {
        link::incr(self, name).await
    }

    /// Claims a task id for this node for `ttl_secs` (false: another node has it); a poll of
    /// the task on any node is forwarded here.
    pub async fn claim_task(&self, id: &str, ttl_secs: u64) -> Result<bool, redis::RedisError> {
        link::claim_task(self, id, ttl_secs).await
    }

    /// Stores a done task's status body in Redis, so that any node serves its poll while the
    /// node that ran it is down.
    pub async fn put_task_result(
        &self,
        id: &str,
        body: &serde_json::Value,
        ttl_secs: u64,
    ) -> Result<(), redis::RedisError> {
        link::put_task_result(self, id, &body.to_string(), ttl_secs, false).await
    }

    /// Stores what a task not done yet polls as if this node dies before finishing it.
    pub async fn put_task_lost(
        &self,
        id: &str,
        body: &serde_json::Value,
        ttl_secs: u64,
    ) -> Result<(), redis::RedisError> {
        link::put_task_result(self, id, &body.to_string(), ttl_secs, true).await
    }

    /// Returns once the rooms created on this node so far have claimed their lease (bounded
    /// by 2 s): a REST create is answered only when other nodes can find the room's owner.
    pub async fn claims_settled(&self) {
        let wait = async {
            loop {
                let notified = self.claimed.notified();
                if self.claiming.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.me
    }

    /// The settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Whether Redis answered the last heartbeat.
    pub fn redis_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Nodes alive at the last sweep.
    pub fn nodes(&self) -> usize {
        self.alive_set().len()
    }

    /// Rooms whose actor runs on this node.
    pub fn owned_rooms(&self) -> usize {
        self.owned.len()
    }

    /// Whether `node` was alive at the last sweep.
    pub fn is_alive(&self, node: &str) -> bool {
        self.alive_set().contains(node)
    }

    fn alive_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A poisoned lock only means a panic mid-insert; the set is still usable.
        self.alive.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn registry(&self) -> &Registry {
        // Set in `start` before any task or front can run.
        self.registry
            .get()
            .expect("the cluster's registry is set at start")
    }

    /// A front for room `id` (see [`front`]); `spec: None` never creates the room.
    pub(crate) fn spawn_front(
        self: &Arc<Self>,
        registry: &Registry,
        id: RoomId,
        spec: Option<RoomSpec>,
        incarnation: u64,
    ) -> RoomHandle {
        front::spawn(self.clone(), registry.clone(), id, spec, incarnation)
    }

    /// Writes a room's record through to Redis (latest wins; never waits).
    pub(crate) fn put_record(&self, rec: &RoomRecord) {
        if self.fenced() {
            return; // another node owns our rooms now: never overwrite its records
        }
        if let Ok(json) = serde_json::to_string(rec) {
            if self
                .records
                .try_send(records::RecordOp::Put(RoomId::from(rec.id.as_str()), json))
                .is_err()
            {
                tracing::warn!(room = %rec.id, "record write-through queue full: dropped");
            }
        }
    }

    /// Gives a room's lease back once its last record write (queued before) is done. The room
    /// must have been marked [`Self::releasing`] before it stopped counting as owned.
    async fn release_after_records(&self, id: &RoomId) {
        if self
            .records
            .send(records::RecordOp::Release(
                id.clone(),
                !self.registry().handing_over(),
            ))
            .await
            .is_err()
        {
            link::release_lease(self, id.as_str()).await; // the writer is gone: at once
            self.releasing.remove(id);
        }
    }

    /// Deletes a room's record in Redis (the room closed).
    pub(crate) fn delete_record(&self, id: &RoomId) {
        if self.fenced() {
            return;
        }
        let _ = self.records.try_send(records::RecordOp::Delete(id.clone())); // full: the key expires
    }

    /// Queues `msg` for `node` (waits for queue space).
    async fn send(self: &Arc<Self>, node: &Arc<str>, msg: Msg) {
        let tx = link::queue(self, node);
        if tx.send(msg).await.is_err() {
            tracing::debug!(%node, "publisher gone: message dropped");
        }
    }

    /// Tells every front of this node.
    fn tell_fronts(&self, make: impl Fn() -> Ctl) {
        for e in self.fronts.iter() {
            let _ = e.value().1.try_send(make()); // a full channel: that front is busy resolving
        }
    }
}
