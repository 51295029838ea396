//! Forwarded calls waiting for their answers: registration, completion, expiry, and the
//! re-sending of calls whose owner died (see `front.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;

use super::{wire, After, Cluster, Pending, Waiting, CALL_TIMEOUT};
use crate::ids::RoomId;
use crate::room::{Command, RoomError, RoomHandle};

/// How often a call may be refused (`Closed`) by nodes the lease named before its caller sees
/// `Closed`: the lease changes hands in milliseconds, and a room that is really closed is found
/// so at the next resolve.
pub(super) const MAX_REFUSALS: u8 = 6;

impl Cluster {
    /// A new request id, registered with what to do with its answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn register(
        &self,
        node: &Arc<str>,
        room: &RoomId,
        call: wire::Call,
        pending: Pending,
        tries: u8,
    ) -> u64 {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let w = Waiting {
            at: Instant::now(),
            node: node.clone(),
            room: room.clone(),
            call,
            pending,
            tries,
        };
        self.pending.insert(req, w);
        req
    }

    /// The calls for `room` still waiting on `node` (an owner that died), taken out, in the
    /// order they were sent (request ids grow).
    pub(super) fn take_waiting(&self, room: &RoomId, node: &str) -> Vec<(u64, Waiting)> {
        let mut reqs: Vec<u64> = self
            .pending
            .iter()
            .filter(|e| e.value().room == *room && &*e.value().node == node)
            .map(|e| *e.key())
            .collect();
        reqs.sort_unstable();
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

    /// `from` answered `Closed`: it does not own the room (yet, or any more: the lease is
    /// changing hands). The call goes back to the room's front, which finds the owner and sends
    /// it again; with no front to take it, the caller sees `Closed`. A socket's pipelined
    /// requests (`state`, `sync`, `leave`) are answered `unavailable` instead: sent again, one
    /// could overtake the next. Joins and watches run alone, and REST calls one at a time.
    pub(super) fn refused(&self, req: u64, from: &Arc<str>) {
        let Some((_, w)) = self.pending.remove(&req) else {
            return; // timed out already
        };
        self.stats.calls_refused.fetch_add(1, Ordering::Relaxed);
        let Some(front) = self.fronts.get(&w.room).map(|f| f.1.clone()) else {
            return complete(w.pending, Err(RoomError::Closed));
        };
        if w.tries >= MAX_REFUSALS {
            return complete(w.pending, Err(RoomError::Closed));
        }
        if matches!(
            w.call,
            wire::Call::State { .. } | wire::Call::Sync { .. } | wire::Call::Leave { .. }
        ) {
            // A socket's pipelined requests: one sent again later could overtake the next
            // (an older state applied last). The client is told to retry instead.
            return complete(w.pending, Err(RoomError::Unavailable));
        }
        // The pause is taken here, not in the front (which goes on serving its room), and the
        // call waits for room in the front's control queue rather than being dropped.
        let pause = std::time::Duration::from_millis(20 << w.tries.min(4));
        let from = from.clone();
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            if let Err(e) = front.send(super::Ctl::Refused(from, Box::new(w))).await {
                if let super::Ctl::Refused(_, w) = e.0 {
                    complete(w.pending, Err(RoomError::Closed)); // the front is gone
                }
            }
        });
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

