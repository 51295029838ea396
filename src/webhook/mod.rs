//! Leave webhooks: signed POSTs of `participant_joined`, `participant_left`, `host_changed` and
//! `room_closed` to every configured `[[webhooks]]` endpoint (spec: `protocol/webhooks.md`).
//!
//! Three stages, so that nothing ever blocks a room actor:
//! 1. [`WebhookRelay`] is a [`Relay`]: the actor offers it every event frame after local fan-out;
//!    it `try_send`s `(room, frame)` into one bounded channel and returns (full: counted drop).
//! 2. One dispatcher task reads that channel in order, maps frames to envelopes ([`event`], which
//!    remembers members so a leave can say who left), signs nothing yet, and offers each
//!    delivery to every endpoint.
//! 3. Per endpoint, lanes of bounded queues and workers ([`delivery`]) POST with retries.
//!
//! - [`config`]: `[[webhooks]]` defaults and validation.
//! - [`event`]: room frame → `{event, timestamp, data}` envelopes (pure).
//! - [`delivery`]: per-endpoint queue, lanes, signing, retries with backoff.
//! - [`outbox`]: where undelivered deliveries are kept (the store; in a cluster, Redis too).

pub mod config;
pub mod delivery;
pub mod event;
pub mod outbox;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::frame::{Frame, Kind};
use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{ConfigError, Settings};
use crate::ids::RoomId;
use crate::metrics::WebhookMetrics;
use crate::relay::Relay;
use crate::store::{Loaded, QueuedDelivery, Store};
pub use delivery::{signature, Delivery, Endpoint};
pub use outbox::{Outbox, Queue};

/// Room events buffered between the actors and the dispatcher.
pub const RELAY_QUEUE: usize = 8192;

/// The relay end: a non-blocking hand-off from room actors to the dispatcher; also what the
/// shutdown drain ([`crate::drain`]) asks whether everything was delivered.
pub struct WebhookRelay {
    tx: mpsc::Sender<(RoomId, Frame)>,
    metrics: WebhookMetrics,
    /// Frames handed to the dispatcher and not yet offered to every endpoint.
    unmapped: Arc<AtomicUsize>,
    endpoints: Arc<Vec<Endpoint>>,
    /// Stops the dispatcher and the workers: fired by [`Self::stop_and_count`], after the drain,
    /// not when shutdown begins (the drain's own events must still go out).
    stop: CancellationToken,
    /// Frames offered to the dispatcher (or dropped) so far.
    published: AtomicU64,
    /// How many of those the dispatcher has staged in the store (or dropped).
    staged: watch::Receiver<u64>,
    /// Dropped frames count as staged (nothing will stage them).
    skipped: watch::Sender<u64>,
    durable: bool,
    /// The queue's homes (the store; the cluster's outbox once set).
    queue: Queue,
    /// The next delivery's queue position (shared with the dispatcher).
    seq: Arc<AtomicU64>,
    /// (id, endpoint) of the deliveries replayed from the store at start: an outbox replayed
    /// after them skips these (emptied by that replay).
    replayed: Mutex<HashSet<(String, String)>>,
}

impl WebhookRelay {
    /// Events not yet delivered (or given up): in the hand-off, queued or in flight.
    pub fn pending(&self) -> usize {
        self.unmapped.load(Ordering::Acquire)
            + self.endpoints.iter().map(Endpoint::pending).sum::<usize>()
    }

    /// Stops delivery. Ephemeral: counts every delivery still queued as dropped
    /// (`reason="shutdown"`) and returns how many. Durable, or in a cluster: they stay in the
    /// queue for the next start (in a cluster's outbox: for a survivor); returns 0.
    pub fn stop_and_count(&self) -> usize {
        self.stop.cancel();
        if self.durable || self.queue.has_outbox() {
            let kept: usize = self.endpoints.iter().map(Endpoint::pending).sum();
            if kept > 0 {
                tracing::info!(
                    kept,
                    "webhook deliveries kept for the next start (in a cluster: for a survivor)"
                );
            }
            return 0;
        }
        self.endpoints
            .iter()
            .map(Endpoint::count_shutdown_loss)
            .sum()
    }

    /// Waits until every frame offered before this call is staged in the store (so the
    /// caller's commit barrier covers its deliveries).
    pub async fn staged_up_to_now(&self) {
        let target = self.published.load(Ordering::Acquire);
        let mut rx = self.staged.clone();
        let skipped = self.skipped.subscribe();
        loop {
            if *rx.borrow_and_update() + *skipped.borrow() >= target {
                return;
            }
            if rx.changed().await.is_err() {
                return; // the dispatcher stopped: nothing more will be staged
            }
        }
    }

    /// The webhook counters (an outbox counts its failures there).
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    /// Forgets which deliveries the store replayed at start (once the outbox replay is done).
    pub fn replayed_done(&self) {
        let mut r = self.replayed.lock().unwrap_or_else(|p| p.into_inner());
        *r = HashSet::new();
    }

