//! The owner's side of the cluster: calls from other nodes applied to the rooms whose actor runs
//! here, and the proxies that stand for remote sockets inside those actors.
//!
//! A remote socket in a room is one proxy [`Conn`] (per node, socket and room) with its own
//! outbox, subscribed to the actor like any socket: the actor's rules, lag handling and version
//! stream apply to it unchanged. A pump task moves the proxy's frames, in order, to the
//! socket's node; the answer to a socket's call goes through the same pump after the frames the
//! call produced (a joiner's `panel` before its `ack`, as on one node).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::wire::{Call, Msg, WireIdentity};
use super::{link, Cluster};
use crate::conn::{Conn, Receiver, Remote};
use crate::ids::RoomId;
use crate::room::{now_ms, Command, RoomError, RoomHandle};

/// (node, that node's connection id, room).
pub(super) type Key = (Arc<str>, u64, RoomId);

/// A remote socket as the owner's actor sees it.
pub(super) struct Proxy {
    conn: Arc<Conn>,
    tx: mpsc::Sender<PumpMsg>,
    pub(super) stop: CancellationToken,
    /// Last call that used it, ms: an idle proxy (in no room) is collected after a while.
    used: AtomicI64,
}

enum PumpMsg {
    Answer(u64, Result<Value, RoomError>),
    Detached(RoomId),
}

/// Applies one call from `from` to room `room`, which must be owned here.
pub(super) async fn handle_call(
    c: &Arc<Cluster>,
    from: &Arc<str>,
    req: u64,
    room: RoomId,
    call: Call,
) {
    c.stats.calls_in.fetch_add(1, Ordering::Relaxed);
    let h = c
        .owned
        .contains_key(&room)
        .then(|| c.registry().get(room.as_str()))
        .flatten();
    let Some(h) = h else {
        if req != 0 {
            tokio::spawn(resume_if_ours(c.clone(), room.clone()));
            c.send(
                from,
                Msg::Answer {
                    req,
                    result: Err(RoomError::Closed),
                },
            )
            .await;
        }
        return;
    };
    let key = |conn: u64| (from.clone(), conn, room.clone());
    match call {
        Call::Join { conn, who, state } => {
            let p = proxy(c, key(conn), Some(who));
            let (pc, pp) = (p.conn.clone(), p.clone());
            ask(c, from, req, &h, Some(pp), |reply| Command::Join {
                conn: pc,
                state,
                reply,
            })
            .await;
        }
        Call::Watch { conn, who } => {
            let p = proxy(c, key(conn), Some(who));
            let (pc, pp) = (p.conn.clone(), p.clone());
            ask(c, from, req, &h, Some(pp), |reply| Command::Watch {
                conn: pc,
                reply,
            })
            .await;
        }
        Call::Leave { conn } => match c.proxies.get(&key(conn)).map(|p| p.clone()) {
            Some(p) => {
                let pc = p.conn.clone();
                ask(c, from, req, &h, Some(p), |reply| Command::Leave {
                    conn: pc,
                    reply,
                })
                .await;
            }
            None => direct(c, from, req, Err(RoomError::NotMember)).await,
        },
        Call::State { conn, state } => match c.proxies.get(&key(conn)).map(|p| p.clone()) {
            Some(p) => {
                let pc = p.conn.clone();
                ask(c, from, req, &h, Some(p), |reply| Command::State {
                    conn: pc,
                    state,
                    reply,
                })
                .await;
            }
            None => direct(c, from, req, Err(RoomError::NotMember)).await,
        },
        Call::Sync { conn } => match c.proxies.get(&key(conn)).map(|p| p.clone()) {
            Some(p) => {
                let pc = p.conn.clone();
                ask(c, from, req, &h, Some(p), |reply| Command::Sync {
                    conn: pc,
                    reply,
                })
                .await;
            }
            None => direct(c, from, req, Err(RoomError::NotMember)).await,
        },
        Call::Detach { conn, timed_out } => {
            if let Some((_, p)) = c.proxies.remove(&key(conn)) {
                h.detach(p.conn.id(), timed_out).await;
                p.stop.cancel();
            }
        }
        Call::Kick { by, target } => {
            ask(c, from, req, &h, None, |reply| Command::Kick {
                by,
                target,
                reply,
            })
            .await;
        }
        Call::Remove {
            ids,
            reason,
            by,
            atomic,
        } => {
            ask(c, from, req, &h, None, |reply| Command::Remove {
                ids,
                reason,
                by,
                atomic,
                reply,
            })
            .await;
        }
        Call::AddMembers { members } => {
            ask(c, from, req, &h, None, |reply| Command::AddMembers {
                members,
                reply,
            })
            .await;
        }
        Call::AreMembers { ids } => {
            ask(c, from, req, &h, None, |reply| Command::AreMembers {
                ids,
                reply,
            })
            .await;
        }
        Call::Snapshot => ask(c, from, req, &h, None, |reply| Command::Snapshot { reply }).await,
        Call::Close { reason } => {
            ask(c, from, req, &h, None, |reply| Command::Close {
                reason,
                reply,
            })
            .await;
        }
    }
}

