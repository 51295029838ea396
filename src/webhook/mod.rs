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

pub mod config;
pub mod delivery;
pub mod event;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::frame::{Frame, Kind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{ConfigError, Settings};
use crate::ids::RoomId;
use crate::metrics::WebhookMetrics;
use crate::relay::Relay;
pub use delivery::{signature, Delivery, Endpoint};

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
}

impl WebhookRelay {
    /// Events not yet delivered (or given up): in the hand-off, queued or in flight.
    pub fn pending(&self) -> usize {
        self.unmapped.load(Ordering::Acquire)
            + self.endpoints.iter().map(Endpoint::pending).sum::<usize>()
    }

    /// Stops delivery and counts every delivery still queued as dropped (`reason="shutdown"`);
    /// returns how many.
    pub fn stop_and_count(&self) -> usize {
        self.stop.cancel();
        self.endpoints
            .iter()
            .map(Endpoint::count_shutdown_loss)
            .sum()
    }
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
        match self.tx.try_send((room.clone(), frame.clone())) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.relay_dropped.inc();
            }
            // The dispatcher stopped: the server is shutting down; nothing left to deliver to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
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
) -> Result<Option<Arc<WebhookRelay>>, ConfigError> {
    if settings.webhooks.is_empty() {
        return Ok(None);
    }
    let rt = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::Invalid {
        field: "webhooks",
        reason: "webhook delivery needs a Tokio runtime".into(),
    })?;
    let stop = CancellationToken::new();
    let endpoints = Arc::new(
        settings
            .webhooks
            .iter()
            .map(|w| Endpoint::spawn(w, metrics, &stop, &rt))
            .collect::<Result<Vec<_>, _>>()?,
    );
    for w in &settings.webhooks {
        tracing::info!(endpoint = %w.label(), events = ?w.events, "webhook endpoint configured");
    }
    let (tx, rx) = mpsc::channel(RELAY_QUEUE);
    let unmapped = Arc::new(AtomicUsize::new(0));
    rt.spawn(dispatch(
        rx,
        endpoints.clone(),
        unmapped.clone(),
        stop.clone(),
    ));
    Ok(Some(Arc::new(WebhookRelay {
        tx,
        metrics: metrics.clone(),
        unmapped,
        endpoints,
        stop,
    })))
}

/// Reads room frames in order, maps them, and offers each delivery to every endpoint.
async fn dispatch(
    mut rx: mpsc::Receiver<(RoomId, Frame)>,
    endpoints: Arc<Vec<Endpoint>>,
    unmapped: Arc<AtomicUsize>,
    cancel: CancellationToken,
) {
    let mut mapper = event::Mapper::default();
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            n = rx.recv() => n,
        };
        let Some((room, frame)) = next else { break };
        let now = chrono::Utc::now();
        for env in mapper.map(&room, &frame, now) {
            let d = Arc::new(Delivery {
                id: Uuid::new_v4(),
                event: env.event,
                room: room.clone(),
                body: env.body(),
                timestamp: env.timestamp.timestamp(),
            });
            for ep in endpoints.iter() {
                ep.offer(&d);
            }
        }
        // Offered everywhere (or made nothing): no longer in the hand-off.
        unmapped.fetch_sub(1, Ordering::AcqRel);
    }
    tracing::debug!("webhook dispatcher stopped");
}
