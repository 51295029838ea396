//! Newtype ids: rooms, members and connections never travel as bare strings or integers.
//!
//! `RoomId` and `MemberId` wrap an `Arc<str>`: they are cloned into every event, subscriber and
//! timer, so a clone must be a reference-count bump, not an allocation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string as this id (no validation: see the callers for the rules).
            pub fn new(s: impl Into<Arc<str>>) -> Self {
                Self(s.into())
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s.into())
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A room key. Native rooms use the client's name; façade rooms are namespaced
    /// (`game:`, `lobby:`, `video:`) so they can never collide with a native room.
    RoomId
);
string_id!(
    /// A member of a room: a player id, a phone call id, a web participant id or a JWT `sub`.
    MemberId
);

/// One WebSocket connection, unique for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId(u64);

impl ConnId {
    /// A fresh id, never handed out before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
    /// The raw number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// The prefixes reserved for façade rooms; a WebSocket client cannot create a room under them.
pub const RESERVED_PREFIXES: [&str; 3] = ["game:", "lobby:", "video:"];

/// Checks a client-supplied native room name: 1–128 bytes of `[A-Za-z0-9_.:@-]`.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
}