/// Sends the command (waiting for mailbox space only, so calls keep their order) and answers
/// the caller when the room has: through the proxy's pump for a socket's call, else directly.
async fn ask<T: serde::Serialize + Send + 'static>(
    c: &Arc<Cluster>,
    from: &Arc<str>,
    req: u64,
    h: &RoomHandle,
    proxy: Option<Arc<Proxy>>,
    make: impl FnOnce(crate::room::handle::Reply<T>) -> Command,
) {
    let answer = h.request(make).await;
    let (c, from) = (c.clone(), from.clone());
    tokio::spawn(async move {
        let result = match answer {
            Ok(a) => a.await,
            Err(e) => Err(e),
        }
        .and_then(|v| serde_json::to_value(v).map_err(|_| RoomError::Unavailable));
        match proxy {
            Some(p) => {
                if p.tx.send(PumpMsg::Answer(req, result)).await.is_err() {
                    tracing::debug!("proxy gone before its answer");
                }
            }
            None => direct(&c, &from, req, result).await,
        }
    });
}

async fn direct(c: &Arc<Cluster>, from: &Arc<str>, req: u64, result: Result<Value, RoomError>) {
    if req != 0 {
        c.send(from, Msg::Answer { req, result }).await;
    }
}

/// The proxy for `key`, created (with its pump) if absent and `who` is known.
fn proxy(c: &Arc<Cluster>, key: Key, who: Option<WireIdentity>) -> Arc<Proxy> {
    if let Some(p) = c.proxies.get(&key) {
        p.used.store(now_ms(), Ordering::Relaxed);
        return p.clone();
    }
    let entry = c.proxies.entry(key.clone()).or_insert_with(|| {
        let who = who.map(WireIdentity::into_identity).unwrap_or_else(|| {
            // Unreachable: only joins and watches create proxies, and they carry an identity.
            crate::auth::Identity {
                member: "".into(),
                name: None,
                kind: crate::protocol::MemberKind::Player,
                exp: None,
                only_room: None,
                access: crate::auth::Access::Room,
            }
        });
        let (conn, outbox) = Conn::new(who, c.registry().settings().outbox_capacity);
        let (tx, rx) = mpsc::channel(256);
        let on = tx.clone();
        conn.set_remote(Remote {
            node: key.0.clone(),
            on_detach: Box::new(move |room| {
                // Inside the actor: never wait. A full pump loses only this notice.
                let _ = on.try_send(PumpMsg::Detached(room.clone()));
            }),
        });
        let stop = CancellationToken::new();
        tokio::spawn(pump(
            c.clone(),
            key.0.clone(),
            key.1,
            conn.clone(),
            outbox,
            rx,
            stop.clone(),
        ));
        Arc::new(Proxy {
            conn,
            tx,
            stop,
            used: AtomicI64::new(now_ms()),
        })
    });
    entry.clone()
}

/// Moves a proxy's frames, answers and notices to its node, in order.
async fn pump(
    c: Arc<Cluster>,
    node: Arc<str>,
    remote: u64,
    conn: Arc<Conn>,
    mut outbox: Receiver,
    mut rx: mpsc::Receiver<PumpMsg>,
    stop: CancellationToken,
) {
    let mut close_sent = false;
    let drain = |outbox: &mut Receiver, first: Option<crate::frame::Frame>| {
        let mut frames: Vec<String> = first.iter().map(|f| f.as_str().to_owned()).collect();
        while let Some(f) = outbox.try_recv() {
            frames.push(f.as_str().to_owned());
        }
        frames
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            m = rx.recv() => {
                let Some(m) = m else { break };
                let frames = drain(&mut outbox, None);
                if !frames.is_empty() {
                    c.send(&node, Msg::Frames { conn: remote, frames }).await;
                }
                let msg = match m {
                    PumpMsg::Answer(req, result) => Msg::Answer { req, result },
                    PumpMsg::Detached(room) => Msg::Detached { conn: remote, room },
                };
                c.send(&node, msg).await;
            }
            f = outbox.recv() => {
                let frames = drain(&mut outbox, Some(f));
                c.send(&node, Msg::Frames { conn: remote, frames }).await;
            }
            code = conn.closed(), if !close_sent => {
                close_sent = true;
                c.send(&node, Msg::Close { conn: remote, code }).await;
            }
        }
    }
}