/// A room command as the call that forwards it to the owner, with what completes its reply
/// (`None`: nobody waits, a closed socket). `Err`: a command that is never forwarded (a
/// checkpoint, a façade's own change).
#[allow(clippy::result_large_err)] // the command handed back whole, to be refused
pub(super) fn split(
    cmd: Command,
    front: &RoomHandle,
) -> Result<(wire::Call, Option<Pending>), Command> {
    use wire::Call as C;
    let unit = |reply, after| Some(Pending::Unit { reply, after });
    let attach = |conn| After::Attach(conn, front.clone());
    Ok(match cmd {
        Command::Join { conn, state, reply } => {
            let call = C::Join {
                conn: conn.id().get(),
                who: conn.identity().into(),
                state,
            };
            (call, unit(reply, attach(conn)))
        }
        Command::Watch { conn, reply } => {
            let call = C::Watch {
                conn: conn.id().get(),
                who: conn.identity().into(),
            };
            (call, unit(reply, attach(conn)))
        }
        Command::Leave { conn, reply } => {
            let call = C::Leave {
                conn: conn.id().get(),
            };
            (call, unit(reply, After::Detach(conn, front.id().clone())))
        }
        Command::State { conn, state, reply } => {
            let call = C::State {
                conn: conn.id().get(),
                state,
            };
            (call, unit(reply, After::Nothing))
        }
        Command::Sync { conn, reply } => {
            let call = C::Sync {
                conn: conn.id().get(),
            };
            (call, unit(reply, After::Nothing))
        }
        Command::Detach { conn, timed_out } => {
            let call = C::Detach {
                conn: conn.get(),
                timed_out,
            };
            (call, None)
        }
        Command::Kick { by, target, reply } => {
            (C::Kick { by, target }, unit(reply, After::Nothing))
        }
        Command::Remove {
            ids,
            reason,
            by,
            atomic,
            reply,
        } => {
            let call = C::Remove {
                ids,
                reason,
                by,
                atomic,
            };
            (call, Some(Pending::Removed(reply)))
        }
        Command::Snapshot { reply } => (C::Snapshot, Some(Pending::Snapshot(reply))),
        Command::AreMembers { ids, reply } => {
            (C::AreMembers { ids }, Some(Pending::AreMembers(reply)))
        }
        Command::AddMembers { members, reply } => {
            (C::AddMembers { members }, Some(Pending::Added(reply)))
        }
        Command::Close { reason, reply } => (C::Close { reason }, unit(reply, After::Nothing)),
        cmd @ (Command::Checkpoint { .. } | Command::Custom(_)) => return Err(cmd),
    })
}

/// The room command a refused call came from, to be handled again by its front; `None` (its
/// caller answered `Closed`) when the socket it concerns has gone meanwhile.
pub(super) fn rebuild(c: &Cluster, call: wire::Call, pending: Pending) -> Option<Command> {
    use wire::Call as C;
    let local = |id: u64| c.locals.get(&id).and_then(|w| w.upgrade());
    let cmd = match (call, pending) {
        (
            C::Join { state, .. },
            Pending::Unit {
                reply,
                after: After::Attach(conn, _),
            },
        ) => Command::Join { conn, state, reply },
        (
            C::Watch { .. },
            Pending::Unit {
                reply,
                after: After::Attach(conn, _),
            },
        ) => Command::Watch { conn, reply },
        // A socket re-attached after its owner changed (nobody waits on the reply).
        (C::Join { conn, state, .. }, Pending::Unit { reply, .. }) => match local(conn) {
            Some(conn) => Command::Join { conn, state, reply },
            None => return gone(reply),
        },
        (C::Watch { conn, .. }, Pending::Unit { reply, .. }) => match local(conn) {
            Some(conn) => Command::Watch { conn, reply },
            None => return gone(reply),
        },
        (
            C::Leave { .. },
            Pending::Unit {
                reply,
                after: After::Detach(conn, _),
            },
        ) => Command::Leave { conn, reply },
        (C::State { conn, state }, Pending::Unit { reply, .. }) => match local(conn) {
            Some(conn) => Command::State { conn, state, reply },
            None => return gone(reply),
        },
        (C::Sync { conn }, Pending::Unit { reply, .. }) => match local(conn) {
            Some(conn) => Command::Sync { conn, reply },
            None => return gone(reply),
        },
        (C::Kick { by, target }, Pending::Unit { reply, .. }) => {
            Command::Kick { by, target, reply }
        }
        (C::Close { reason }, Pending::Unit { reply, .. }) => Command::Close { reason, reply },
        (
            C::Remove {
                ids,
                reason,
                by,
                atomic,
            },
            Pending::Removed(reply),
        ) => Command::Remove {
            ids,
            reason,
            by,
            atomic,
            reply,
        },
        (C::AddMembers { members }, Pending::Added(reply)) => {
            Command::AddMembers { members, reply }
        }
        (C::AreMembers { ids }, Pending::AreMembers(reply)) => Command::AreMembers { ids, reply },
        (C::Snapshot, Pending::Snapshot(reply)) => Command::Snapshot { reply },
        (_, pending) => {
            // Not a pair `Front::forward` makes.
            complete(pending, Err(RoomError::Closed));
            return None;
        }
    };
    Some(cmd)
}

fn gone(reply: crate::room::handle::Reply<()>) -> Option<Command> {
    let _ = reply.send(Err(RoomError::Closed));
    None
}
