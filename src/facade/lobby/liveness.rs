//! The inactivity `timeout`: who is still there, and the per-lobby task that drops who is not.
//!
//! A player is alive while it has an open WebSocket in the lobby's room or an open SSE stream
//! for the lobby, or while its last sign of life (create, join, heartbeat, an update it made, or
//! the moment its last socket/stream was last seen open) is younger than `timeout`. Each lobby
//! has one task that wakes every `timeout / 4` and runs [`Live::sweep`] *inside the room actor*
//! (`custom`), so a heartbeat is never raced: it is either before the sweep (and counts) or after
//! it. Dead players leave in one `left` event with reason `timeout` (the host migrates as for any
//! leave); when nobody alive remains, the lobby is deleted (room closed with reason `deleted`).
//! Work per wake-up is bounded by the lobby's own size. The task ends with the lobby or at
//! shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::index::Indexes;
use super::model::LobbyAttrs;
use crate::ids::MemberId;
use crate::protocol::LeaveReason;
use crate::room::Ops;

/// The shortest wake-up period (keeps tiny test timeouts from spinning).
const MIN_PERIOD: Duration = Duration::from_millis(50);

/// One lobby's liveness book.
#[derive(Debug)]
pub struct Live {
    timeout: Duration,
    inner: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    /// Last sign of life of every player the façade added and has not seen leave.
    seen: HashMap<MemberId, Instant>,
    /// Open SSE streams per player.
    streams: HashMap<MemberId, usize>,
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    /// Players removed with reason `timeout`.
    pub removed: Vec<MemberId>,
    /// Players the book knew that are no longer members (removed by a socket).
    pub vanished: Vec<MemberId>,
    /// The lobby was deleted (nobody alive).
    pub deleted: bool,
}

impl Live {
    /// A book for a lobby whose `timeout` is given.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            inner: Mutex::new(Book::default()),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A poisoned lock only means a panic mid-insert into a map of instants; still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lobby's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A sign of life from `player` (also how a player enters the book).
    pub fn touch(&self, player: &MemberId) {
        self.book().seen.insert(player.clone(), Instant::now());
    }

    /// `player` left: forget it.
    pub fn forget(&self, player: &MemberId) {
        let mut b = self.book();
        b.seen.remove(player);
        b.streams.remove(player);
    }

    /// Every player in the book.
    pub fn known(&self) -> Vec<MemberId> {
        self.book().seen.keys().cloned().collect()
    }

    /// An SSE stream of `player` opened.
    pub fn stream_opened(&self, player: &MemberId) {
        *self.book().streams.entry(player.clone()).or_default() += 1;
    }

    /// An SSE stream of `player` closed: its timeout starts now.
    pub fn stream_closed(&self, player: &MemberId) {
        let mut b = self.book();
        if let Some(n) = b.streams.get_mut(player) {
            *n -= 1;
            if *n == 0 {
                b.streams.remove(player);
            }
        }
        if let Some(t) = b.seen.get_mut(player) {
            *t = Instant::now();
        }
    }

    /// Runs inside the room actor: drops dead players, deletes the lobby if nobody is alive.
    pub fn sweep(&self, ops: &mut Ops<'_>) -> Swept {
        let now = Instant::now();
        let members = ops.member_ids();
        let mut dead = Vec::new();
        let vanished;
        {
            let mut b = self.book();
            for m in &members {
                let attached = ops.has_socket(m.as_str()) || b.streams.contains_key(m);
                let seen = b.seen.entry(m.clone()).or_insert(now);
                if attached {
                    *seen = now;
                } else if now.duration_since(*seen) >= self.timeout {
                    dead.push(m.clone());
                }
            }
            vanished = b
                .seen
                .keys()
                .filter(|k| !ops.is_member(k.as_str()))
                .cloned()
                .collect::<Vec<_>>();
            for m in dead.iter().chain(&vanished) {
                b.seen.remove(m);
                b.streams.remove(m);
            }
        }
        if !dead.is_empty() {
            ops.remove(&dead, LeaveReason::Timeout, None);
            if let Ok(mut a) = LobbyAttrs::read(ops.attrs()) {
                a.touch();
                *ops.attrs_mut() = a.to_map();
            }
        }
        let deleted = dead.len() == members.len();
        if deleted {
            ops.close("deleted");
        }
        Swept {
            removed: dead,
            vanished,
            deleted,
        }
    }
}