/// A call reached us for a room we run no actor for: if its lease still names us (a release
/// that failed, a fence nobody claimed), the room would refuse every call until this node dies.
/// Resolve it here instead: resumed from its record, or (no record: it closed) its lease given
/// back, so that the caller's retry finds an owner. Never while the room's own release is on its
/// way (its last record may not be written yet).
async fn resume_if_ours(c: Arc<Cluster>, room: RoomId) {
    let settled = |c: &Cluster| c.releasing.contains_key(&room) || c.owned.contains_key(&room);
    if c.fenced() || settled(&c) {
        return;
    }
    match link::holder(&c, room.as_str()).await {
        Ok(Some(h)) if *h == *c.me => {}
        _ => return,
    }
    if settled(&c) {
        return;
    }
    tracing::info!(%room, "a lease of ours without an actor: resolving it");
    if let Some(h) = c.registry().find(room.as_str()) {
        let _ = h.are_members(Vec::new()).await;
    }
}

/// Removes proxies in no room that no call used for 30 s (a socket that left every room).
pub(super) fn collect_idle_proxies(c: &Cluster) {
    let cutoff = now_ms() - 30_000;
    c.proxies.retain(|_, p| {
        let keep = p.conn.room_count() > 0 || p.used.load(Ordering::Relaxed) > cutoff;
        if !keep {
            p.stop.cancel();
        }
        keep
    });
    c.locals.retain(|_, w| w.strong_count() > 0);
}

/// A node died: its sockets leave our rooms as timed out (their members leave with `timeout`
/// unless they have a socket elsewhere).
pub(super) async fn drop_node(c: &Arc<Cluster>, node: &Arc<str>) {
    let keys: Vec<Key> = c
        .proxies
        .iter()
        .filter(|e| e.key().0 == *node)
        .map(|e| e.key().clone())
        .collect();
    for key in keys {
        if let Some((_, p)) = c.proxies.remove(&key) {
            if let Some(h) = c.registry().get(key.2.as_str()) {
                h.detach(p.conn.id(), true).await;
            }
            p.stop.cancel();
        }
    }
}

/// After a Redis outage: take our leases again where they were lost (a Redis that restarted
/// empty), and write our rooms' records again.
pub(super) async fn reassert(c: &Arc<Cluster>) {
    let rooms: Vec<RoomId> = c.owned.iter().map(|e| e.key().clone()).collect();
    for room in rooms {
        match link::take_lease(c, room.as_str(), None).await {
            Ok(true) => {
                tracing::info!(%room, "lease taken again after the outage");
                link::list_room(c, room.as_str()).await;
            }
            Ok(false) => match link::holder(c, room.as_str()).await {
                Ok(Some(h)) if h != c.node_id() => {
                    tracing::warn!(%room, holder = %h, "another node owns this room now")
                }
                _ => {}
            },
            Err(_) => return, // down again; the next recovery retries
        }
        if let Some(h) = c.registry().get(room.as_str()) {
            h.force_checkpoint();
        }
    }
}

/// `node` died or left: take over the rooms it listed as its own that it still holds (or handed
/// over without anyone taking them since), whether or not a socket of ours is in them, so that their members leave (`timeout`, after the settle) and
/// their webhooks fire even in a room nobody else watches. Every survivor tries; the lease's
/// compare-and-set picks one, the others' stand-ins forward and idle out.
pub(super) async fn adopt(c: Arc<Cluster>, node: Arc<str>) {
    use futures::StreamExt;
    let rooms = match link::rooms_of(&c, &node).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%node, error = %e, "could not list the dead node's rooms");
            return;
        }
    };
    let n = rooms.len();
    futures::stream::iter(rooms)
        .for_each_concurrent(32, |room| {
            let (c, node) = (c.clone(), node.clone());
            async move {
                // Still the dead node's, or free (a drained node handed it over and nobody came
                // back for it): resumed from its record. Taken over already: nothing to do.
                match link::holder(&c, &room).await {
                    Ok(Some(h)) if *h == *node => {}
                    Ok(None) => {}
                    _ => return,
                }
                if let Some(h) = c.registry().find(&room) {
                    // Any command makes the stand-in resolve the owner: the lease is free.
                    let _ = h.are_members(Vec::new()).await;
                }
            }
        })
        .await;
    if n > 0 {
        tracing::info!(%node, rooms = n, "the dead node's rooms are owned again");
    }
    // Its webhooks for rooms no adopter took them for (closed rooms, rooms taken first).
    super::hooks::leftovers(c, node, false).await;
}
