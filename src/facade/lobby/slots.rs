//! Lobby player slots and invite codes, on this node and, in a cluster, on every node: a player
//! is in one lobby of a configuration at a time (a slot left stale by a socket-side removal is
//! checked against its lobby and reclaimed), and a lobby's invite code is findable from any
//! node (`Cluster::claim_slot`, `Cluster::claim_name`; `protocol/cluster.md`, "Façades").

use super::error::LobbyError;
use super::handlers::{indexes, run};
use super::index::{Scope, Taken};
use super::model::{Lobby, LobbyId};
use super::rules::{ALREADY_ELSEWHERE, ALREADY_HERE};
use crate::app::App;
use crate::ids::MemberId;

/// Whether `player` is a member of lobby `lobby` right now.
async fn is_member(app: &App, scope: &Scope, lobby: LobbyId, player: &MemberId) -> bool {
    let Some(e) = indexes(app).lobby(scope, &lobby) else {
        return false;
    };
    let p = player.clone();
    run(app, &e, move |ops| Ok(ops.is_member(p.as_str())))
        .await
        .unwrap_or(false)
}

/// Reserves `player`'s slot for `lobby`: 400 if the player is in a lobby of this config already.
/// A slot left stale by a socket-side removal is verified against its room and reclaimed.
pub(super) async fn reserve(
    app: &App,
    scope: &Scope,
    player: &MemberId,
    lobby: LobbyId,
) -> Result<(), LobbyError> {
    let idx = indexes(app);
    for _ in 0..3 {
        match idx.reserve(scope, player, lobby) {
            Ok(()) => return reserve_in_cluster(app, scope, player, lobby).await,
            Err(Taken::Pending(_)) => break,
            Err(Taken::Confirmed(other)) => {
                if is_member(app, scope, other, player).await {
                    let msg = if other == lobby {
                        ALREADY_HERE
                    } else {
                        ALREADY_ELSEWHERE
                    };
                    return Err(LobbyError::BadRequest(msg.into()));
                }
                idx.release_stale(scope, player, other);
            }
        }
    }
    Err(LobbyError::BadRequest(ALREADY_ELSEWHERE.into()))
}

/// In a cluster, the slot reserved here is claimed on every node too: a player in a lobby of
/// another node (still counted there) is refused as here.
async fn reserve_in_cluster(
    app: &App,
    scope: &Scope,
    player: &MemberId,
    lobby: LobbyId,
) -> Result<(), LobbyError> {
    let Some(c) = app.registry.cluster() else {
        return Ok(());
    };
    let ns = app.facades.lobby.players_ns(scope);
    let room = lobby.room();
    let holds = |holder: String| {
        let (app, p) = (app.clone(), player.clone());
        async move {
            let Some(h) = app.registry.find(&holder) else {
                return Ok(false);
            };
            match h.are_members(vec![p]).await {
                Ok(m) => Ok(m.first().copied().unwrap_or(false)),
                Err(crate::room::RoomError::Closed) => Ok(false),
                Err(e) => Err(e),
            }
        }
    };
    let claimed = c
        .claim_slot(&ns, player.as_str(), room.as_str(), holds)
        .await;
    match claimed {
        Ok(None) => Ok(()),
        Ok(Some(_)) => {
            indexes(app).release(scope, player, lobby);
            Err(LobbyError::BadRequest(ALREADY_ELSEWHERE.into()))
        }
        Err(e) => {
            indexes(app).release(scope, player, lobby);
            Err(e.into())
        }
    }
}

/// Gives `player`'s slot in `lobby` back: here, and in a cluster on every node.
pub(super) async fn release_slot(app: &App, scope: &Scope, player: &MemberId, lobby: LobbyId) {
    indexes(app).release(scope, player, lobby);
    if let Some(c) = app.registry.cluster() {
        let ns = app.facades.lobby.players_ns(scope);
        c.release_name(&ns, player.as_str(), lobby.room().as_str())
            .await;
    }
}

/// In a cluster: makes the lobby's invite code findable from every node, before answering (a
/// code is 40 random bits: another lobby holding it is only ever logged).
pub(super) async fn publish_code(app: &App, lobby: &Lobby, id: LobbyId) {
    let (Some(c), Some(code)) = (app.registry.cluster(), &lobby.invite_code) else {
        return;
    };
    match c
        .claim_name(super::CODES_NS, code, id.room().as_str())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(lobby = %id, "invite code held by another lobby of the cluster")
        }
        Err(_) => {
            tracing::warn!(lobby = %id, "invite code not published: joins by code reach this node only")
        }
    }
}
