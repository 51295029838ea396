//! Delivery to one endpoint: a bounded queue split into lanes, one worker per lane, retries.
//!
//! - **Bounded, never blocking.** [`Endpoint::offer`] is synchronous: it counts the delivery
//!   against `max_queue` (queued + in flight, for the whole endpoint) and `try_send`s it into its
//!   lane. Over the bound it drops the delivery and counts it (`queue_full`): when an endpoint
//!   stays down, memory stays bounded and the loss is visible in `/metrics`.
//! - **Ordered per room.** A room always hashes to the same lane, and a lane's worker finishes
//!   one delivery (success, or giving up) before it starts the next, so one room's events reach
//!   the endpoint in the order the room emitted them. Other rooms proceed on other lanes.
//! - **At least once.** A failed attempt (connection error, timeout, non-2xx) is retried with the
//!   same delivery id and the same bytes after an exponential, jittered backoff, up to
//!   `max_attempts` (then it is counted as `gave_up`). A receiver dedupes by the id.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::config::WebhookConfig;
use super::outbox::Queue;
use crate::config::ConfigError;
use crate::ids::RoomId;
use crate::metrics::{DropLabels, EndpointLabels, WebhookMetrics};

/// Header with `sha256=<hex HMAC-SHA256 of the body, keyed with the endpoint's secret>`.
pub const SIGNATURE_HEADER: &str = "x-rollcall-signature";
/// Header with the delivery id (a UUID, the same on every retry).
pub const DELIVERY_HEADER: &str = "x-rollcall-delivery";
/// Header with the event time, Unix seconds (also in the signed body as `timestamp`).
pub const TIMESTAMP_HEADER: &str = "x-rollcall-timestamp";
/// Header with the event name.
pub const EVENT_HEADER: &str = "x-rollcall-event";
/// Header with the attempt number, from 1.
pub const ATTEMPT_HEADER: &str = "x-rollcall-attempt";

