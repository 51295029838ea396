//! Who may see a room: the tenant-isolation check every `join` and `watch` passes before any room
//! is asked (rules in `protocol/README.md`, "Who may see a room").
//!
//! The credential kind ([`Access`]) decides: a video room token sees its room; a PLYR session
//! token the rooms of its game; a native token native rooms (narrowed by its `rooms` claim) and
//! the lobbies its member plays in (membership is checked by the lobby's actor, atomically); the
//! operator token watches everything.

use crate::auth::{Access, Identity};
use crate::ids::RESERVED_PREFIXES;
use crate::protocol::ErrorCode;

/// Ok, or the `forbidden` refusal with a message naming the rule.
pub(super) fn check(who: &Identity, room: &str, join: bool) -> Result<(), (ErrorCode, String)> {
    let refuse = |why: String| Err((ErrorCode::Forbidden, why));
    if let Some(only) = &who.only_room {
        if only.as_str() != room {
            return refuse(format!("this token only admits room {only}"));
        }
        return Ok(());
    }
    let facade = RESERVED_PREFIXES.iter().any(|p| room.starts_with(p));
    match &who.access {
        Access::Operator if join && facade => {
            refuse("the operator token may watch a façade room, not join it".into())
        }
        Access::Operator => Ok(()),
        Access::Game(game) => {
            let ours = room
                .strip_prefix("game:")
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(g, _)| g.eq_ignore_ascii_case(game));
            if ours {
                Ok(())
            } else {
                refuse(format!(
                    "a session token of game {game:?} admits only that game's rooms"
                ))
            }
        }
        Access::Room => refuse("this token admits no room".into()),
        Access::Native(allow) => {
            if room.starts_with("video:") || room.starts_with("game:") {
                return refuse(format!(
                    "room {room:?} is only visible to its own façade's tokens"
                ));
            }
            match allow {
                Some(allow) if !allow.admits(room) => {
                    refuse(format!("this token's rooms claim does not admit {room:?}"))
                }
                _ => Ok(()),
            }
        }
    }
}
