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

use std::sync::Arc;

use crate::conn::Frame;
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

/// The relay end: a non-blocking hand-off from room actors to the dispatcher.
pub struct WebhookRelay {
    tx: mpsc::Sender<(RoomId, Frame)>,
    metrics: WebhookMetrics,
}

impl std::fmt::Debug for WebhookRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRelay").finish_non_exhaustive()
    }
}

/// Frames no webhook is made of; skipped before the channel so hot state updates cost nothing.
/// (serde writes the `type` tag first; if it ever did not, the dispatcher would skip them.)
fn irrelevant(frame: &[u8]) -> bool {
    frame.starts_with(br#"{"type":"state""#) || frame.starts_with(br#"{"type":"updated""#)
}

impl Relay for WebhookRelay {
    fn publish(&self, room: &RoomId, _version: u64, frame: &Frame) {
        if irrelevant(frame) {
            return;
        }
        match self.tx.try_send((room.clone(), frame.clone())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.relay_dropped.inc();
            }
            // The dispatcher stopped: the server is shutting down; nothing left to deliver to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Starts the dispatcher and the endpoints' workers; `None` when no endpoint is configured.
/// Needs a Tokio runtime (the server's). Everything stops when `cancel` fires or the relay is
/// dropped; undelivered events are lost then (the queues live in memory).
pub fn start(
    settings: &Settings,
    metrics: &WebhookMetrics,
    cancel: &CancellationToken,
) -> Result<Option<Arc<WebhookRelay>>, ConfigError> {
    if settings.webhooks.is_empty() {
        return Ok(None);
    }
    let rt = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::Invalid {
        field: "webhooks",
        reason: "webhook delivery needs a Tokio runtime".into(),
    })?;
    let endpoints = settings
        .webhooks
        .iter()
        .map(|w| Endpoint::spawn(w, metrics, cancel, &rt))
        .collect::<Result<Vec<_>, _>>()?;
    for w in &settings.webhooks {
        tracing::info!(endpoint = %w.label(), events = ?w.events, "webhook endpoint configured");
    }
    let (tx, rx) = mpsc::channel(RELAY_QUEUE);
    rt.spawn(dispatch(rx, endpoints, cancel.clone()));
    Ok(Some(Arc::new(WebhookRelay {
        tx,
        metrics: metrics.clone(),
    })))
}

/// Reads room frames in order, maps them, and offers each delivery to every endpoint.
async fn dispatch(
    mut rx: mpsc::Receiver<(RoomId, Frame)>,
    endpoints: Vec<Endpoint>,
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
            for ep in &endpoints {
                ep.offer(&d);
            }
        }
    }
    tracing::debug!("webhook dispatcher stopped");
}