/// One event ready to send: the same bytes for every endpoint and every attempt.
#[derive(Debug)]
pub struct Delivery {
    /// Dedupe key, stable across retries and restarts.
    pub id: Uuid,
    /// Its place in the durable queue (acknowledged there when done).
    pub seq: u64,
    /// The event name (for the per-endpoint filter and the header).
    pub event: &'static str,
    /// The room it came from (chooses the lane).
    pub room: RoomId,
    /// The JSON envelope.
    pub body: Bytes,
    /// Event time, Unix seconds.
    pub timestamp: i64,
}

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One configured endpoint: its filter, its lanes and its queue bound.
pub struct Endpoint {
    labels: EndpointLabels,
    events: Vec<String>,
    lanes: Vec<mpsc::Sender<Arc<Delivery>>>,
    depth: Arc<AtomicUsize>,
    max_queue: usize,
    full: AtomicBool,
    metrics: WebhookMetrics,
    queue: Queue,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("endpoint", &self.labels.endpoint)
            .field("lanes", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Builds the HTTP client and spawns one worker per lane on `rt`.
    pub fn spawn(
        cfg: &WebhookConfig,
        metrics: &WebhookMetrics,
        cancel: &CancellationToken,
        rt: &tokio::runtime::Handle,
        queue: &Queue,
    ) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(cfg.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Invalid {
                field: "webhooks",
                reason: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        let labels = EndpointLabels {
            endpoint: cfg.label(),
        };
        let depth = Arc::new(AtomicUsize::new(0));
        let mut lanes = Vec::with_capacity(cfg.concurrency);
        for _ in 0..cfg.concurrency {
            let (tx, rx) = mpsc::channel(cfg.max_queue);
            let worker = Worker {
                client: client.clone(),
                url: cfg.url.clone(),
                secret: cfg.secret.as_bytes().to_vec(),
                max_attempts: cfg.max_attempts,
                backoff_initial: Duration::from_secs_f64(cfg.backoff_initial_secs),
                backoff_max: Duration::from_secs_f64(cfg.backoff_max_secs),
                labels: labels.clone(),
                depth: depth.clone(),
                metrics: metrics.clone(),
                cancel: cancel.clone(),
                queue: queue.clone(),
            };
            rt.spawn(worker.run(rx));
            lanes.push(tx);
        }
        // Create the series now so a quiet endpoint shows zeros rather than nothing.
        metrics.delivered.get_or_create(&labels).inc_by(0);
        metrics.failures.get_or_create(&labels).inc_by(0);
        metrics.queued.get_or_create(&labels).set(0);
        Ok(Self {
            events: cfg.events.clone(),
            lanes,
            depth,
            max_queue: cfg.max_queue,
            full: AtomicBool::new(false),
            metrics: metrics.clone(),
            labels,
            queue: queue.clone(),
        })
    }

    /// The endpoint's label (also its name in the durable queue).
    pub fn label(&self) -> &str {
        &self.labels.endpoint
    }

    /// Whether this endpoint takes `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }

    /// Queues `d` if this endpoint wants its event and has room; never waits. (A delivery
    /// dropped here is taken off the durable queue too: the drop is counted, not replayed.)
    pub fn offer(&self, d: &Arc<Delivery>) {
        if !self.wants(d.event) {
            return;
        }
        if self.depth.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            self.dropped();
            self.queue.ack(d, &self.labels.endpoint);
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.room.hash(&mut h);
        // The modulo keeps the index below `lanes.len()`, which is at least 1 (validated).
        let lane = (h.finish() % self.lanes.len() as u64) as usize;
        match self.lanes[lane].try_send(d.clone()) {
            Ok(()) => {
                self.metrics.queued.get_or_create(&self.labels).inc();
                self.full.store(false, Ordering::Relaxed);
            }
            // A lane holds at most `max_queue`, which `depth` already bounds; Closed means the
            // worker stopped at shutdown. Either way the delivery is lost: count it.
            Err(_) => {
                self.depth.fetch_sub(1, Ordering::AcqRel);
                self.dropped();
                self.queue.ack(d, &self.labels.endpoint);
            }
        }
    }

    /// Deliveries queued or in flight.
    pub fn pending(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    /// At shutdown, after the workers stopped: counts what was still queued as dropped
    /// (`reason="shutdown"`) and returns it.
    pub fn count_shutdown_loss(&self) -> usize {
        let lost = self.pending();
        self.metrics
            .dropped
            .get_or_create(&DropLabels {
                endpoint: self.labels.endpoint.clone(),
                reason: "shutdown".into(),
            })
            .inc_by(lost as u64);
        lost
    }

    fn dropped(&self) {
        self.metrics
            .dropped
            .get_or_create(&DropLabels {
                endpoint: self.labels.endpoint.clone(),
                reason: "queue_full".into(),
            })
            .inc();
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint = %self.labels.endpoint,
                max_queue = self.max_queue,
                "webhook queue full: dropping new deliveries until it drains"
            );
        }
    }
}

/// Sends one lane's deliveries, one at a time.
struct Worker {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
    max_attempts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    labels: EndpointLabels,
    depth: Arc<AtomicUsize>,
    metrics: WebhookMetrics,
    cancel: CancellationToken,
    queue: Queue,
}

enum Outcome {
    Done,
    Cancelled,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Arc<Delivery>>) {
        loop {
            let d = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                d = rx.recv() => match d {
                    Some(d) => d,
                    None => return,
                },
            };
            let outcome = self.deliver(&d).await;
            self.depth.fetch_sub(1, Ordering::AcqRel);
            self.metrics.queued.get_or_create(&self.labels).dec();
            if let Outcome::Cancelled = outcome {
                // Shutdown: it stays in the durable queue for the next start.
                return;
            }
            // Delivered or given up: off the durable queue.
            self.queue.ack(&d, &self.labels.endpoint);
        }
    }

    /// Tries until a 2xx, `max_attempts`, or shutdown.
    async fn deliver(&self, d: &Delivery) -> Outcome {
        let sig = signature(&self.secret, &d.body);
        let mut delay = self.backoff_initial;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let req = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &sig)
                .header(DELIVERY_HEADER, d.id.to_string())
                .header(TIMESTAMP_HEADER, d.timestamp.to_string())
                .header(EVENT_HEADER, d.event)
                .header(ATTEMPT_HEADER, attempt.to_string())
                .body(d.body.clone())
                .send();
            let result = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Outcome::Cancelled,
                r = req => r,
            };
            let failure = match result {
                Ok(resp) if resp.status().is_success() => {
                    self.metrics.delivered.get_or_create(&self.labels).inc();
                    tracing::debug!(endpoint = %self.labels.endpoint, delivery = %d.id, event = d.event, attempt, "webhook delivered");
                    return Outcome::Done;
                }
                Ok(resp) => format!("status {}", resp.status().as_u16()),
                // Never log the URL: its path or query may carry a credential.
                Err(e) => e.without_url().to_string(),
            };
            self.metrics.failures.get_or_create(&self.labels).inc();
            if self.max_attempts != 0 && attempt >= self.max_attempts {
                self.metrics
                    .dropped
                    .get_or_create(&DropLabels {
                        endpoint: self.labels.endpoint.clone(),
                        reason: "gave_up".into(),
                    })
                    .inc();
                tracing::warn!(endpoint = %self.labels.endpoint, delivery = %d.id, event = d.event, attempt, error = %failure, "webhook delivery given up");
                return Outcome::Done;
            }
            // ±20 % jitter so endpoints that come back are not hit by every lane at once.
            let wait = delay.mul_f64(0.8 + 0.4 * rand::random::<f64>());
            if attempt == 1 {
                tracing::warn!(endpoint = %self.labels.endpoint, delivery = %d.id, event = d.event, error = %failure, retry_in = ?wait, "webhook delivery failed; retrying");
            } else {
                tracing::debug!(endpoint = %self.labels.endpoint, delivery = %d.id, attempt, error = %failure, retry_in = ?wait, "webhook retry failed");
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Outcome::Cancelled,
                _ = tokio::time::sleep(wait) => {}
            }
            delay = (delay * 2).min(self.backoff_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature matches a known HMAC-SHA256 vector (RFC 4231, test case 2).
    #[test]
    fn signature_matches_rfc_4231() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
