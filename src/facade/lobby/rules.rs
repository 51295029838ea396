//! The lobby rules, each applied atomically inside the lobby's room actor.
//!
//! Every function here runs in a `custom` closure (`RoomHandle::custom`): it checks (host, membership,
//! capacity, status), then changes the room through `Ops` — which versions and broadcasts each
//! change as the native event (`joined`, `left`, `kicked`, `state`, `host`, `updated`, `closed`)
//! — and renders the lobby as it is right after the change. Nothing here awaits, so no other
//! command can slip between a check and its act.

use serde_json::{Map, Value};

use super::error::LobbyError;
use super::index::{Indexes, LobbyEntry};
use super::model::{now_iso, render, Lobby, LobbyAttrs, LobbyId, Status};
use super::request::{Matchmaking, UpdateLobby};
use crate::ids::MemberId;
use crate::protocol::LeaveReason;
use crate::room::Ops;
use crate::room::{NewMember, RoomError};

/// The refusal of a join by a player who is already in the lobby it joins.
pub const ALREADY_HERE: &str = "Player is already in this lobby";
/// The refusal of a join or create by a player who is in another lobby of the config.
pub const ALREADY_ELSEWHERE: &str = "Player is already in a lobby";

/// The lobby after a removal, or the news that the removal emptied and deleted it.
#[derive(Debug)]
pub enum AfterRemoval {
    /// The lobby, without the removed player.
    Lobby(Box<Lobby>),
    /// The last player left: the lobby was deleted.
    Deleted,
}

fn attrs(ops: &Ops<'_>) -> Result<LobbyAttrs, LobbyError> {
    LobbyAttrs::read(ops.attrs())
}

fn current(ops: &Ops<'_>, id: &LobbyId) -> Result<Lobby, LobbyError> {
    render(id, &ops.snapshot())
}

/// Saves `a` with a fresh `updatedAt`; announces it (`updated`) when a lobby field changed.
fn commit(ops: &mut Ops<'_>, mut a: LobbyAttrs, publish: bool) {
    a.touch();
    *ops.attrs_mut() = a.to_map();
    if publish {
        ops.publish_attrs();
    }
}

/// Adds a player (create's host, or a join). `via_code`: joined with the invite code (or the
/// creator, who needs none).
pub fn join(
    ops: &mut Ops<'_>,
    e: &LobbyEntry,
    player: NewMember,
    via_code: bool,
) -> Result<Lobby, LobbyError> {
    let a = attrs(ops)?;
    if ops.is_member(player.id.as_str()) {
        return Err(LobbyError::BadRequest(ALREADY_HERE.into()));
    }
    if a.is_private && !via_code {
        return Err(LobbyError::Forbidden(
            "This lobby is private: join it with its invite code".into(),
        ));
    }
    if a.status == Status::InGame && !a.allow_late_join {
        return Err(LobbyError::BadRequest(
            "Lobby does not allow joining after the game has started".into(),
        ));
    }
    let id = player.id.clone();
    ops.add(vec![player])?;
    e.live.touch(&id);
    commit(ops, a, false);
    current(ops, &e.id)
}

/// Removes `target` at `requester`'s request: a leave (requester = target, not a kick) or a host
/// kick (reason `kick`, `by` = host; the target's sockets get `kicked`). The last player leaving
/// deletes the lobby.
pub fn remove(
    ops: &mut Ops<'_>,
    e: &LobbyEntry,
    target: &MemberId,
    requester: &MemberId,
    is_kick: bool,
) -> Result<AfterRemoval, LobbyError> {
    if !ops.is_member(target.as_str()) {
        return Err(LobbyError::NotFound("Player not found in lobby".into()));
    }
    let a = attrs(ops)?;
    if is_kick || requester != target {
        let host = ops.host().cloned();
        if host.as_ref() != Some(requester) {
            return Err(LobbyError::Forbidden(
                "Only the host can kick players".into(),
            ));
        }
        if requester == target {
            return Err(RoomError::SelfKick.into());
        }
        ops.remove(
            std::slice::from_ref(target),
            LeaveReason::Kick,
            host.as_ref(),
        );
    } else {
        ops.remove(std::slice::from_ref(target), LeaveReason::Leave, None);
    }
    e.live.forget(target);
    if ops.member_ids().is_empty() {
        ops.close("deleted");
        return Ok(AfterRemoval::Deleted);
    }
    commit(ops, a, false);
    current(ops, &e.id).map(|l| AfterRemoval::Lobby(Box::new(l)))
}

/// Deletes the lobby at its host's request.
pub fn delete(ops: &mut Ops<'_>, requester: &MemberId) -> Result<(), LobbyError> {
    if ops.host() != Some(requester) {
        return Err(LobbyError::Forbidden(
            "Only the host can delete the lobby".into(),
        ));
    }
    ops.close("deleted");
    Ok(())
}

/// A heartbeat from `player`.
pub fn heartbeat(
    ops: &mut Ops<'_>,
    e: &LobbyEntry,
    player: &MemberId,
) -> Result<Lobby, LobbyError> {
    if !ops.is_member(player.as_str()) {
        return Err(LobbyError::NotFound("Player not found in lobby".into()));
    }
    e.live.touch(player);
    current(ops, &e.id)
}

