//! Where undelivered webhook deliveries are kept: [`Queue`] stages and acknowledges them in the
//! node's store (what a restart of this node replays) and, in a cluster, in an [`Outbox`] that
//! outlives the node (what another node delivers if this one dies for good; the Redis one is
//! `cluster::hooks`, the design `protocol/cluster.md`, "Webhooks").

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;

use super::Delivery;
use crate::store::{QueuedDelivery, Store, StoreError};

/// Deliveries kept outside this process until their endpoint is done with them.
pub trait Outbox: Send + Sync + 'static {
    /// Keeps `batch` (in queue order). Resolves once it is written: true if it was (a failure
    /// is logged and counted here; the deliveries still go out, the outbox just cannot hand
    /// them to another node).
    fn put<'a>(&'a self, batch: &'a [QueuedDelivery]) -> BoxFuture<'a, bool>;
    /// Takes one delivery off (delivered, given up or dropped). Never waits.
    fn ack(&self, room: &str, id: &str, endpoint: &str);
}

/// The queue's two homes, as one handle (cheap to clone).
#[derive(Clone)]
pub struct Queue {
    store: Store,
    /// Set once, when the node joins a cluster.
    outbox: Arc<OnceLock<Arc<dyn Outbox>>>,
}

impl Queue {
    /// A queue in `store` only, until [`Self::set_outbox`].
    pub fn new(store: &Store) -> Self {
        Self {
            store: store.clone(),
            outbox: Arc::new(OnceLock::new()),
        }
    }

    /// Keeps every delivery queued from now on in `outbox` too (first call wins).
    pub fn set_outbox(&self, outbox: Arc<dyn Outbox>) {
        let _ = self.outbox.set(outbox);
    }

    /// Whether an outbox is set.
    pub fn has_outbox(&self) -> bool {
        self.outbox.get().is_some()
    }

    /// Stages new deliveries in the store (false: its staging is full, see [`Store::enqueue`]).
    pub fn stage(&self, batch: Vec<QueuedDelivery>) -> bool {
        self.store.enqueue(batch)
    }

    /// The store's commit barrier (everything staged before it is committed).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.store.flush().await
    }

    /// Writes `batch` to the outbox, if there is one (true: written, or nothing to write to).
    pub async fn put(&self, batch: &[QueuedDelivery]) -> bool {
        match self.outbox.get() {
            Some(o) if !batch.is_empty() => o.put(batch).await,
            _ => true,
        }
    }

    /// `d` is done with at `endpoint`: off the store's queue and the outbox.
    pub fn ack(&self, d: &Delivery, endpoint: &str) {
        self.store.ack(d.seq, endpoint);
        if let Some(o) = self.outbox.get() {
            o.ack(d.room.as_str(), &d.id.to_string(), endpoint);
        }
    }

    /// A stored delivery that will never be offered (its endpoint is gone, or it is unreadable).
    pub fn ack_stored(&self, q: &QueuedDelivery) {
        self.store.ack(q.seq, &q.endpoint);
        if let Some(o) = self.outbox.get() {
            o.ack(&q.room, &q.id, &q.endpoint);
        }
    }
}
