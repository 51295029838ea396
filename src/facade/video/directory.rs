//! The room directory: which team owns which video room, and the per-team `friendly_url` index.
//!
//! The room actors own everything about a room (fields, members); the directory only answers
//! "which room does `{room}` name for this team" (a UUID or a `friendly_url`, SEED-APIS §3.2) and
//! lists a team's rooms in creation order. Names are reserved through the `DashMap` entry API, so
//! two concurrent creates (or renames) can never both win a `friendly_url`; a rename releases the
//! old name the room's actor reports it replaced, so concurrent renames leave no stale name. No
//! guard is held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use uuid::Uuid;

use super::TeamId;

/// One room's directory entry.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Room UUID.
    pub uuid: Uuid,
    /// Owning team.
    pub team: TeamId,
    /// Creation sequence number (the list order).
    pub seq: u64,
}

/// Rooms by UUID and by (team, friendly_url).
#[derive(Debug, Default)]
pub struct Directory {
    rooms: DashMap<Uuid, Listed>,
    names: DashMap<(TeamId, String), Uuid>,
    seq: AtomicU64,
}

impl Directory {
    /// Reserves `name` in `team` for `uuid`; false if another room holds it.
    pub fn reserve(&self, team: &TeamId, name: &str, uuid: Uuid) -> bool {
        match self.names.entry((team.clone(), name.to_owned())) {
            Entry::Occupied(e) => *e.get() == uuid,
            Entry::Vacant(e) => {
                e.insert(uuid);
                true
            }
        }
    }

    /// Releases `name` in `team` if `uuid` holds it.
    pub fn release(&self, team: &TeamId, name: &str, uuid: Uuid) {
        self.names
            .remove_if(&(team.clone(), name.to_owned()), |_, held| *held == uuid);
    }

    /// Lists a room (its name is already reserved).
    pub fn insert(&self, uuid: Uuid, team: &TeamId) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.rooms.insert(
            uuid,
            Listed {
                uuid,
                team: team.clone(),
                seq,
            },
        );
    }

    /// Forgets a room and every name it holds (rare: a scan of the name index); returns them.
    pub fn remove(&self, uuid: Uuid) -> Vec<String> {
        self.rooms.remove(&uuid);
        let mut names = Vec::new();
        self.names.retain(|(_, name), held| {
            let keep = *held != uuid;
            if !keep {
                names.push(name.clone());
            }
            keep
        });
        names
    }

    /// The room that `key` (a UUID or a `friendly_url`) names in `team`.
    pub fn resolve(&self, team: &TeamId, key: &str) -> Option<Listed> {
        if let Ok(uuid) = Uuid::parse_str(key) {
            if let Some(e) = self.rooms.get(&uuid).filter(|e| &e.team == team) {
                return Some(e.clone());
            }
        }
        let uuid = *self.names.get(&(team.clone(), key.to_owned()))?;
        self.rooms.get(&uuid).map(|e| e.clone())
    }

    /// A room by UUID, whatever its team.
    pub fn get(&self, uuid: Uuid) -> Option<Listed> {
        self.rooms.get(&uuid).map(|e| e.clone())
    }

    /// How many rooms `team` holds.
    pub fn count(&self, team: &TeamId) -> usize {
        self.rooms.iter().filter(|e| &e.team == team).count()
    }

    /// `team`'s rooms, oldest first.
    pub fn list(&self, team: &TeamId) -> Vec<Listed> {
        let mut v: Vec<Listed> = self
            .rooms
            .iter()
            .filter(|e| &e.team == team)
            .map(|e| e.clone())
            .collect();
        v.sort_by_key(|e| e.seq);
        v
    }
}