/// Applies an UpdateLobby: every permission and rule is checked before anything changes, then
/// the lobby fields (one `updated` event), the host (one `host` event) and the player state
/// (one `state` event) change, in that order.
pub fn update(
    ops: &mut Ops<'_>,
    e: &LobbyEntry,
    indexes: &Indexes,
    u: UpdateLobby,
    max_state: usize,
) -> Result<Lobby, LobbyError> {
    let requester = MemberId::from(u.requester.as_str());
    if !ops.is_member(&u.requester) {
        return Err(LobbyError::Forbidden(
            "Requester is not a player in this lobby".into(),
        ));
    }
    let is_host = ops.host() == Some(&requester);
    let target = MemberId::from(u.target.as_deref().unwrap_or(&u.requester));
    let host_only = [
        (u.host.is_some(), "transfer the host"),
        (u.status.is_some(), "change the status"),
        (!u.settings.is_empty(), "change the lobby settings"),
        (u.matchmaking.is_some(), "control matchmaking"),
        (
            u.player_state.is_some() && target != requester,
            "update another player's state",
        ),
    ];
    if let Some((_, what)) = host_only.iter().find(|(asked, _)| *asked && !is_host) {
        return Err(LobbyError::Forbidden(format!("Only the host can {what}")));
    }
    if u.player_state.is_some() && !ops.is_member(target.as_str()) {
        return Err(LobbyError::NotFound(
            "Target player not found in lobby".into(),
        ));
    }
    let merged = u
        .player_state
        .clone()
        .map(|patch| merge_state(ops.state_of(target.as_str()), patch));
    if merged
        .as_ref()
        .is_some_and(|m| serde_json::to_vec(m).map_or(usize::MAX, |b| b.len()) > max_state)
    {
        return Err(LobbyError::StateTooLarge(max_state));
    }
    let new_host = match &u.host {
        Some(h) if !ops.is_member(h) => {
            return Err(LobbyError::BadRequest(
                "The new host must be a player in the lobby".into(),
            ))
        }
        Some(h) => Some(MemberId::from(h.as_str())),
        None => None,
    };
    if u.status.is_some() && u.matchmaking.is_some() {
        return Err(LobbyError::BadRequest(
            "status and matchmaking cannot be changed in the same request".into(),
        ));
    }

    let before = attrs(ops)?;
    let mut a = before.clone();
    match &u.matchmaking {
        Some(Matchmaking::Start { mode, data }) => {
            if a.status != Status::Waiting {
                return Err(LobbyError::BadRequest(
                    "Matchmaking can only start while the lobby is waiting".into(),
                ));
            }
            a.status = Status::InQueue;
            a.matchmaking_mode = Some(mode.clone());
            a.matchmaking_started_at = Some(now_iso());
            a.matchmaking_ticket_id = Some(format!("ticket-{}", uuid::Uuid::new_v4()));
            a.matchmaking_data = data.clone();
        }
        Some(Matchmaking::Cancel) => {
            if a.status != Status::InQueue {
                return Err(LobbyError::BadRequest("Lobby is not in matchmaking".into()));
            }
            a.status = Status::Waiting;
            a.clear_matchmaking();
        }
        None => {}
    }
    if let Some(s) = u.status {
        if s != a.status && matches!(a.status, Status::InQueue | Status::MatchFound) {
            a.clear_matchmaking();
        }
        a.status = s;
    }
    let s = u.settings;
    if let Some(n) = s.max_players {
        let count = ops.member_ids().len();
        if (n as usize) < count {
            return Err(LobbyError::BadRequest(format!(
                "maxPlayers cannot be lower than the current number of players ({count})"
            )));
        }
        a.max_players = n;
    }
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = s.$f { a.$f = v; } )* };
    }
    set!(name, is_private, use_invite_code, allow_late_join, region);
    if let Some(custom) = s.custom {
        a.settings = custom;
    }
    a.use_invite_code |= a.is_private;

    // Every check passed: apply.
    match (a.use_invite_code, a.invite_code.is_some()) {
        (true, false) => {
            let code = indexes.claim_code(e.id);
            a.invite_code = Some(code.clone());
            indexes.set_code(e, Some(code));
        }
        (false, true) => {
            a.invite_code = None;
            indexes.set_code(e, None);
        }
        _ => {}
    }
    ops.set_max_members(a.max_players as usize);
    let fields_changed = a != before;
    let host_changed = new_host.as_ref().is_some_and(|h| ops.host() != Some(h));
    let state_changed = u.player_state.is_some();
    if fields_changed || host_changed || state_changed {
        commit(ops, a, fields_changed);
    }
    if let Some(h) = new_host.filter(|_| host_changed) {
        ops.set_host(&h, Some(&requester));
    }
    if let Some(merged) = merged {
        ops.set_state(&target, Value::Object(merged));
    }
    e.live.touch(&requester);
    current(ops, &e.id)
}

/// Shallow merge: the patch's keys replace the old state's; other keys stay. A non-object old
/// state (set by a socket) is replaced.
pub fn merge_state(old: Option<&Value>, patch: Map<String, Value>) -> Map<String, Value> {
    let mut merged = match old {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    merged.extend(patch);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Keys of the patch win, other keys survive, nested objects are replaced whole.
    #[test]
    fn player_state_merge_is_shallow() {
        let old = json!({"hp": 10, "pos": {"x": 1, "y": 2}, "team": "red"});
        let patch = json!({"hp": 7, "pos": {"x": 5}})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            Value::Object(merge_state(Some(&old), patch.clone())),
            json!({"hp": 7, "pos": {"x": 5}, "team": "red"})
        );
        assert_eq!(
            Value::Object(merge_state(Some(&json!("socket string")), patch)),
            json!({"hp": 7, "pos": {"x": 5}})
        );
    }
}
