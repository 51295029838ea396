//! Wire frames: one serialized server message, shared by every outbox it is pushed to, and what
//! it is ([`Kind`], and the room version it carries), so the counters, the webhook relay and the
//! lobby event stream never parse it again. Also [`Push`], what a push into an outbox did.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::protocol::{LeaveReason, PanelRows, ServerMsg};

/// What a frame is: the room event it announces, or another server message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A full snapshot (`panel`).
    Panel,
    /// Members joined.
    Joined,
    /// Members left, for this reason.
    Left(LeaveReason),
    /// A member's live state changed.
    State,
    /// The host changed.
    Host,
    /// The room's façade attributes changed.
    Updated,
    /// Sent to a kicked member's sockets.
    Kicked,
    /// The room closed.
    Closed,
    /// A reply to one socket's request (`ack`, `error`, `pong`), or any other message.
    Reply,
}

/// The shared allocation behind a [`Frame`].
#[derive(Debug, PartialEq, Eq)]
struct Inner {
    text: Utf8Bytes,
    kind: Kind,
    version: Option<u64>,
}

/// One serialized server message (a JSON text frame), shared by every outbox it is pushed to.
///
/// A thin pointer on purpose: an outbox slot is paid per queued frame per socket (8 bytes here
/// instead of 32 for a `Bytes`). The kind and version sit in the shared allocation beside the
/// text, paid once per event, not per subscriber. The text is validated as UTF-8 once, when it
/// is built, not once per delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(Arc<Inner>);

impl Frame {
    /// Wraps serialized JSON that is no room event (a reply, a test frame).
    pub fn new(json: String) -> Self {
        Self::of(json, Kind::Reply, None)
    }
    /// Wraps serialized JSON of `kind`, carrying room `version` (if the message has one).
    pub fn of(json: String, kind: Kind, version: Option<u64>) -> Self {
        Self(Arc::new(Inner {
            text: Utf8Bytes::from(json),
            kind,
            version,
        }))
    }
    /// What the frame is.
    pub fn kind(&self) -> Kind {
        self.0.kind
    }
    /// The room version the message carries (`None` for `closed`, `kicked` and replies).
    pub fn version(&self) -> Option<u64> {
        self.0.version
    }
    /// The text, for a WebSocket `Text` message (a reference-count bump, no copy).
    pub fn text(&self) -> Utf8Bytes {
        self.0.text.clone()
    }
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.text.as_str()
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.text.as_bytes()
    }
}

/// What pushing a frame into a connection's outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Queued,
    /// The outbox is full: the connection is lagging.
    Full,
    /// The connection is gone.
    Gone,
}

impl ServerMsg<'_> {
    /// Serializes to one text frame, with its kind and version.
    pub fn to_frame(&self) -> Frame {
        let (kind, version) = match self {
            Self::Panel { version, .. } => (Kind::Panel, Some(*version)),
            Self::Joined { version, .. } => (Kind::Joined, Some(*version)),
            Self::Left {
                version, reason, ..
            } => (Kind::Left(*reason), Some(*version)),
            Self::State { version, .. } => (Kind::State, Some(*version)),
            Self::Host { version, .. } => (Kind::Host, Some(*version)),
            Self::Updated { version, .. } => (Kind::Updated, Some(*version)),
            Self::Kicked { .. } => (Kind::Kicked, None),
            Self::Closed { .. } => (Kind::Closed, None),
            Self::Ack { .. } | Self::Error { .. } | Self::Pong { .. } => (Kind::Reply, None),
        };
        // Serializing these types cannot fail: no maps with non-string keys, no custom impls.
        let json = serde_json::to_string(self).expect("server messages serialize");
        Frame::of(json, kind, version)
    }
}

impl PanelRows<'_> {
    /// Serializes the panel into a shared frame.
    pub fn to_frame(&self) -> Frame {
        // Strings, numbers and raw JSON only: serializing cannot fail.
        let json = serde_json::to_string(self).expect("panels serialize");
        Frame::of(json, Kind::Panel, Some(self.version))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::{json, Value};

    use super::*;

    /// The kind and version a frame carries are the `type` and `version` its text says, for every
    /// message, so nothing needs to parse a frame again to learn them.
    #[test]
    fn kind_and_version_match_the_text() {
        let room = Cow::Borrowed("r");
        let attrs = serde_json::Map::new();
        let state = json!(1);
        let msgs = [
            ServerMsg::Panel {
                room: room.clone(),
                epoch: Cow::Borrowed("e"),
                version: 1,
                host: None,
                members: vec![],
            },
            ServerMsg::Joined {
                room: room.clone(),
                epoch: Cow::Borrowed("e"),
                version: 2,
                members: vec![],
                host: None,
            },
            ServerMsg::Left {
                room: room.clone(),
                epoch: Cow::Borrowed("e"),
                version: 3,
                members: vec![],
                reason: LeaveReason::Timeout,
                by: None,
                host: None,
            },
            ServerMsg::State {
                room: room.clone(),
                epoch: Cow::Borrowed("e"),
                version: 4,
                member: Cow::Borrowed("a"),
                state: Cow::Borrowed(&state),
            },
            ServerMsg::Host {
                room: room.clone(),
                epoch: Cow::Borrowed("e"),
                version: 5,
                host: Cow::Borrowed("a"),
                by: None,
            },
            ServerMsg::Updated {
                room: room.clone(),
                epoch: Cow::Borrowed("e"),
                version: 6,
                attrs: Cow::Borrowed(&attrs),
            },
            ServerMsg::Kicked {
                room: room.clone(),
                by: None,
            },
            ServerMsg::Closed {
                room: room.clone(),
                reason: Cow::Borrowed("ended"),
            },
            ServerMsg::Pong { reference: None },
        ];
        let kinds = [
            Kind::Panel,
            Kind::Joined,
            Kind::Left(LeaveReason::Timeout),
            Kind::State,
            Kind::Host,
            Kind::Updated,
            Kind::Kicked,
            Kind::Closed,
            Kind::Reply,
        ];
        for (msg, kind) in msgs.iter().zip(kinds) {
            let frame = msg.to_frame();
            let v: Value = serde_json::from_str(frame.as_str()).expect("frames are JSON");
            assert_eq!(frame.kind(), kind, "{v}");
            assert_eq!(frame.version(), v["version"].as_u64(), "{v}");
        }
        let panel = PanelRows {
            room: "r",
            epoch: "e",
            version: 9,
            host: None,
            members: vec![],
        }
        .to_frame();
        assert_eq!((panel.kind(), panel.version()), (Kind::Panel, Some(9)));
    }
}
