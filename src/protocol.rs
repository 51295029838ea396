//! The WebSocket wire contract (spec: `protocol/README.md`): client requests, server messages,
//! error codes and close codes.
//!
//! Server messages use `Cow` so the room actor can serialize borrowed views of its state (no
//! copies on the hot path) while tests and examples deserialize the very same types, owned.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// A request's `ref`: any JSON value, echoed **verbatim** in the request's reply.
///
/// Parsed as a [`Value`], which is exact for strings, booleans, null and integers that fit 64
/// bits; a ref holding any other number (a big integer, `1.50`, `1e3`) would come back changed,
/// so for those the request's own text of the ref is kept ([`Ref::verbatim`]).
#[derive(Debug, Clone)]
pub enum Ref {
    /// Parsed; serializes to the same text.
    Value(Value),
    /// The client's own text of the ref.
    Raw(Box<RawValue>),
}

impl Ref {
    /// `self` made verbatim against the request `text` it was parsed from: unchanged unless it
    /// holds a number that a [`Value`] does not write back as sent.
    pub fn verbatim(self, text: &str) -> Self {
        match &self {
            Self::Value(v) if lossy(v) => Self::from_text(text).unwrap_or(self),
            _ => self,
        }
    }

    /// The raw `ref` of a request's text, if it is a JSON object with one.
    pub fn from_text(text: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct RawRef<'a> {
            #[serde(rename = "ref", borrow, default)]
            reference: Option<&'a RawValue>,
        }
        let raw = serde_json::from_str::<RawRef<'_>>(text).ok()?.reference?;
        Some(Self::Raw(raw.to_owned()))
    }
}

/// True when `v` holds a number serde_json stores as a float (not an exact 64-bit integer).
fn lossy(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(lossy),
        Value::Object(o) => o.values().any(lossy),
        _ => false,
    }
}

impl Serialize for Ref {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => v.serialize(s),
            Self::Raw(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Self::Value)
    }
}

impl PartialEq for Ref {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Value(a), Self::Value(b)) => a == b,
            // Raw text against anything: equal when they write the same JSON.
            _ => serde_json::to_string(self).ok() == serde_json::to_string(other).ok(),
        }
    }
}

/// A request from a client. Every request may carry `ref`, echoed in its reply.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientMsg {
    /// Become a member of `room` (created on demand for native rooms).
    Join {
        /// Room name.
        room: String,
        /// Initial live state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<Value>,
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Subscribe to `room`'s panel without being a member.
    Watch {
        /// Room name.
        room: String,
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Leave `room` (a member leaves; a watcher stops watching).
    Leave {
        /// Room name.
        room: String,
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Host only: remove `member` from `room`, barring it for the ban period.
    Kick {
        /// Room name.
        room: String,
        /// The member to remove.
        member: String,
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Replace this member's live state in `room`.
    State {
        /// Room name.
        room: String,
        /// Any JSON value up to the state size limit.
        state: Value,
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Ask for a fresh `panel` of `room`.
    Sync {
        /// Room name.
        room: String,
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Application-level liveness check; answered with `pong`.
    Ping {
        /// Echoed.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
}

impl ClientMsg {
    /// The request's `ref`.
    pub fn reference_mut(&mut self) -> &mut Option<Ref> {
        match self {
            Self::Join { reference, .. }
            | Self::Watch { reference, .. }
            | Self::Leave { reference, .. }
            | Self::Kick { reference, .. }
            | Self::State { reference, .. }
            | Self::Sync { reference, .. }
            | Self::Ping { reference } => reference,
        }
    }

    /// Parses one request frame, keeping its `ref` verbatim ([`Ref::verbatim`]).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let mut msg: Self = serde_json::from_str(text)?;
        let r = msg.reference_mut();
        *r = r.take().map(|r| r.verbatim(text));
        Ok(msg)
    }
}

/// What kind of participant a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// A game client or lobby player.
    Player,
    /// A phone caller reported by a telephony bridge.
    Phone,
    /// A web participant of a video room.
    Web,
}

/// Why members left a room. Exactly one `left` event is emitted per leave, with one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaveReason {
    /// The member asked to leave.
    Leave,
    /// The host or an operator removed it.
    Kick,
    /// An external system reported that it left (phone bridge, game backend, operator).
    Left,
    /// Its last socket closed and the grace period ran out.
    Disconnect,
    /// Its connection stopped answering pings, or its lobby heartbeat stopped.
    Timeout,
}

impl LeaveReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leave => "leave",
            Self::Kick => "kick",
            Self::Left => "left",
            Self::Disconnect => "disconnect",
            Self::Timeout => "timeout",
        }
    }
}

