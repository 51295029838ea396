//! What the game-room tasks do to the room core, and the parsing of the vendor's loose request
//! fields (`roomId`, `expiresIn`, `sync`).
//!
//! A PLYR room is `game:<gameId>:<roomId>` in the registry: a [`RoomKind::Game`] room that lives
//! until ended or expired (no linger), whose members are added by `/game/join` and whose sockets
//! can only attach to those members. Each task is one command to the room actor, so a batch
//! join is one `joined` event and a batch leave is one `left` event (all-or-nothing, like the
//! vendor's single on-chain transaction).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::error::GameError;
use super::tasks::Outcome;
use crate::app::App;
use crate::ids::{MemberId, RoomId};
use crate::protocol::{LeaveReason, MemberKind};
use crate::room::{now_ms, NewMember, RoomError, RoomHandle, RoomKind, RoomSpec};

/// `expiresIn` when absent, 0 or empty: the vendor's code default, 30 days (its docs say 86400).
pub const DEFAULT_EXPIRES_IN: u64 = 30 * 24 * 60 * 60;

/// Expiries longer than this are not scheduled (the room outlives any process anyway).
const MAX_SCHEDULED_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// The registry key of a game's room: `game:<gameId>:<roomId>`.
pub fn room_key(game_id: &str, room_no: &str) -> RoomId {
    RoomId::from(format!("game:{game_id}:{room_no}"))
}

/// `roomId` from a body or query: a string (lowercased, as the vendor does; a decimal one without
/// leading zeros, as the on-chain `uint256` reads it) or a non-negative integer. `None` when
/// absent, null or empty.
pub fn room_id(v: Option<&Value>) -> Result<Option<String>, GameError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(normalize_room_id(s))),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Some(n.to_string())),
        Some(_) => Err(GameError::BadRequest(
            "roomId must be a string or a non-negative integer".into(),
        )),
    }
}

/// Lowercases; strips leading zeros from a decimal id.
pub fn normalize_room_id(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let t = s.trim_start_matches('0');
        return if t.is_empty() { "0".into() } else { t.into() };
    }
    s.to_lowercase()
}

/// `expiresIn` in seconds: a number or a digit string; absent, 0, `""` or `false` mean the
/// default (the vendor's `if (!expiresIn)`).
pub fn expires_in(v: Option<&Value>) -> Result<u64, GameError> {
    let bad = || GameError::BadRequest("expiresIn must be a positive number of seconds".into());
    let secs = match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => 0,
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u,
            // Whole floats (`60.0`); the bound keeps the cast exact.
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => f as u64,
            _ => return Err(bad()),
        },
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
    };
    Ok(if secs == 0 { DEFAULT_EXPIRES_IN } else { secs })
}

/// `sync` as JavaScript's `if (sync)` reads it, except that the strings `"false"` and `"0"` mean
/// false (a client that writes them means it).
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !matches!(s.as_str(), "" | "false" | "0"),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

/// The `errorMessage` of a task the room refused.
fn failure(e: RoomError) -> String {
    match e {
        RoomError::Closed => "Room not found".into(),
        RoomError::Full => "Room is full".into(),
        RoomError::NotMembers(ids) => ids
            .iter()
            .map(|id| format!("Player is not joined: {id}"))
            .collect::<Vec<_>>()
            .join(", "),
        RoomError::Banned => "Player is barred from this room".into(),
        e @ (RoomError::NotHost
        | RoomError::NotMember
        | RoomError::Forbidden
        | RoomError::SelfKick
        | RoomError::Unavailable) => e.to_string(),
    }
}

/// `createGameRoom`: allocates the game's next room id and spawns the room; schedules its expiry.
pub async fn create(app: App, game_id: String, expires_in: u64) -> Outcome {
    let game = &app.facades.game;
    if let Some(c) = app.registry.cluster() {
        // Every node allocates from the same counter, in Redis.
        let n = c
            .next_number(&format!("game.room_no.{game_id}"))
            .await
            .map_err(|_| "the cluster's Redis is unreachable; retry".to_owned())?;
        // Counted by every node's cap from now on, checked in the same step (the room leaves
        // the set when it closes).
        let room = room_key(&game_id, &n.to_string());
        let cap = app.settings.limits.max_game_rooms_per_game;
        let added = c
            .set_add_capped(&super::rooms_ns(&game_id), room.as_str(), cap)
            .await
            .map_err(|_| "the cluster's Redis is unreachable; retry".to_owned())?;
        if !added {
            return Err(format!(
                "this game holds its maximum of {cap} rooms; end some first"
            ));
        }
        return create_room(&app, game_id, n.to_string(), expires_in).await;
    }
    let room_no = game.next_room_no(&game_id).to_string();
    // The counter is stored so a restart never hands out a room id again.
    if let Some(n) = game.counter(&game_id) {
        app.registry.store().put(
            crate::store::Kind::Meta,
            &super::counter_key(&game_id),
            crate::store::Body {
                json: n.to_string(),
                expires_at: None,
            },
        );
    }
    create_room(&app, game_id, room_no, expires_in).await
}

