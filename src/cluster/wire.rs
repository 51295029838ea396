//! What nodes say to each other: one JSON [`Envelope`] per Redis `PUBLISH` on the receiving
//! node's inbox channel, holding [`Msg`]s in the order they were sent.
//!
//! A node forwards a room command to the room's owner as a [`Msg::Call`]; the owner answers with
//! [`Msg::Answer`] and sends each remote socket its frames ([`Msg::Frames`]) through one ordered
//! pump per socket and room, so a socket sees its `panel` before its `ack`, exactly as on one
//! node. Identities travel as [`WireIdentity`] (what the owner's room rules read).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Access, Identity, RoomAllow};
use crate::ids::{MemberId, RoomId};
use crate::protocol::{LeaveReason, MemberKind};
use crate::room::RoomError;

/// One batch of messages from one node.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub from: String,
    /// In the order sent.
    pub msgs: Vec<Msg>,
}

/// One message between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Msg {
    /// A command for a room the receiver owns.
    Call {
        /// The caller's request id (answered once, if the command has an answer).
        req: u64,
        /// The room.
        room: RoomId,
        /// What to do.
        call: Call,
    },
    /// The answer to a call: a JSON value of the command's answer type, or the room's refusal.
    Answer {
        /// The request id.
        req: u64,
        /// The result.
        result: Result<Value, RoomError>,
    },
    /// Frames for one socket of the receiver, in order.
    Frames {
        /// The receiver's connection id.
        conn: u64,
        /// Serialized server messages.
        frames: Vec<String>,
    },
    /// The room stopped delivering to this socket (kicked, closed, left).
    Detached {
        /// The receiver's connection id.
        conn: u64,
        /// The room.
        room: RoomId,
    },
    /// The owner asks the socket to close with this code (slow consumer ...).
    Close {
        /// The receiver's connection id.
        conn: u64,
        /// The WebSocket close code.
        code: u16,
    },
}

/// A room command as forwarded (`room::Command` without its reply channel or closures).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Call {
    /// A socket joins as its member.
    Join {
        /// The caller's connection id.
        conn: u64,
        /// Who.
        who: WireIdentity,
        /// Initial state.
        state: Option<Value>,
    },
    /// A socket watches.
    Watch {
        /// The caller's connection id.
        conn: u64,
        /// Who.
        who: WireIdentity,
    },
    /// A socket leaves.
    Leave {
        /// The caller's connection id.
        conn: u64,
    },
    /// A socket member's state.
    State {
        /// The caller's connection id.
        conn: u64,
        /// The new state.
        state: Value,
    },
    /// A fresh panel for a socket.
    Sync {
        /// The caller's connection id.
        conn: u64,
    },
    /// A socket closed (no answer).
    Detach {
        /// The caller's connection id.
        conn: u64,
        /// It missed its heartbeat (or its node died): the member leaves with `timeout`.
        timed_out: bool,
    },
    /// A kick.
    Kick {
        /// The kicker (`None`: the operator).
        by: Option<MemberId>,
        /// The target.
        target: MemberId,
    },
    /// Members removed by id.
    Remove {
        /// Ids.
        ids: Vec<MemberId>,
        /// Reason.
        reason: LeaveReason,
        /// By whom.
        by: Option<MemberId>,
        /// All or nothing.
        atomic: bool,
    },
    /// Members added by an API, in one event.
    AddMembers {
        /// The members.
        members: Vec<crate::room::NewMember>,
    },
    /// Which of these ids are members.
    AreMembers {
        /// The ids.
        ids: Vec<MemberId>,
    },
    /// A snapshot.
    Snapshot,
    /// Close the room.
    Close {
        /// Why.
        reason: String,
    },
}

/// An [`Identity`] as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireIdentity {
    member: MemberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    kind: MemberKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    only_room: Option<RoomId>,
    access: WireAccess,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
enum WireAccess {
    Native { rooms: Option<Vec<String>> },
    Game { game: String },
    Room,
    Operator,
}

impl From<&Identity> for WireIdentity {
    fn from(i: &Identity) -> Self {
        Self {
            member: i.member.clone(),
            name: i.name.clone(),
            kind: i.kind,
            exp: i.exp,
            only_room: i.only_room.clone(),
            access: match &i.access {
                Access::Native(allow) => WireAccess::Native {
                    rooms: allow.as_ref().map(|a| a.patterns().to_vec()),
                },
                Access::Game(g) => WireAccess::Game { game: g.clone() },
                Access::Room => WireAccess::Room,
                Access::Operator => WireAccess::Operator,
            },
        }
    }
}

impl WireIdentity {
    /// Back to an identity (a pattern list that no longer validates admits nothing).
    pub fn into_identity(self) -> Identity {
        Identity {
            member: self.member,
            name: self.name,
            kind: self.kind,
            exp: self.exp,
            only_room: self.only_room,
            access: match self.access {
                WireAccess::Native { rooms: None } => Access::NATIVE,
                WireAccess::Native { rooms: Some(p) } => match RoomAllow::new(p) {
                    Ok(a) => Access::Native(Some(a)),
                    Err(_) => Access::Room,
                },
                WireAccess::Game { game } => Access::Game(game),
                WireAccess::Room => Access::Room,
                WireAccess::Operator => Access::Operator,
            },
        }
    }
}