    /// Keeps every delivery from now on in `outbox` too (a cluster's, in Redis).
    pub fn set_outbox(&self, outbox: Arc<dyn Outbox>) {
        self.queue.set_outbox(outbox);
    }

    /// Takes deliveries kept outside this process into this node's queue and offers them, in
    /// the order given, ahead of any event the caller's room emits afterwards. `Origin::Taken`:
    /// another node's (dead) backlog, written to this node's outbox first (false: that write
    /// failed, so the caller must leave the source as it is). `Origin::Mine`: this node's own
    /// outbox from before a restart (those already replayed from the store are skipped).
    pub async fn adopt(&self, mut stored: Vec<QueuedDelivery>, origin: Origin) -> bool {
        if origin == Origin::Mine {
            let replayed = self.replayed.lock().unwrap_or_else(|p| p.into_inner());
            stored.retain(|q| !replayed.contains(&(q.id.clone(), q.endpoint.clone())));
        }
        if stored.is_empty() {
            return true;
        }
        for q in &mut stored {
            q.seq = self.seq.fetch_add(1, Ordering::Relaxed);
        }
        let kept = origin == Origin::Mine || self.queue.put(&stored).await;
        if !self.queue.stage(stored.clone()) {
            tracing::warn!("webhook durable queue staging full: adopted deliveries not stored");
        }
        if let Err(e) = self.queue.flush().await {
            tracing::warn!(error = %e, "adopted webhook deliveries not committed before delivery");
        }
        let gone = offer_stored(&self.endpoints, &stored, &self.queue);
        if origin == Origin::Taken {
            self.metrics.adopted.inc_by(stored.len() as u64);
        }
        tracing::info!(
            deliveries = stored.len() - gone,
            dropped = gone,
            ?origin,
            "webhook deliveries adopted"
        );
        kept
    }
}

/// Whose kept deliveries [`WebhookRelay::adopt`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This node's, from before a restart.
    Mine,
    /// A dead node's.
    Taken,
}

impl std::fmt::Debug for WebhookRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRelay").finish_non_exhaustive()
    }
}

/// Frames no webhook is made of; skipped before the channel so hot state updates cost nothing.
fn irrelevant(frame: &Frame) -> bool {
    matches!(frame.kind(), Kind::State | Kind::Updated)
}

impl Relay for WebhookRelay {
    fn publish(&self, room: &RoomId, frame: &Frame) {
        if irrelevant(frame) {
            return;
        }
        // Counted before the send so the dispatcher can never take it below zero.
        self.unmapped.fetch_add(1, Ordering::AcqRel);
        self.published.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send((room.clone(), frame.clone())) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.relay_dropped.inc();
            }
            // The dispatcher stopped: the server is shutting down; nothing left to deliver to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
        self.skipped.send_modify(|n| *n += 1);
        self.unmapped.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Starts the dispatcher and the endpoints' workers; `None` when no endpoint is configured.
/// Needs a Tokio runtime (the server's). Everything stops at [`WebhookRelay::stop_and_count`]
/// (the end of the shutdown drain) or when the relay is dropped; undelivered events are lost
/// then, and counted (the queues live in memory).
pub fn start(
    settings: &Settings,
    metrics: &WebhookMetrics,
    store: &Store,
    loaded: &Loaded,
) -> Result<Option<Arc<WebhookRelay>>, ConfigError> {
    if settings.webhooks.is_empty() {
        return Ok(None);
    }
    let rt = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::Invalid {
        field: "webhooks",
        reason: "webhook delivery needs a Tokio runtime".into(),
    })?;
    let stop = CancellationToken::new();
    let queue = Queue::new(store);
    let endpoints = Arc::new(
        settings
            .webhooks
            .iter()
            .map(|w| Endpoint::spawn(w, metrics, &stop, &rt, &queue))
            .collect::<Result<Vec<_>, _>>()?,
    );
    for w in &settings.webhooks {
        tracing::info!(endpoint = %w.label(), events = ?w.events, "webhook endpoint configured");
    }
    // What an earlier process accepted and no endpoint acknowledged goes first, in order.
    replay(&endpoints, loaded, &queue);
    let (tx, rx) = mpsc::channel(RELAY_QUEUE);
    let unmapped = Arc::new(AtomicUsize::new(0));
    let (staged_tx, staged) = watch::channel(0u64);
    let (skipped, _) = watch::channel(0u64);
    let seq = Arc::new(AtomicU64::new(crate::store::sqlite::max_seq(loaded) + 1));
    rt.spawn(dispatch(
        Dispatcher {
            endpoints: endpoints.clone(),
            unmapped: unmapped.clone(),
            queue: queue.clone(),
            staged: staged_tx,
            seq: seq.clone(),
            seeds: loaded.rooms.clone(),
        },
        rx,
        stop.clone(),
    ));
    Ok(Some(Arc::new(WebhookRelay {
        tx,
        metrics: metrics.clone(),
        unmapped,
        endpoints,
        stop,
        published: AtomicU64::new(0),
        staged,
        skipped,
        durable: store.durable(),
        queue,
        seq,
        replayed: Mutex::new(
            loaded
                .deliveries
                .iter()
                .map(|q| (q.id.clone(), q.endpoint.clone()))
                .collect(),
        ),
    })))
}