/// One row of a participant panel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView<'a> {
    /// Member id.
    pub id: Cow<'a, str>,
    /// Participant kind.
    pub kind: MemberKind,
    /// Display name, if known.
    pub name: Option<Cow<'a, str>>,
    /// Live state (`null` until set).
    pub state: Cow<'a, Value>,
    /// Join time, milliseconds since the Unix epoch.
    pub joined_at: i64,
}

/// A message from the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMsg<'a> {
    /// A full snapshot: the answer to join, watch and sync, and the resync of a lagging socket.
    Panel {
        /// Room name.
        room: Cow<'a, str>,
        /// The room incarnation's epoch: versions compare only within one epoch.
        #[serde(default)]
        epoch: Cow<'a, str>,
        /// The room version this snapshot reflects.
        version: u64,
        /// The host's member id, if the room has members.
        host: Option<Cow<'a, str>>,
        /// Members in join order.
        members: Vec<MemberView<'a>>,
    },
    /// Members joined.
    Joined {
        /// Room name.
        room: Cow<'a, str>,
        /// The room incarnation's epoch: versions compare only within one epoch.
        #[serde(default)]
        epoch: Cow<'a, str>,
        /// New version.
        version: u64,
        /// The new members.
        members: Vec<MemberView<'a>>,
        /// Set when the join made a new host (the first member of an empty room).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<Cow<'a, str>>,
    },
    /// Members left, all for one reason, in one event.
    Left {
        /// Room name.
        room: Cow<'a, str>,
        /// The room incarnation's epoch: versions compare only within one epoch.
        #[serde(default)]
        epoch: Cow<'a, str>,
        /// New version.
        version: u64,
        /// Ids of the members that left.
        members: Vec<Cow<'a, str>>,
        /// Why.
        reason: LeaveReason,
        /// Who removed them (kick), if a member did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Cow<'a, str>>,
        /// The new host, when the host changed in this event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<Cow<'a, str>>,
    },
    /// A member's live state changed.
    State {
        /// Room name.
        room: Cow<'a, str>,
        /// The room incarnation's epoch: versions compare only within one epoch.
        #[serde(default)]
        epoch: Cow<'a, str>,
        /// New version.
        version: u64,
        /// Whose state.
        member: Cow<'a, str>,
        /// The new state.
        state: Cow<'a, Value>,
    },
    /// The host changed without anybody leaving (an explicit transfer).
    Host {
        /// Room name.
        room: Cow<'a, str>,
        /// The room incarnation's epoch: versions compare only within one epoch.
        #[serde(default)]
        epoch: Cow<'a, str>,
        /// New version.
        version: u64,
        /// The new host.
        host: Cow<'a, str>,
        /// Who transferred it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Cow<'a, str>>,
    },
    /// The room's façade attributes changed (lobby settings, status ...).
    Updated {
        /// Room name.
        room: Cow<'a, str>,
        /// The room incarnation's epoch: versions compare only within one epoch.
        #[serde(default)]
        epoch: Cow<'a, str>,
        /// New version.
        version: u64,
        /// The attributes, whole.
        attrs: Cow<'a, serde_json::Map<String, Value>>,
    },
    /// Sent to a kicked member's sockets, right after the `left` event.
    Kicked {
        /// Room name.
        room: Cow<'a, str>,
        /// Who kicked (absent: an operator).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Cow<'a, str>>,
    },
    /// The room was closed; no more events will come from it.
    Closed {
        /// Room name.
        room: Cow<'a, str>,
        /// Why (`ended`, `deleted`, `shutdown`, ...).
        reason: Cow<'a, str>,
    },
    /// A request without other visible result succeeded.
    Ack {
        /// The request's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Cow<'a, Ref>>,
    },
    /// A request failed; the socket stays usable.
    Error {
        /// The request's `ref`, when it could be read.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Cow<'a, Ref>>,
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: Cow<'a, str>,
        /// Seconds until a retry can succeed (`rate_limited` only).
        #[serde(
            default,
            rename = "retryAfter",
            skip_serializing_if = "Option::is_none"
        )]
        retry_after: Option<f64>,
    },
    /// The answer to `ping`.
    Pong {
        /// The request's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Cow<'a, Ref>>,
    },
}

