//! The shutdown drain: tells everyone downstream that this process's rooms are gone.
//!
//! Nothing resumes a room after this process exits (presence lives in memory), so a plain exit
//! would leave every member a ghost in the systems that follow rollcall through webhooks. After
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

/// Closes every room that holds members (or belongs to a façade), then flushes the webhooks,
/// all before `deadline`. Returns the number of webhook deliveries given up.
pub async fn drain(app: &App, deadline: Instant) -> usize {
    let closed = tokio::time::timeout_at(deadline, close_rooms(app))
        .await
        .unwrap_or_else(|_| {
            tracing::warn!("shutdown bound reached while closing rooms");
            0
        });
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