/// The event names, as `&'static str` (a stored delivery names its event as text).
fn event_name(s: &str) -> Option<&'static str> {
    [
        "participant_joined",
        "participant_left",
        "host_changed",
        "room_closed",
    ]
    .into_iter()
    .find(|e| *e == s)
}

/// Offers the deliveries an earlier process left in the durable queue, in queue order, each to
/// the endpoint it was queued for (an endpoint no longer configured: acknowledged and logged).
fn replay(endpoints: &[Endpoint], loaded: &Loaded, queue: &Queue) {
    let gone = offer_stored(endpoints, &loaded.deliveries, queue);
    if !loaded.deliveries.is_empty() {
        tracing::info!(
            queued = loaded.deliveries.len() - gone,
            dropped = gone,
            "webhook deliveries resumed from the durable queue"
        );
    }
}

/// Offers stored deliveries, in order, each to the endpoint it was queued for; returns how
/// many were acknowledged unsent instead (endpoint no longer configured, or unreadable).
fn offer_stored(endpoints: &[Endpoint], stored: &[QueuedDelivery], queue: &Queue) -> usize {
    let mut gone = 0usize;
    for q in stored {
        let ep = endpoints.iter().find(|e| e.label() == q.endpoint);
        let (Some(ep), Some(event), Ok(id)) = (ep, event_name(&q.event), Uuid::parse_str(&q.id))
        else {
            gone += 1;
            queue.ack_stored(q);
            continue;
        };
        ep.offer(&Arc::new(Delivery {
            id,
            seq: q.seq,
            event,
            room: RoomId::from(q.room.as_str()),
            body: Bytes::from(q.body.clone()),
            timestamp: q.timestamp,
        }));
    }
    gone
}

/// The dispatcher's state.
struct Dispatcher {
    endpoints: Arc<Vec<Endpoint>>,
    unmapped: Arc<AtomicUsize>,
    queue: Queue,
    /// Frames staged so far (read by [`WebhookRelay::staged_up_to_now`]).
    staged: watch::Sender<u64>,
    /// The next delivery's queue position.
    seq: Arc<AtomicU64>,
    /// Rooms resumed from the store: the mapper learns their members first.
    seeds: Vec<crate::store::RoomRecord>,
}

/// Frames mapped per commit at most.
const DISPATCH_BATCH: usize = 256;

/// Reads room frames in order, in batches: maps them, stages one durable delivery per
/// interested endpoint, commits, then offers them (so an event is in the durable queue before
/// its delivery starts).
async fn dispatch(
    mut d: Dispatcher,
    mut rx: mpsc::Receiver<(RoomId, Frame)>,
    cancel: CancellationToken,
) {
    let mut mapper = event::Mapper::default();
    for rec in d.seeds.drain(..) {
        mapper.seed(&RoomId::from(rec.id.as_str()), &rec);
    }
    let mut frames = Vec::with_capacity(DISPATCH_BATCH);
    loop {
        frames.clear();
        let n = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            n = rx.recv_many(&mut frames, DISPATCH_BATCH) => n,
        };
        if n == 0 {
            break;
        }
        let now = chrono::Utc::now();
        let mut out = Vec::new();
        let mut queued = Vec::new();
        for (room, frame) in &frames {
            for env in mapper.map(room, frame, now) {
                let seq = d.seq.fetch_add(1, Ordering::Relaxed);
                let delivery = Arc::new(Delivery {
                    id: Uuid::new_v4(),
                    seq,
                    event: env.event,
                    room: room.clone(),
                    body: env.body(),
                    timestamp: env.timestamp.timestamp(),
                });
                for ep in d.endpoints.iter().filter(|ep| ep.wants(env.event)) {
                    queued.push(QueuedDelivery {
                        seq,
                        endpoint: ep.label().to_owned(),
                        id: delivery.id.to_string(),
                        event: env.event.to_owned(),
                        room: room.to_string(),
                        body: delivery.body.to_vec(),
                        timestamp: delivery.timestamp,
                    });
                }
                out.push(delivery);
            }
        }
        // Kept outside the process (a cluster's outbox) before the first attempt, too.
        d.queue.put(&queued).await;
        if !queued.is_empty() && !d.queue.stage(queued) {
            tracing::warn!(
                "webhook durable queue staging full: this batch is delivered but not stored"
            );
        }
        d.staged.send_modify(|s| *s += n as u64);
        if let Err(e) = d.queue.flush().await {
            // Still delivered from memory; the store retries the commit on its own.
            tracing::warn!(error = %e, "webhook deliveries not committed before delivery");
        }
        for delivery in &out {
            for ep in d.endpoints.iter() {
                ep.offer(delivery);
            }
        }
        // Offered everywhere (or made nothing): no longer in the hand-off.
        d.unmapped.fetch_sub(n, Ordering::AcqRel);
    }
    tracing::debug!("webhook dispatcher stopped");
}
