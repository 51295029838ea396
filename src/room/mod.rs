//! Rooms: one actor task per room owns its members, host, subscribers and version.
//!
//! - [`handle`]: the public, cloneable [`RoomHandle`] and the [`Command`]s it sends.
//! - [`members`]: the member set in join order and the host rule (pure, no async).
//! - `actor`: the task that applies commands, versions events and runs timers.
//! - `joins`: socket joins, batched from the mailbox and announced in one `joined` event.
//! - `membership`: the other rules: REST adds, leaves, kicks, bans, grace, state (methods of the
//!   actor).
//! - `fanout`: the subscribers and the non-blocking push of each event into their outboxes.
//! - `ops`: [`Ops`], what a façade's atomic custom change may do inside the actor.
//! - [`registry`]: maps room ids to handles, spawns rooms on demand, forgets closed rooms.

mod actor;
mod fanout;
pub mod handle;
mod joins;
pub mod members;
mod membership;
mod ops;
mod record;
pub mod registry;

use std::time::Duration;

use serde_json::{Map, Value};

pub(crate) use actor::{refuse, refuse_with};
pub use handle::{Answer, Command, NewMember, RoomHandle};
pub use ops::Ops;
pub use registry::Registry;

use crate::ids::MemberId;
use crate::protocol::{ErrorCode, MemberKind, MemberView};

/// Which surface created a room; decides who may join it over the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Created on demand by a WebSocket `join`/`watch`; open to any authenticated member.
    Native,
    /// A PLYR-style game room: members are added by `/game/join`; sockets attach to them.
    Game,
    /// A PlayFlow-style lobby: players are added by the lobby API; sockets attach to them.
    Lobby,
    /// A Digital Samba-style video room: web participants join with a room token, phones by REST.
    Video,
}

/// How a room is set up when it is spawned.
#[derive(Debug, Clone)]
pub struct RoomSpec {
    /// The surface that owns it.
    pub kind: RoomKind,
    /// Member cap.
    pub max_members: usize,
    /// `Some(d)`: the actor exits after being empty and unwatched for `d`.
    /// `None`: it lives until closed (façade rooms exist before anyone joins).
    pub linger: Option<Duration>,
    /// Façade-owned attributes (lobby settings, game room expiry, video room names ...).
    pub attrs: Map<String, Value>,
    /// Façade-private values, stored with the room and never published (the owning team or
    /// project: what a façade needs to find the room again after a restart).
    pub private: Value,
}

impl RoomSpec {
    /// Whether a WebSocket client may create membership by `join` (others attach only).
    pub fn open_join(&self) -> bool {
        matches!(self.kind, RoomKind::Native | RoomKind::Video)
    }
}

/// Everything a room can refuse. One enum for the room layer; each surface maps it once.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", content = "ids", rename_all = "snake_case")]
pub enum RoomError {
    /// The actor has exited (or is exiting); callers re-resolve the room and retry once.
    #[error("the room is closed")]
    Closed,
    /// Capacity reached.
    #[error("the room is full")]
    Full,
    /// The requester is not the host.
    #[error("only the host may do that")]
    NotHost,
    /// The requester (or target) is not a member / subscriber.
    #[error("not a member of the room")]
    NotMember,
    /// Some ids of an all-or-nothing batch are not members; nothing changed.
    #[error("not members: {0:?}")]
    NotMembers(Vec<MemberId>),
    /// Kicked recently.
    #[error("kicked from this room; the ban has not expired")]
    Banned,
    /// This room admits members through its REST API only.
    #[error("this room admits members through its API only")]
    Forbidden,
    /// A host cannot kick itself.
    #[error("a member cannot kick itself")]
    SelfKick,
    /// The room's owner node cannot be reached (cluster: Redis is down or the owner is gone and
    /// not yet replaced); nothing changed, retry later.
    #[error("the room is unavailable; retry later")]
    Unavailable,
}

impl RoomError {
    /// The WebSocket error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Closed => ErrorCode::RoomClosed,
            Self::Full => ErrorCode::RoomFull,
            Self::NotHost => ErrorCode::NotHost,
            Self::NotMember | Self::NotMembers(_) => ErrorCode::NotMember,
            Self::Banned => ErrorCode::Banned,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::SelfKick => ErrorCode::BadRequest,
            Self::Unavailable => ErrorCode::Unavailable,
        }
    }
}

/// A point-in-time copy of a room, for REST and façades.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Room id.
    pub room: String,
    /// Surface.
    pub kind: RoomKind,
    /// The room incarnation's epoch (versions compare only within one epoch).
    pub epoch: String,
    /// Version at the time of the snapshot.
    pub version: u64,
    /// Host member id.
    pub host: Option<String>,
    /// Members in join order.
    pub members: Vec<MemberView<'static>>,
    /// Open subscriber sockets (members' and watchers').
    pub subscribers: usize,
    /// Façade attributes.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attrs: Map<String, Value>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Time of the last event, ms since the epoch.
    pub updated_at: i64,
}

impl Snapshot {
    /// The member ids, in join order.
    pub fn member_ids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| &*m.id)
    }

    /// A member's row.
    pub fn member(&self, id: &str) -> Option<&MemberView<'static>> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// What [`Command::Remove`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Removed {
    /// The ids actually removed (in request order, duplicates dropped).
    pub removed: Vec<MemberId>,
    /// The version of the `left` event, if one was emitted.
    pub version: Option<u64>,
}

/// What [`Command::AddMembers`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Added {
    /// Ids that were not members before.
    pub added: Vec<MemberId>,
    /// Ids that were members and were updated in place.
    pub updated: Vec<MemberId>,
    /// The version of the `joined` event, if one was emitted.
    pub version: Option<u64>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A member kind's default for façades.
pub fn kind_of(kind: &str) -> Option<MemberKind> {
    match kind {
        "player" => Some(MemberKind::Player),
        "phone" => Some(MemberKind::Phone),
        "web" => Some(MemberKind::Web),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