/// A `panel` whose member rows are already serialized: the same JSON as [`ServerMsg::Panel`]
/// (a test holds the two byte for byte), built from a room's cached rows.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "panel")]
pub struct PanelRows<'a> {
    /// Room name.
    pub room: &'a str,
    /// The room incarnation's epoch.
    pub epoch: &'a str,
    /// The room version this snapshot reflects.
    pub version: u64,
    /// The host's member id, if the room has members.
    pub host: Option<&'a str>,
    /// Serialized [`MemberView`]s in join order.
    pub members: Vec<&'a serde_json::value::RawValue>,
}

/// The `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    BadJson,
    /// The `type` is not one of the client messages.
    UnknownType,
    /// A field is missing or has the wrong type, or a binary frame was sent.
    BadRequest,
    /// The room name is not valid.
    InvalidRoom,
    /// A façade room that does not exist.
    RoomNotFound,
    /// The room has `max_members_per_room` members.
    RoomFull,
    /// The socket is in `max_rooms_per_socket` rooms.
    TooManyRooms,
    /// Only the host may do this.
    NotHost,
    /// The socket's member is not in the room (or the kick target is not).
    NotMember,
    /// The member was kicked and its ban has not expired.
    Banned,
    /// This room only admits members added through its REST API.
    Forbidden,
    /// The state is larger than `max_state_bytes`.
    StateTooLarge,
    /// The room closed while the request was in flight.
    RoomClosed,
    /// This token or address is creating rooms too fast; `retryAfter` says when to try again.
    RateLimited,
    /// The server holds `limits.max_rooms` rooms: no new room until some close.
    ServerFull,
    /// The room's owner node cannot be reached right now (cluster: Redis down, or a dead
    /// owner not yet replaced); nothing changed: retry after a short backoff.
    Unavailable,
}

/// WebSocket close codes rollcall sends (1000–1015 from RFC 6455, 4000–4999 our own).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down: reconnect (elsewhere) after a short backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol (RFC 6455 §7.4.1): a bad frame, a masked frame from
    /// the server side, a reserved bit or opcode, a fragment out of order.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message larger than `max_message_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The socket's token expired while it was open: reconnect with a fresh token.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The socket could not keep up with its rooms' events for `slow_consumer_secs`.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// This node left the cluster (it lost Redis for longer than its heartbeat, so other nodes
    /// took its rooms over): reconnect, to any node.
    pub const SERVICE_RESTART: u16 = 1012;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number in a request is read exactly (correctly rounded) and so survives the trip to the
    /// panel and back: found by the `ws_message` fuzz target, where `2.555555555555555e+49` came
    /// back as `2.5555555555555547e+49` (serde_json without `float_roundtrip`).
    #[test]
    fn request_numbers_survive_a_round_trip() {
        let text = r#"{"type":"state","room":"r","state":{"y":2.555555555555555e+49,"z":25555555555555555555555555555555555555555555555555}}"#;
        let msg: ClientMsg = serde_json::from_str(text).unwrap();
        let ClientMsg::State { state, .. } = &msg else {
            panic!("a state request: {msg:?}");
        };
        assert_eq!(state["y"].as_f64(), Some(2.555555555555555e49));
        assert_eq!(state["z"].as_f64(), Some(2.5555555555555557e49));
        let again = serde_json::to_string(&msg).unwrap();
        assert_eq!(serde_json::from_str::<ClientMsg>(&again).unwrap(), msg);
    }
}
