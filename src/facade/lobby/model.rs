//! The lobby as PlayFlow clients see it, and as the room keeps it.
//!
//! A lobby is a room `lobby:<uuid>`: its players are the room's members (join order = `players`),
//! its host is the room's host, `lobbyStateRealTime` is the members' live state, and every other
//! field lives in the room's façade attributes as [`LobbyAttrs`] (keys spelled as the vendor
//! spells them, so the `updated` event sockets receive reads like the lobby). [`render`] joins the
//! two into the vendor's [`Lobby`] object, with every field present (null where empty).

use std::fmt;

use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::LobbyError;
use crate::ids::RoomId;
use crate::room::Snapshot;

/// The regions CreateLobby accepts (vendor enum, in the vendor's order).
pub const REGIONS: [&str; 12] = [
    "us-east",
    "us-west",
    "eu-north",
    "eu-west",
    "ap-south",
    "sea",
    "ea",
    "ap-north",
    "ap-southeast",
    "south-africa",
    "south-america-brazil",
    "south-america-chile",
];

/// The region of a lobby created without one.
pub const DEFAULT_REGION: &str = "us-west";
/// `maxPlayers` when the client sends none.
pub const DEFAULT_MAX_PLAYERS: u32 = 8;
/// `timeout` (seconds) when the client sends none.
pub const DEFAULT_TIMEOUT: u32 = 300;
/// The largest `timeout` (seconds).
pub const MAX_TIMEOUT: u32 = 3600;
/// The room id prefix of lobbies.
pub const ROOM_PREFIX: &str = "lobby:";

/// A lobby id: a UUID, shown bare to PlayFlow clients and as `lobby:<uuid>` on the WebSocket.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LobbyId(Uuid);

impl LobbyId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a client-supplied id; `None` if it is not a UUID.
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(Self)
    }

    /// The room that serves this lobby.
    pub fn room(&self) -> RoomId {
        RoomId::from(format!("{ROOM_PREFIX}{}", self.0))
    }
}

impl fmt::Display for LobbyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A lobby's status. The mid-2025 vendor spec lists `waiting, in_game, finished`; later docs add
/// `in_queue` and `match_found` (matchmaking). All five are served.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Open, not playing (the default).
    Waiting,
    /// Matchmaking started by the host.
    InQueue,
    /// A matchmaker found a match (never set by rollcall itself, accepted for completeness).
    MatchFound,
    /// Playing.
    InGame,
    /// Done.
    Finished,
}

impl Status {
    /// The statuses a host may set directly with `PUT` (the rest come from matchmaking).
    pub const SETTABLE: [&'static str; 3] = ["waiting", "in_game", "finished"];

    /// Parses one of [`Status::SETTABLE`].
    pub fn settable(s: &str) -> Option<Self> {
        match s {
            "waiting" => Some(Self::Waiting),
            "in_game" => Some(Self::InGame),
            "finished" => Some(Self::Finished),
            _ => None,
        }
    }
}

/// The lobby fields kept in the room's attributes (everything but id, host, players, state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LobbyAttrs {
    /// Display name.
    pub name: String,
    /// Capacity (also the room's member cap).
    pub max_players: u32,
    /// One of [`REGIONS`].
    pub region: String,
    /// Status.
    pub status: Status,
    /// Private: not listed with `?public=true`, joined by invite code only.
    pub is_private: bool,
    /// Whether the lobby has an invite code (always true when private).
    pub use_invite_code: bool,
    /// The invite code, when `use_invite_code`.
    pub invite_code: Option<String>,
    /// Whether players may join while `in_game`.
    pub allow_late_join: bool,
    /// Custom game settings.
    pub settings: Option<Value>,
    /// Game server details (rollcall runs none: always null).
    pub game_server: Option<Value>,
    /// Seconds of inactivity before a player is dropped.
    pub timeout: u32,
    /// Matchmaking mode, while queued.
    pub matchmaking_mode: Option<String>,
    /// When matchmaking started (ISO 8601).
    pub matchmaking_started_at: Option<String>,
    /// The matchmaking ticket.
    pub matchmaking_ticket_id: Option<String>,
    /// Data sent with the matchmaking request.
    pub matchmaking_data: Option<Value>,
    /// Creation time (ISO 8601, ms, `Z`).
    pub created_at: String,
    /// Last change made through this façade (ISO 8601); strictly increasing per lobby.
    pub updated_at: String,
}

impl LobbyAttrs {
    /// Reads the attributes back from a room.
    pub fn read(attrs: &Map<String, Value>) -> Result<Self, LobbyError> {
        serde_json::from_value(Value::Object(attrs.clone()))
            .map_err(|e| LobbyError::Internal(format!("lobby attributes unreadable: {e}")))
    }

