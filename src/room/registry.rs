//! The registry: room id → handle, for the whole process.
//!
//! Rooms are spawned on demand under the `DashMap` entry lock, so two racing joins spawn one
//! actor. A room removes its own entry when it exits, and only if the entry still points at the
//! same incarnation, so a room that exits can never remove its successor. A caller that resolved
//! an exiting room sees [`RoomError::Closed`] and retries once through [`Registry::with_room`]:
//! the retry resolves (or spawns) the live successor, so a join racing an exit lands in a live
//! room. No `DashMap` guard is ever held across an `.await` (see `clippy.toml`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::actor::Room;
use super::{RoomError, RoomHandle, RoomSpec};
use crate::config::Settings;
use crate::ids::RoomId;
use crate::relay::{LocalRelay, Relay};
use crate::stats::Stats;
use crate::store::{RoomRecord, Store};

/// Shared map of live rooms, plus what every room needs from the process.
#[derive(Clone)]
pub struct Registry(Arc<Inner>);

struct Inner {
    rooms: DashMap<RoomId, RoomHandle>,
    settings: Arc<Settings>,
    relay: Arc<dyn Relay>,
    stats: Arc<Stats>,
    store: Store,
    incarnations: AtomicU64,
    /// A graceful stop is handing the rooms to the next process (durable mode).
    handing_over: std::sync::atomic::AtomicBool,
    /// Cluster mode: rooms are reached through fronts that route to their owner node.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("rooms", &self.0.rooms.len())
            .finish()
    }
}

impl Registry {
    /// A registry with the local (single-node) relay and an ephemeral store (tests, benches).
    pub fn new(settings: Arc<Settings>, stats: Arc<Stats>) -> Self {
        // An in-memory SQLite database opens unless the process is out of memory.
        let (store, _) = Store::open(None).expect("an in-memory store opens");
        Self::with_relay(settings, stats, Arc::new(LocalRelay), store)
    }

    /// A registry with a custom relay (the cluster seam) and store.
    pub fn with_relay(
        settings: Arc<Settings>,
        stats: Arc<Stats>,
        relay: Arc<dyn Relay>,
        store: Store,
    ) -> Self {
        Self(Arc::new(Inner {
            rooms: DashMap::new(),
            settings,
            relay,
            stats,
            store,
            incarnations: AtomicU64::new(1),
            handing_over: std::sync::atomic::AtomicBool::new(false),
            cluster: std::sync::OnceLock::new(),
        }))
    }

    /// From now on sockets that close are going to the next process: their members stay
    /// (no grace timer, no leave) to be recorded and restored there. Durable mode only.
    pub fn hand_over(&self) {
        if self.0.store.durable() || self.cluster().is_some() {
            self.0.handing_over.store(true, Ordering::Release);
        }
    }

    /// Whether a graceful stop is handing the rooms over (see [`Registry::hand_over`]).
    pub fn handing_over(&self) -> bool {
        self.0.handing_over.load(Ordering::Acquire)
    }