/// Starts the liveness task of the lobby registered in `indexes` under `id`.
pub fn spawn(indexes: Arc<Indexes>, entry: Arc<super::index::LobbyEntry>) {
    let period = (entry.live.timeout() / 4).max(MIN_PERIOD);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = entry.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let live = entry.live.clone();
            match entry.handle.custom(move |ops| live.sweep(ops)).await {
                Ok(swept) => {
                    for p in swept.removed.iter().chain(&swept.vanished) {
                        indexes.release(&entry.scope, p, entry.id);
                    }
                    if !swept.removed.is_empty() {
                        tracing::debug!(lobby = %entry.id, count = swept.removed.len(), "players timed out");
                    }
                    if swept.deleted {
                        tracing::debug!(lobby = %entry.id, "lobby deleted: nobody alive");
                        indexes.forget(&entry.id);
                        return;
                    }
                }
                Err(_) => {
                    // The room is gone (deleted through the API meanwhile): nothing to watch.
                    indexes.forget(&entry.id);
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;
    use crate::config::Settings;
    use crate::conn::Conn;
    use crate::facade::lobby::index::{LobbyEntry, Scope, Tenant};
    use crate::facade::lobby::model::{now_iso, LobbyId};
    use crate::ids::RoomId;
    use crate::protocol::MemberKind;
    use crate::room::{NewMember, Registry, RoomKind, RoomSpec};
    use crate::stats::Stats;
    use serde_json::Value;
    use tokio_util::sync::CancellationToken;

    /// A lobby room (default attributes) with these players, added by REST.
    async fn lobby_room(players: &[&str]) -> (LobbyId, crate::room::RoomHandle) {
        let registry = Registry::new(Arc::new(Settings::default()), Arc::new(Stats::default()));
        let id = LobbyId::random();
        let spec = RoomSpec {
            private: serde_json::Value::Null,
            kind: RoomKind::Lobby,
            max_members: 8,
            linger: None,
            attrs: LobbyAttrs::sample(&now_iso()).to_map(),
        };
        let handle = registry.create(&id.room(), spec).expect("fresh room");
        let members = players
            .iter()
            .map(|p| NewMember {
                id: MemberId::from(*p),
                kind: MemberKind::Player,
                name: None,
                meta: Value::Null,
            })
            .collect();
        handle.add_members(members).await.unwrap();
        (id, handle)
    }

    async fn sweep(handle: &crate::room::RoomHandle, live: &Arc<Live>) -> Swept {
        let live = live.clone();
        handle.custom(move |ops| live.sweep(ops)).await.unwrap()
    }

    async fn next(rx: &mut crate::conn::Receiver) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(3600), rx.recv())
            .await
            .expect("an event in time");
        serde_json::from_slice(&frame).expect("JSON")
    }

    /// With paused time: a player that heartbeats outlives one that does not; the silent one
    /// leaves with reason `timeout` and the host migrates; when the last one goes silent the
    /// lobby is deleted and forgotten.
    #[tokio::test(start_paused = true)]
    async fn silent_players_time_out_then_the_lobby_is_deleted() {
        let (id, handle) = lobby_room(&["a", "b"]).await;
        let live = Arc::new(Live::new(Duration::from_secs(60)));
        live.touch(&"a".into());
        live.touch(&"b".into());
        let scope = Scope {
            tenant: Tenant(0),
            config: "default".into(),
        };
        let entry = Arc::new(LobbyEntry::new(
            id,
            scope,
            handle.clone(),
            live.clone(),
            CancellationToken::new(),
            None,
        ));
        let indexes = Arc::new(Indexes::default());
        indexes.insert(entry.clone());
        spawn(indexes.clone(), entry);
        let ident = Identity {
            member: "watcher".into(),
            name: None,
            kind: MemberKind::Player,
            exp: None,
            only_room: Some(RoomId::from(id.room().as_str())),
            access: crate::auth::Access::Room,
        };
        let (conn, mut rx) = Conn::new(ident, 16);
        handle.watch(conn).await.unwrap();
        assert_eq!(next(&mut rx).await["type"], "panel");

        tokio::time::sleep(Duration::from_secs(40)).await;
        live.touch(&"b".into()); // b heartbeats at t=40
        let left = next(&mut rx).await;
        assert_eq!(left["type"], "left");
        assert_eq!(left["members"], serde_json::json!(["a"]));
        assert_eq!(left["reason"], "timeout");
        assert_eq!(left["host"], "b", "the host migrates in the same event");
        assert_eq!(live.known(), vec![MemberId::from("b")]);

        let left = next(&mut rx).await;
        assert_eq!(left["members"], serde_json::json!(["b"]));
        assert_eq!(left["reason"], "timeout");
        let closed = next(&mut rx).await;
        assert_eq!(closed["type"], "closed");
        assert_eq!(closed["reason"], "deleted");
        tokio::task::yield_now().await;
        assert!(indexes.is_empty(), "the deleted lobby is forgotten");
        assert!(
            handle.snapshot().await.is_err(),
            "the room actor has exited"
        );
    }

    /// A player with an open stream never times out; its timeout starts when the stream closes.
    #[tokio::test(start_paused = true)]
    async fn an_open_stream_keeps_a_player_alive() {
        let (_, handle) = lobby_room(&["a"]).await;
        let live = Arc::new(Live::new(Duration::from_secs(60)));
        live.touch(&"a".into());
        live.stream_opened(&"a".into());
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(
            sweep(&handle, &live).await,
            Swept::default(),
            "streaming players are alive"
        );
        live.stream_closed(&"a".into());
        tokio::time::sleep(Duration::from_secs(59)).await;
        let swept = sweep(&handle, &live).await;
        assert!(
            swept.removed.is_empty(),
            "59 s after the stream closed it is still alive"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let swept = sweep(&handle, &live).await;
        assert_eq!(swept.removed, vec![MemberId::from("a")]);
        assert!(swept.deleted);
    }
}