    /// The attributes as a room stores them.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // A struct of strings, numbers, bools and JSON values always serializes to an object.
            _ => Map::new(),
        }
    }

    /// Marks a change: `updatedAt` moves to now, and at least 1 ms past its previous value, so
    /// the SDK's de-duplicator (keyed by `updatedAt`) never drops a distinct update.
    pub fn touch(&mut self) {
        self.updated_at = iso(next_ms(&self.updated_at));
    }

    /// A waiting public lobby with defaults, created `at` (unit tests).
    #[cfg(test)]
    pub(crate) fn sample(at: &str) -> Self {
        Self {
            name: "sample".into(),
            max_players: DEFAULT_MAX_PLAYERS,
            region: DEFAULT_REGION.into(),
            status: Status::Waiting,
            is_private: false,
            use_invite_code: false,
            invite_code: None,
            allow_late_join: true,
            settings: None,
            game_server: None,
            timeout: DEFAULT_TIMEOUT,
            matchmaking_mode: None,
            matchmaking_started_at: None,
            matchmaking_ticket_id: None,
            matchmaking_data: None,
            created_at: at.into(),
            updated_at: at.into(),
        }
    }

    /// Leaves the matchmaking queue: every `matchmaking*` field back to null.
    pub fn clear_matchmaking(&mut self) {
        self.matchmaking_mode = None;
        self.matchmaking_started_at = None;
        self.matchmaking_ticket_id = None;
        self.matchmaking_data = None;
    }
}

/// The vendor's Lobby object. Every field is always serialized (null where empty), in the
/// vendor's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lobby {
    /// Lobby id (UUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The current host's player id.
    pub host: Option<String>,
    /// Capacity.
    pub max_players: u32,
    /// `players.len()`.
    pub current_players: usize,
    /// Region.
    pub region: String,
    /// Status.
    pub status: Status,
    /// Private.
    pub is_private: bool,
    /// Has an invite code.
    pub use_invite_code: bool,
    /// The invite code.
    pub invite_code: Option<String>,
    /// Late join allowed.
    pub allow_late_join: bool,
    /// Custom game settings.
    pub settings: Option<Value>,
    /// Player ids in join order.
    pub players: Option<Vec<String>>,
    /// Each player's live state, by player id (players without state are absent).
    pub lobby_state_real_time: Option<Map<String, Value>>,
    /// Game server (always null).
    pub game_server: Option<Value>,
    /// Inactivity timeout, seconds.
    pub timeout: u32,
    /// Matchmaking mode.
    pub matchmaking_mode: Option<String>,
    /// Matchmaking start.
    pub matchmaking_started_at: Option<String>,
    /// Matchmaking ticket.
    pub matchmaking_ticket_id: Option<String>,
    /// Matchmaking data.
    pub matchmaking_data: Option<Value>,
    /// Creation time.
    pub created_at: String,
    /// Time of the last change (façade change or room event, whichever is later).
    pub updated_at: String,
}

/// Renders a lobby from its room's snapshot.
pub fn render(id: &LobbyId, snap: &Snapshot) -> Result<Lobby, LobbyError> {
    let a = LobbyAttrs::read(&snap.attrs)?;
    let players: Vec<String> = snap.member_ids().map(str::to_owned).collect();
    let state: Map<String, Value> = snap
        .members
        .iter()
        .filter(|m| !m.state.is_null())
        .map(|m| (m.id.to_string(), m.state.clone().into_owned()))
        .collect();
    let updated = parse_ms(&a.updated_at).unwrap_or(0).max(snap.updated_at);
    Ok(Lobby {
        id: id.to_string(),
        name: a.name,
        host: snap.host.clone(),
        max_players: a.max_players,
        current_players: players.len(),
        region: a.region,
        status: a.status,
        is_private: a.is_private,
        use_invite_code: a.use_invite_code,
        invite_code: a.invite_code,
        allow_late_join: a.allow_late_join,
        settings: a.settings,
        players: (!players.is_empty()).then_some(players),
        lobby_state_real_time: (!state.is_empty()).then_some(state),
        game_server: a.game_server,
        timeout: a.timeout,
        matchmaking_mode: a.matchmaking_mode,
        matchmaking_started_at: a.matchmaking_started_at,
        matchmaking_ticket_id: a.matchmaking_ticket_id,
        matchmaking_data: a.matchmaking_data,
        created_at: a.created_at,
        updated_at: iso(updated),
    })
}

/// Milliseconds since the epoch as JavaScript's `toISOString()` writes them.
pub fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, as [`iso`] writes it.
pub fn now_iso() -> String {
    iso(crate::room::now_ms())
}

fn parse_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn next_ms(prev: &str) -> i64 {
    let now = crate::room::now_ms();
    match parse_ms(prev) {
        Some(p) if p >= now => p + 1,
        _ => now,
    }
}

/// A fresh invite code: 8 characters from an alphabet without look-alikes (no 0/O, 1/I).
pub fn invite_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps look like JavaScript's and `touch` always moves forward.
    #[test]
    fn timestamps_are_js_iso_and_strictly_increase() {
        assert_eq!(iso(1_692_109_800_000), "2023-08-15T14:30:00.000Z");
        let far = iso(crate::room::now_ms() + 60_000);
        let mut a = LobbyAttrs::sample(&far);
        a.touch();
        assert!(a.updated_at > far, "{} > {far}", a.updated_at);
        let back = LobbyAttrs::read(&a.to_map()).unwrap();
        assert_eq!(back, a);
    }

    /// Invite codes fit the vendor's 10-character limit and avoid look-alike characters.
    #[test]
    fn invite_codes_are_short_and_unambiguous() {
        for _ in 0..100 {
            let c = invite_code();
            assert_eq!(c.len(), 8);
            assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
        }
    }
}
