//! Forwarded calls waiting for their answers: registration, completion, expiry, and the
//! re-sending of calls whose owner died (see `front.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::{wire, After, Cluster, Pending, Waiting, CALL_TIMEOUT};
use crate::ids::RoomId;
use crate::room::RoomError;

impl Cluster {
    /// A new request id, registered with what to do with its answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn register(
        &self,
        node: &Arc<str>,
        room: &RoomId,
        call: wire::Call,
        pending: Pending,
    ) -> u64 {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let w = Waiting {
            at: Instant::now(),
            node: node.clone(),
            room: room.clone(),
            call,
            pending,
        };
        self.pending.insert(req, w);
        req
    }

    /// The calls for `room` still waiting on `node` (an owner that died), taken out.
    pub(super) fn take_waiting(&self, room: &RoomId, node: &str) -> Vec<(u64, Waiting)> {
        let reqs: Vec<u64> = self
            .pending
            .iter()
            .filter(|e| e.value().room == *room && &*e.value().node == node)
            .map(|e| *e.key())
            .collect();
        reqs.into_iter()
            .filter_map(|r| self.pending.remove(&r))
            .collect()
    }

    /// Completes a pending call with the owner's answer.
    pub(super) fn answer(&self, req: u64, result: Result<serde_json::Value, RoomError>) {
        let Some((_, Waiting { pending, .. })) = self.pending.remove(&req) else {
            return; // timed out already
        };
        complete(pending, result);
    }

    /// Fails the calls that waited longer than [`CALL_TIMEOUT`] with `unavailable`.
    pub(super) fn expire_calls(&self) {
        let now = Instant::now();
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|e| now.duration_since(e.value().at) >= CALL_TIMEOUT)
            .map(|e| *e.key())
            .collect();
        for req in late {
            self.stats.call_timeouts.fetch_add(1, Ordering::Relaxed);
            self.answer(req, Err(RoomError::Unavailable));
        }
    }
}

/// Completes a call's reply (and its effect on the caller's socket) with the owner's answer.
pub(super) fn complete(pending: Pending, result: Result<serde_json::Value, RoomError>) {
    fn typed<T: serde::de::DeserializeOwned>(
        r: Result<serde_json::Value, RoomError>,
    ) -> Result<T, RoomError> {
        r.and_then(|v| serde_json::from_value(v).map_err(|_| RoomError::Unavailable))
    }
    match pending {
        Pending::Unit { reply, after } => {
            let r = result.map(|_| ());
            if r.is_ok() {
                match after {
                    After::Nothing => {}
                    After::Attach(conn, front) => conn.attached(front.id(), &front),
                    After::Detach(conn, room) => conn.detached(&room),
                }
            }
            let _ = reply.send(r); // the caller may have gone
        }
        Pending::Added(reply) => {
            let _ = reply.send(typed(result));
        }
        Pending::Removed(reply) => {
            let _ = reply.send(typed(result));
        }
        Pending::Snapshot(reply) => {
            let _ = reply.send(typed(result));
        }
        Pending::AreMembers(reply) => {
            let _ = reply.send(typed(result));
        }
    }
}