    /// Turns cluster mode on (once, at start, before serving).
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        // Set once at start; a second call would be a bug with no effect.
        let _ = self.0.cluster.set(cluster);
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.0.cluster.get()
    }

    /// This node's id in the cluster.
    pub(crate) fn node_id(&self) -> Option<&str> {
        self.cluster().map(|c| c.node_id())
    }

    /// Spawns a room actor that is not entered in the map (a cluster front owns the entry and
    /// passes commands on to it); `rec` resumes a stored room.
    pub(crate) fn spawn_actor(
        &self,
        id: RoomId,
        spec: RoomSpec,
        rec: Option<RoomRecord>,
    ) -> RoomHandle {
        let n = self.next_incarnation();
        Room::spawn(id, spec, self.clone(), n, rec)
    }

    pub(crate) fn next_incarnation(&self) -> u64 {
        self.0.incarnations.fetch_add(1, Ordering::Relaxed)
    }

    /// The live room `id`, or (cluster mode) a front that finds it on its owner node; `None`
    /// if it is not local and this node is alone. Never creates a room.
    pub fn find(&self, id: &str) -> Option<RoomHandle> {
        if let Some(h) = self.get(id) {
            return Some(h);
        }
        let cluster = self.cluster()?;
        let id = RoomId::from(id);
        Some(match self.0.rooms.entry(id.clone()) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(e) => {
                let n = self.next_incarnation();
                let h = cluster.spawn_front(self, id, None, n);
                e.insert(h.clone());
                h
            }
        })
    }

    /// The record store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// Resumes the rooms of stored records (at start, before serving). Returns their handles.
    pub fn restore(&self, records: Vec<RoomRecord>) -> Vec<RoomHandle> {
        let mut out = Vec::with_capacity(records.len());
        for rec in records {
            let id = RoomId::from(rec.id.as_str());
            let spec = spec_of(&rec);
            if let Entry::Vacant(e) = self.0.rooms.entry(id.clone()) {
                let n = self.0.incarnations.fetch_add(1, Ordering::Relaxed);
                let h = Room::spawn(id, spec, self.clone(), n, Some(rec));
                e.insert(h.clone());
                out.push(h);
            }
        }
        out
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.0.stats
    }
    /// The relay.
    pub fn relay(&self) -> &dyn Relay {
        &*self.0.relay
    }

    /// The live room `id`, if any.
    pub fn get(&self, id: &str) -> Option<RoomHandle> {
        self.0.rooms.get(id).map(|h| h.clone())
    }

    /// The live room `id`, spawned with `spec()` if absent.
    pub fn get_or_spawn(&self, id: &RoomId, spec: impl FnOnce() -> RoomSpec) -> RoomHandle {
        if let Some(h) = self.get(id.as_str()) {
            return h;
        }
        match self.0.rooms.entry(id.clone()) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(e) => {
                let h = self.spawn(id.clone(), spec());
                e.insert(h.clone());
                h
            }
        }
    }

    /// Spawns room `id` only if absent; `None` if it already exists.
    pub fn create(&self, id: &RoomId, spec: RoomSpec) -> Option<RoomHandle> {
        match self.0.rooms.entry(id.clone()) {
            Entry::Occupied(_) => None,
            Entry::Vacant(e) => {
                let h = self.spawn(id.clone(), spec);
                e.insert(h.clone());
                Some(h)
            }
        }
    }

    fn spawn(&self, id: RoomId, spec: RoomSpec) -> RoomHandle {
        let n = self.next_incarnation();
        match self.cluster() {
            Some(c) => c.spawn_front(self, id, Some(spec), n),
            None => Room::spawn(id, spec, self.clone(), n, None),
        }
    }

    /// Called by an exiting room: removes the entry if it is still that incarnation's.
    pub(crate) fn forget(&self, id: &RoomId, incarnation: u64) {
        self.0
            .rooms
            .remove_if(id, |_, h| h.incarnation() == incarnation);
    }

    /// Runs `f` on room `id` (spawning it with `spec` if absent); if the room turned out to be
    /// exiting, resolves it again and retries once.
    pub async fn with_room<T, F, Fut>(
        &self,
        id: &RoomId,
        spec: impl Fn() -> RoomSpec,
        f: F,
    ) -> Result<(RoomHandle, T), RoomError>
    where
        F: Fn(RoomHandle) -> Fut,
        Fut: Future<Output = Result<T, RoomError>>,
    {
        let h = self.get_or_spawn(id, &spec);
        match f(h.clone()).await {
            Err(RoomError::Closed) => {
                let h = self.get_or_spawn(id, &spec);
                f(h.clone()).await.map(|t| (h, t))
            }
            r => r.map(|t| (h, t)),
        }
    }

    /// Every live room's handle.
    pub fn handles(&self) -> Vec<RoomHandle> {
        self.0.rooms.iter().map(|e| e.value().clone()).collect()
    }

    /// Number of live rooms whose id starts with `prefix` (a scan: for per-tenant caps).
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.0
            .rooms
            .iter()
            .filter(|e| e.key().as_str().starts_with(prefix))
            .count()
    }

    /// Number of live rooms.
    pub fn len(&self) -> usize {
        self.0.rooms.len()
    }

    /// No live rooms.
    pub fn is_empty(&self) -> bool {
        self.0.rooms.is_empty()
    }
}

/// The spec a stored room resumes with.
pub(crate) fn spec_of(rec: &RoomRecord) -> RoomSpec {
    RoomSpec {
        kind: rec.kind,
        max_members: rec.max_members,
        linger: rec.linger_ms.map(std::time::Duration::from_millis),
        attrs: rec.attrs.clone(),
        private: rec.private.clone(),
    }
}
