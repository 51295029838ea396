//! Lookup tables beside the room actors: lobby id → lobby, invite code → lobby, and
//! (project, config, player) → the player's lobby.
//!
//! The rooms are the truth; these maps only find them. Every map is a `DashMap` whose guards
//! live inside one method and never across an `.await`. The player map doubles as the
//! "player already in a lobby" rule: a join first *reserves* the player's slot (pending), adds the
//! player in the room, then *confirms* it; a second join of the same player meanwhile sees the
//! slot and is refused. A confirmed slot can go stale only when a socket removed the player
//! behind the façade's back (a WebSocket `leave` or host `kick`); callers verify such a slot
//! against the room before refusing, and every removal releases the slot only if it still
//! points at the lobby it left.

use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use super::liveness::Live;
use super::model::{invite_code, LobbyId};
use crate::ids::MemberId;
use crate::room::RoomHandle;

/// A project: the index of its `api-key` in the configuration.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tenant(pub usize);

/// Where a lobby lives: its project and its lobby configuration (`?name=`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Scope {
    /// The project.
    pub tenant: Tenant,
    /// The lobby configuration name.
    pub config: Arc<str>,
}

/// One live lobby.
#[derive(Debug)]
pub struct LobbyEntry {
    /// Its id.
    pub id: LobbyId,
    /// Its project and config.
    pub scope: Scope,
    /// Its room.
    pub handle: RoomHandle,
    /// Its players' liveness.
    pub live: Arc<Live>,
    /// Stops its liveness task.
    pub stop: CancellationToken,
    /// Its invite code, mirrored here so the code can be released whatever ends the lobby.
    code: Mutex<Option<String>>,
}

impl LobbyEntry {
    /// A new entry.
    pub fn new(
        id: LobbyId,
        scope: Scope,
        handle: RoomHandle,
        live: Arc<Live>,
        stop: CancellationToken,
        code: Option<String>,
    ) -> Self {
        Self {
            id,
            scope,
            handle,
            live,
            stop,
            code: Mutex::new(code),
        }
    }

    fn code(&self) -> MutexGuard<'_, Option<String>> {
        // A poisoned lock only means a panic mid-assignment of an Option; the value is usable.
        self.code.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A player's slot: the lobby it is (or is being added) in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Slot {
    lobby: LobbyId,
    confirmed: bool,
}

/// Why a reservation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Taken {
    /// Another join of this player is in flight.
    Pending(LobbyId),
    /// The player is (or was, if stale) in this lobby.
    Confirmed(LobbyId),
}

/// The façade's lookup tables.
#[derive(Debug, Default)]
pub struct Indexes {
    lobbies: DashMap<LobbyId, Arc<LobbyEntry>>,
    players: DashMap<(Scope, MemberId), Slot>,
    codes: DashMap<String, LobbyId>,
}

impl Indexes {
    /// Registers a new lobby.
    pub fn insert(&self, entry: Arc<LobbyEntry>) {
        self.lobbies.insert(entry.id, entry);
    }

    /// The lobby `id`, if it exists in `scope`.
    pub fn lobby(&self, scope: &Scope, id: &LobbyId) -> Option<Arc<LobbyEntry>> {
        self.lobbies
            .get(id)
            .filter(|e| e.scope == *scope)
            .map(|e| e.value().clone())
    }

    /// How many lobbies the project `tenant` holds (every config).
    pub fn count_tenant(&self, tenant: Tenant) -> usize {
        self.lobbies
            .iter()
            .filter(|e| e.scope.tenant == tenant)
            .count()
    }

    /// Every lobby of `scope`.
    pub fn in_scope(&self, scope: &Scope) -> Vec<Arc<LobbyEntry>> {
        self.lobbies
            .iter()
            .filter(|e| e.scope == *scope)
            .map(|e| e.value().clone())
            .collect()
    }

    /// Reserves `player`'s slot for `lobby` (pending until [`Indexes::confirm`]).
    pub fn reserve(&self, scope: &Scope, player: &MemberId, lobby: LobbyId) -> Result<(), Taken> {
        match self.players.entry((scope.clone(), player.clone())) {
            Entry::Vacant(v) => {
                v.insert(Slot {
                    lobby,
                    confirmed: false,
                });
                Ok(())
            }
            Entry::Occupied(o) if o.get().confirmed => Err(Taken::Confirmed(o.get().lobby)),
            Entry::Occupied(o) => Err(Taken::Pending(o.get().lobby)),
        }
    }

    /// Confirms a reservation once the player is in the room.
    pub fn confirm(&self, scope: &Scope, player: &MemberId, lobby: LobbyId) {
        if let Some(mut slot) = self.players.get_mut(&(scope.clone(), player.clone())) {
            if slot.lobby == lobby {
                slot.confirmed = true;
            }
        }
    }

    /// Releases `player`'s slot if it still points at `lobby`.
    pub fn release(&self, scope: &Scope, player: &MemberId, lobby: LobbyId) {
        self.players
            .remove_if(&(scope.clone(), player.clone()), |_, s| s.lobby == lobby);
    }

    /// Releases a confirmed slot found stale (the player is no longer in `lobby`).
    pub fn release_stale(&self, scope: &Scope, player: &MemberId, lobby: LobbyId) {
        self.players
            .remove_if(&(scope.clone(), player.clone()), |_, s| {
                s.lobby == lobby && s.confirmed
            });
    }

    /// The lobby `player` is in (confirmed slots only).
    pub fn player_lobby(&self, scope: &Scope, player: &str) -> Option<LobbyId> {
        self.players
            .get(&(scope.clone(), MemberId::from(player)))
            .filter(|s| s.confirmed)
            .map(|s| s.lobby)
    }

    /// The lobby with invite code `code` (case-insensitive).
    pub fn code_lobby(&self, code: &str) -> Option<LobbyId> {
        self.codes.get(&code.to_ascii_uppercase()).map(|l| *l)
    }

    /// Claims a fresh, unused invite code for `lobby`.
    pub fn claim_code(&self, lobby: LobbyId) -> String {
        loop {
            let code = invite_code();
            if let Entry::Vacant(v) = self.codes.entry(code.clone()) {
                v.insert(lobby);
                return code;
            }
        }
    }

    /// Takes back a stored lobby's code at start; false if another lobby holds it.
    pub fn restore_code(&self, code: &str, lobby: LobbyId) -> bool {
        match self.codes.entry(code.to_ascii_uppercase()) {
            Entry::Vacant(v) => {
                v.insert(lobby);
                true
            }
            Entry::Occupied(o) => *o.get() == lobby,
        }
    }

    /// Records `entry`'s current code (after [`Indexes::claim_code`] or a release).
    pub fn set_code(&self, entry: &LobbyEntry, code: Option<String>) {
        let old = std::mem::replace(&mut *entry.code(), code.clone());
        if let Some(old) = old.filter(|o| Some(o) != code.as_ref()) {
            self.codes.remove_if(&old, |_, l| *l == entry.id);
        }
    }

    /// Forgets a deleted lobby: its entry (stopping its liveness task), its code, and the slots
    /// of every player it still knew.
    pub fn forget(&self, id: &LobbyId) {
        let Some((_, entry)) = self.lobbies.remove(id) else {
            return;
        };
        entry.stop.cancel();
        self.set_code(&entry, None);
        for p in entry.live.known() {
            self.release(&entry.scope, &p, entry.id);
        }
    }

    /// Number of live lobbies.
    pub fn len(&self) -> usize {
        self.lobbies.len()
    }

    /// No live lobbies.
    pub fn is_empty(&self) -> bool {
        self.lobbies.is_empty()
    }
}
