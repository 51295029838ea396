//! The records as stored: plain serde types, JSON in the backend. New fields get `serde`
//! defaults so a file written by an older rollcall still loads; a change that cannot be read
//! that way is a schema migration (`sqlite::MIGRATIONS`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::MemberKind;

/// The record families of the key/value part of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A room ([`RoomRecord`]), keyed by room id.
    Room,
    /// A PLYR task and its result, keyed by task id.
    Task,
    /// A counter or a small façade value, keyed by name.
    Meta,
}

impl Kind {
    /// The name stored in the backend.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Room => "room",
            Self::Task => "task",
            Self::Meta => "meta",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "room" => Some(Self::Room),
            "task" => Some(Self::Task),
            "meta" => Some(Self::Meta),
            _ => None,
        }
    }
}

/// What keeps a stored member in its room (see `room::members::Binding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Its sockets: restored in its reconnect grace.
    Socket,
    /// A REST API: restored as it was.
    Api,
}

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Id.
    pub id: String,
    /// Participant kind.
    pub kind: MemberKind,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Façade metadata.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub meta: Value,
    /// Live state.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub state: Value,
    /// Join time, ms since the epoch.
    pub joined_at: i64,
    /// What keeps it.
    pub bound: Bound,
    /// Cluster: the nodes holding its sockets (a new owner drops at once the members whose
    /// nodes are all dead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// A room as stored: everything its actor needs to resume where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// Room id.
    pub id: String,
    /// Surface.
    pub kind: crate::room::RoomKind,
    /// Member cap.
    pub max_members: usize,
    /// Idle linger, ms (`None`: lives until closed).
    #[serde(default)]
    pub linger_ms: Option<u64>,
    /// Façade attributes (published to sockets).
    #[serde(default)]
    pub attrs: Map<String, Value>,
    /// Façade-private values (never published), e.g. the owning team or project.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub private: Value,
    /// Version of the last change recorded.
    pub version: u64,
    /// Host member id.
    #[serde(default)]
    pub host: Option<String>,
    /// Members in join order.
    #[serde(default)]
    pub members: Vec<MemberRecord>,
    /// Kick bans: member id → end, ms since the epoch.
    #[serde(default)]
    pub bans: Vec<(String, i64)>,
    /// When the room closes with reason `expired`, ms since the epoch.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// A webhook delivery waiting for one endpoint's acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedDelivery {
    /// Queue order (per store, increasing).
    pub seq: u64,
    /// The endpoint's label (its URL without credentials).
    pub endpoint: String,
    /// Delivery id (the `x-rollcall-delivery` header), the same on every attempt and restart.
    pub id: String,
    /// Event name.
    pub event: String,
    /// Room id.
    pub room: String,
    /// The JSON envelope.
    pub body: Vec<u8>,
    /// Event time, Unix seconds.
    pub timestamp: i64,
}

/// Everything read back at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Room records.
    pub rooms: Vec<RoomRecord>,
    /// Task records (JSON), by task id, oldest id first.
    pub tasks: Vec<(String, String)>,
    /// Meta values by name.
    pub meta: Vec<(String, String)>,
    /// Deliveries not yet acknowledged, in queue order.
    pub deliveries: Vec<QueuedDelivery>,
    /// Records that could not be parsed (kind, key, error): logged, kept in the file.
    pub unreadable: Vec<(String, String, String)>,
}