/// Spawns game room `room_no` (allocated) and schedules its expiry.
async fn create_room(app: &App, game_id: String, room_no: String, expires_in: u64) -> Outcome {
    let key = room_key(&game_id, &room_no);
    let created = now_ms();
    let ms = i64::try_from(expires_in.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut attrs = Map::new();
    attrs.insert("gameId".into(), json!(game_id));
    attrs.insert("roomId".into(), json!(room_no));
    attrs.insert("roomAddress".into(), json!(key.as_str()));
    attrs.insert("expiresIn".into(), json!(expires_in));
    attrs.insert("expiresAt".into(), json!(created.saturating_add(ms)));
    let spec = RoomSpec {
        private: serde_json::Value::Null,
        kind: RoomKind::Game,
        max_members: app.settings.max_members_per_room,
        linger: None,
        attrs,
    };
    let Some(handle) = app.registry.create(&key, spec) else {
        return Err(format!("Room already exists: {room_no}"));
    };
    if expires_in <= MAX_SCHEDULED_SECS {
        let after = Duration::from_secs(expires_in);
        // A room already closed (ended in the meantime) has nothing left to expire.
        let _ = handle.custom(move |ops| ops.expire_after(after)).await;
    }
    tracing::info!(room = %key, expires_in, "game room created");
    Ok(json!({ "gameId": game_id, "roomId": room_no, "roomAddress": key.as_str() }))
}

/// `joinGameRoom`: adds the players in one `joined` event.
pub async fn join(handle: RoomHandle, plyr_ids: Vec<String>) -> Outcome {
    let members = plyr_ids
        .into_iter()
        .map(|id| NewMember {
            id: MemberId::from(id),
            kind: MemberKind::Player,
            name: None,
            meta: Value::Null,
        })
        .collect();
    handle
        .add_members(members)
        .await
        .map(|_| json!({}))
        .map_err(failure)
}

/// `leaveGameRoom`: removes every player in one `left` event (reason `leave`), or nobody.
pub async fn leave(handle: RoomHandle, plyr_ids: Vec<String>) -> Outcome {
    let ids = plyr_ids.into_iter().map(MemberId::from).collect();
    handle
        .remove(ids, LeaveReason::Leave, None, true)
        .await
        .map(|_| json!({}))
        .map_err(failure)
}

/// `endGameRoom`: closes the room (subscribers get `closed` with reason `ended`).
pub async fn end(handle: RoomHandle) -> Outcome {
    handle
        .close("ended")
        .await
        .map(|()| json!({}))
        .map_err(failure)
}

/// The players of `plyr_ids` that are not members, in order (one actor round trip).
pub async fn not_members(
    handle: &RoomHandle,
    plyr_ids: Vec<String>,
) -> Result<Vec<String>, GameError> {
    let ids = plyr_ids
        .iter()
        .map(|id| MemberId::from(id.as_str()))
        .collect();
    // A plain command, not a closure: it reaches the room on another cluster node too.
    handle
        .are_members(ids)
        .await
        .map(|joined| {
            plyr_ids
                .into_iter()
                .zip(joined)
                .filter(|(_, j)| !j)
                .map(|(id, _)| id)
                .collect()
        })
        .map_err(|e| match e {
            RoomError::Closed => GameError::RoomNotFound,
            e => GameError::Internal(e.to_string()),
        })
}

/// Whether `plyr_id` is a member of the room (false for an unknown or closed room).
pub async fn is_joined(handle: Option<RoomHandle>, plyr_id: String) -> bool {
    let Some(handle) = handle else { return false };
    handle
        .are_members(vec![MemberId::from(plyr_id)])
        .await
        .is_ok_and(|j| j.first() == Some(&true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loose fields real clients send are read as the vendor reads them.
    #[test]
    fn loose_fields() {
        assert_eq!(expires_in(None).unwrap(), DEFAULT_EXPIRES_IN);
        assert_eq!(expires_in(Some(&json!(0))).unwrap(), DEFAULT_EXPIRES_IN);
        assert_eq!(expires_in(Some(&json!(""))).unwrap(), DEFAULT_EXPIRES_IN);
        assert_eq!(expires_in(Some(&json!(86400))).unwrap(), 86400);
        assert_eq!(expires_in(Some(&json!("86400"))).unwrap(), 86400);
        assert_eq!(expires_in(Some(&json!(60.0))).unwrap(), 60);
        for bad in [
            json!(-1),
            json!(1.5),
            json!("1h"),
            json!("-5"),
            json!([1]),
            json!(true),
        ] {
            assert!(expires_in(Some(&bad)).is_err(), "{bad}");
        }
        assert_eq!(
            room_id(Some(&json!("0042"))).unwrap().as_deref(),
            Some("42")
        );
        assert_eq!(room_id(Some(&json!(7))).unwrap().as_deref(), Some("7"));
        assert_eq!(
            room_id(Some(&json!("AbC"))).unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(room_id(Some(&json!(""))).unwrap(), None);
        assert!(room_id(Some(&json!({"a": 1}))).is_err());
        assert!(
            truthy(Some(&json!(true))) && truthy(Some(&json!("true"))) && truthy(Some(&json!(1)))
        );
        assert!(!truthy(None) && !truthy(Some(&json!(false))) && !truthy(Some(&json!("false"))));
        assert_eq!(room_key("g", "1").as_str(), "game:g:1");
    }
}
