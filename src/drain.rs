//! The shutdown drain: either hands the rooms to the next process, or tells everyone downstream
//! that they are gone.
//!
//! **Durable** (a data dir): a graceful stop is a restart (a rolling upgrade). After the sockets
//! have been closed (1001), every room stages its record and stops *without* an event
//! ([`crate::room::RoomHandle::checkpoint_and_stop`]); the records are committed; the next
//! process resumes each room with its members in their reconnect grace, so members that
//! reconnect in time cause no `left`/`joined`, and the others leave with `timeout`, once.
//! Webhook deliveries still queued at the deadline stay in the durable queue.
//!
//! **Ephemeral** (`--ephemeral`): nothing resumes a room after this process exits, so a plain
//! exit would leave every member a ghost in the systems that follow rollcall through webhooks. After
//! the sockets have been closed (1001), the drain closes every room that still holds members (and
//! every façade room) with reason `shutdown`: sockets still subscribed get `closed`, and each
//! endpoint gets one `room_closed` listing the members still inside (`protocol/webhooks.md`).
//! Then it waits for the webhook queues to empty. All of it within `shutdown_timeout_secs`;
//! deliveries still queued at the deadline are counted as dropped (`reason="shutdown"`).
//!
//! Rooms created while the drain runs (a REST call in flight) are caught by the next pass: the
//! drain repeats until no room needs closing or the deadline passes.

use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::room::RoomKind;

/// The reason of the `closed` events (and `room_closed` webhooks) the drain sends.
pub const REASON: &str = "shutdown";

/// How often the drain looks again at the webhook queues while they empty.
const POLL: Duration = Duration::from_millis(20);

/// Hands the rooms over (durable) or closes them (ephemeral), then flushes the webhooks, all
/// before `deadline`, and stops the store's writer. Returns the number of webhook deliveries
/// given up (always 0 when durable: they stay queued).
pub async fn drain(app: &App, deadline: Instant) -> usize {
    let cluster = app.registry.cluster().cloned();
    if app.registry.store().durable() || cluster.is_some() {
        let kept = tokio::time::timeout_at(deadline, hand_over(app))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("shutdown bound reached while checkpointing rooms");
                0
            });
        tracing::info!(rooms = kept, "presence checkpointed for the next start");
    }
    if let Some(c) = cluster {
        // The records are in Redis: leave, so the other nodes take the rooms over now.
        if tokio::time::timeout_at(deadline, c.leave()).await.is_err() {
            tracing::warn!("shutdown bound reached while leaving the cluster");
        }
    }
    let lost = drain_webhooks(app, deadline).await;
    // Whatever is still staged (acknowledgements of the last deliveries) goes to disk.
    if let Err(e) = app.registry.store().flush().await {
        tracing::warn!(error = %e, "final commit failed");
    }
    app.registry.store().stop();
    lost
}

/// Checkpoints every room and stops it, keeping its record; returns how many.
async fn hand_over(app: &App) -> usize {
    let mut total = 0;
    // Rooms created while this runs (a REST call in flight) are caught by the next pass.
    loop {
        let handles = app.registry.handles();
        if handles.is_empty() {
            break;
        }
        let stops = handles.iter().map(|h| h.checkpoint_and_stop());
        total += futures::future::join_all(stops)
            .await
            .into_iter()
            .filter(Result::is_ok)
            .count();
        tokio::task::yield_now().await;
    }
    if let Err(e) = app.registry.store().flush().await {
        tracing::error!(error = %e, "the presence checkpoint was not committed");
    }
    total
}

async fn drain_webhooks(app: &App, deadline: Instant) -> usize {
    let closed = if app.registry.store().durable() || app.registry.cluster().is_some() {
        0
    } else {
        tokio::time::timeout_at(deadline, close_rooms(app))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!("shutdown bound reached while closing rooms");
                0
            })
    };
    let Some(webhooks) = app.webhooks.as_ref() else {
        return 0;
    };
    while webhooks.pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    let lost = webhooks.stop_and_count();
    if lost > 0 {
        tracing::warn!(
            lost,
            rooms = closed,
            "shutdown bound reached with webhook deliveries still queued"
        );
    } else {
        tracing::info!(rooms = closed, "webhooks flushed");
    }
    lost
}

/// Closes rooms until none needs it; returns how many were closed.
async fn close_rooms(app: &App) -> usize {
    let mut total = 0;
    loop {
        let closing = app.registry.handles().into_iter().map(|h| async move {
            let Ok(s) = h.snapshot().await else {
                return false; // already exiting
            };
            // An empty native room has nothing to tell anyone: it would idle out silently.
            if s.kind == RoomKind::Native && s.members.is_empty() {
                return false;
            }
            h.close(REASON).await.is_ok()
        });
        let n = futures::future::join_all(closing)
            .await
            .into_iter()
            .filter(|closed| *closed)
            .count();
        if n == 0 {
            return total;
        }
        total += n;
    }
}
