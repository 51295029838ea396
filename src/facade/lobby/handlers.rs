//! The REST routes of PlayFlow's legacy lobby API.
//!
//! Each handler runs in NestJS's order: the guard ([`Ctx`]: `api-key`, `?name=`), then the input
//! (query and body validation, 400), then the lookup (404), then the rule inside the room actor
//! ([`rules`]). Lookups go through [`Indexes`]; a room found closed under a lookup is forgotten and
//! answered 404.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::error::LobbyError;
use super::extract::{Ctx, JsonBody};
use super::index::{Indexes, LobbyEntry, Scope};
use super::liveness::{self, Live};
use super::model::{now_iso, render, Lobby, LobbyAttrs, LobbyId, Status};
use super::request::{self, AddPlayer};
use super::rules::{self, AfterRemoval, ALREADY_HERE};
use super::slots::{publish_code, release_slot, reserve};
use crate::app::App;
use crate::ids::MemberId;
use crate::protocol::MemberKind;
use crate::room::Ops;
use crate::room::{NewMember, RoomKind, RoomSpec};

/// A lobby's custom `settings` are at most `limits.max_lobby_settings_bytes` of JSON (400).
fn settings_size_ok(app: &App, settings: Option<&Value>) -> Result<(), LobbyError> {
    let max = app.settings.limits.max_lobby_settings_bytes;
    let size = settings.map_or(0, |v| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()));
    if max > 0 && size > max {
        let limit = crate::limits::Limit::LobbySettings;
        app.limits.refuse(limit, None, "settings too large");
        return Err(LobbyError::Validation(vec![format!(
            "settings must be at most {max} bytes of JSON (got {size})"
        )]));
    }
    Ok(())
}

pub(super) fn indexes(app: &App) -> &Arc<Indexes> {
    &app.facades.lobby.indexes
}

/// The lobby `id` of `scope`, or 404.
fn entry(app: &App, scope: &Scope, id: &str) -> Result<Arc<LobbyEntry>, LobbyError> {
    LobbyId::parse(id)
        .and_then(|id| indexes(app).lobby(scope, &id))
        .ok_or_else(LobbyError::lobby_not_found)
}

/// Runs a lobby rule in the lobby's actor; a closed room is forgotten and answered 404.
pub(super) async fn run<T: Send + 'static>(
    app: &App,
    e: &LobbyEntry,
    f: impl FnOnce(&mut Ops<'_>) -> Result<T, LobbyError> + Send + 'static,
) -> Result<T, LobbyError> {
    match e.handle.custom(f).await {
        Ok(r) => r,
        Err(_) => {
            indexes(app).forget(&e.id);
            Err(LobbyError::lobby_not_found())
        }
    }
}

/// The lobby as it is now. A lobby left without players (sockets removed them all) is deleted
/// on sight and answered 404.
async fn view(app: &App, e: &LobbyEntry) -> Result<Lobby, LobbyError> {
    let id = e.id;
    let lobby = run(app, e, move |ops| {
        if ops.member_ids().is_empty() {
            ops.close("deleted");
            return Ok(None);
        }
        render(&id, &ops.snapshot()).map(Some)
    })
    .await?;
    lobby.ok_or_else(|| {
        indexes(app).forget(&id);
        LobbyError::lobby_not_found()
    })
}

/// `GET /lobbies?name=&public=`: the config's lobbies, oldest first.
pub async fn list(State(app): State<App>, ctx: Ctx) -> Result<Json<Vec<Lobby>>, LobbyError> {
    let public_only = ctx.flag("public")?.unwrap_or(false);
    let entries = indexes(&app).in_scope(&ctx.scope);
    let views = futures::future::join_all(entries.iter().map(|e| view(&app, e))).await;
    let mut lobbies: Vec<Lobby> = views
        .into_iter()
        .filter_map(Result::ok)
        .filter(|l| !(public_only && l.is_private))
        .collect();
    lobbies.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(lobbies))
}

/// `POST /lobbies?name=`: creates a lobby with its host as first player. 201.
pub async fn create(
    State(app): State<App>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Lobby>), LobbyError> {
    let c = request::create(&body, app.facades.lobby.min_timeout())?;
    ctx.act_as(&app, &c.host, None)?;
    settings_size_ok(&app, c.settings.as_ref())?;
    let idx = indexes(&app);
    app.limits
        .lobby_create(ctx.peer)
        .map_err(LobbyError::Limited)?;
    let lobbies_ns = app.facades.lobby.lobbies_ns(ctx.scope.tenant);
    let count = match app.registry.cluster() {
        Some(c) => {
            let cap = app.settings.limits.max_lobbies_per_key;
            c.set_count(&lobbies_ns, cap).await?
        }
        None => idx.count_tenant(ctx.scope.tenant),
    };
    app.limits
        .facade_room(
            &format!("lobby:{}", ctx.scope.tenant.0),
            app.registry.len(),
            count,
            (
                crate::limits::Limit::Lobbies,
                app.settings.limits.max_lobbies_per_key,
            ),
        )
        .map_err(LobbyError::Limited)?;
    let id = LobbyId::random();
    let host = MemberId::from(c.host.as_str());
    reserve(&app, &ctx.scope, &host, id).await?;
    if let Some(c) = app.registry.cluster() {
        // Counted on every node from now on, against the cap in the same step (the room
        // leaves the set when it closes).
        let cap = app.settings.limits.max_lobbies_per_key;
        let added = c.set_add_capped(&lobbies_ns, id.room().as_str(), cap).await;
        if !matches!(added, Ok(true)) {
            release_slot(&app, &ctx.scope, &host, id).await;
            return Err(match added {
                Err(e) => e.into(),
                _ => {
                    LobbyError::Limited(app.limits.tenant_full(crate::limits::Limit::Lobbies, cap))
                }
            });
        }
    }
    let code = c.use_invite_code.then(|| idx.claim_code(id));
    let now = now_iso();
    let attrs = LobbyAttrs {
        name: c.name,
        max_players: c.max_players,
        region: c.region,
        status: Status::Waiting,
        is_private: c.is_private,
        use_invite_code: c.use_invite_code,
        invite_code: code.clone(),
        allow_late_join: c.allow_late_join,
        settings: c.settings,
        game_server: None,
        timeout: c.timeout,
        matchmaking_mode: None,
        matchmaking_started_at: None,
        matchmaking_ticket_id: None,
        matchmaking_data: None,
        created_at: now.clone(),
        updated_at: now,
    };
    let spec = RoomSpec {
        // The project and config: what finds the lobby again after a restart.
        private: app.facades.lobby.stored_scope(&ctx.scope),
        kind: RoomKind::Lobby,
        max_members: c.max_players as usize,
        linger: None,
        attrs: attrs.to_map(),
    };
    let Some(handle) = app.registry.create(&id.room(), spec) else {
        release_slot(&app, &ctx.scope, &host, id).await;
        return Err(LobbyError::Internal(format!(
            "lobby id {id} already in use"
        )));
    };
    let live = Arc::new(Live::new(Duration::from_secs(u64::from(c.timeout))));
    let stop = app.shutdown.child_token();
    let e = Arc::new(LobbyEntry::new(
        id,
        ctx.scope.clone(),
        handle,
        live,
        stop,
        code,
    ));
    let member = NewMember {
        id: host.clone(),
        kind: MemberKind::Player,
        name: None,
        meta: Value::Null,
    };
    let e2 = e.clone();
    match run(&app, &e, move |ops| rules::join(ops, &e2, member, true)).await {
        Ok(lobby) => {
            // Listed only now that it has its host: a listing never sees it empty.
            idx.insert(e.clone());
            idx.confirm(&ctx.scope, &host, id);
            liveness::spawn(idx.clone(), e);
            publish_code(&app, &lobby, id).await;
            tracing::debug!(lobby = %id, host = %host, "lobby created");
            Ok((StatusCode::CREATED, Json(lobby)))
        }
        Err(err) => {
            // Cannot happen for a fresh room; undo everything if it does.
            let _ = e.handle.close("deleted").await; // already closed is as good
            idx.set_code(&e, None);
            release_slot(&app, &ctx.scope, &host, id).await;
            Err(err)
        }
    }
}

/// `GET /lobbies/{id}?name=`: by lobby id, or by player id (that player's lobby).
pub async fn get(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Lobby>, LobbyError> {
    let idx = indexes(&app);
    if let Some(e) = LobbyId::parse(&id).and_then(|l| idx.lobby(&ctx.scope, &l)) {
        return view(&app, &e).await.map(Json);
    }
    let not_found = || LobbyError::NotFound("Lobby or player not found".into());
    let lobby = idx.player_lobby(&ctx.scope, &id).ok_or_else(not_found)?;
    let e = idx.lobby(&ctx.scope, &lobby).ok_or_else(not_found)?;
    let view = view(&app, &e).await.map_err(|_| not_found())?;
    if view.players.iter().flatten().any(|p| *p == id) {
        Ok(Json(view))
    } else {
        idx.release_stale(&ctx.scope, &MemberId::from(id.as_str()), lobby);
        Err(not_found())
    }
}

/// `PUT /lobbies/{id}?name=`: UpdateLobby.
pub async fn update(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Lobby>, LobbyError> {
    let u = request::update(&body)?;
    ctx.act_as(&app, &u.requester, Some(&format!("lobby:{id}")))?;
    if let Some(Some(custom)) = &u.settings.custom {
        settings_size_ok(&app, Some(custom))?;
    }
    let e = entry(&app, &ctx.scope, &id)?;
    let (e2, idx) = (e.clone(), indexes(&app).clone());
    let max_state = app.settings.max_state_bytes;
    let lobby = run(&app, &e, move |ops| {
        rules::update(ops, &e2, &idx, u, max_state)
    })
    .await?;
    publish_code(&app, &lobby, e.id).await;
    Ok(Json(lobby))
}

/// `DELETE /lobbies/{id}?name=` with `{playerId}`: the host deletes the lobby. 204.
pub async fn delete(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, LobbyError> {
    let player = MemberId::from(request::player_id(&body)?);
    ctx.act_as(&app, player.as_str(), Some(&format!("lobby:{id}")))?;
    let e = entry(&app, &ctx.scope, &id)?;
    run(&app, &e, move |ops| rules::delete(ops, &player)).await?;
    indexes(&app).forget(&e.id);
    tracing::debug!(lobby = %e.id, "lobby deleted by its host");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /lobbies/{id}/players?name=`: player ids in join order.
pub async fn players(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<Vec<String>>, LobbyError> {
    let e = entry(&app, &ctx.scope, &id)?;
    let lobby = view(&app, &e).await?;
    Ok(Json(lobby.players.unwrap_or_default()))
}

/// `POST /lobbies/{id}/players?name=` with AddPlayer: join by id.
pub async fn join(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Lobby>, LobbyError> {
    let p = request::add_player(&body)?;
    ctx.act_as(&app, &p.player_id, Some(&format!("lobby:{id}")))?;
    let e = entry(&app, &ctx.scope, &id)?;
    join_entry(&app, &ctx.scope, e, p, false).await
}

/// `POST /lobbies/code/{code}/players?name=` with AddPlayer: join by invite code.
pub async fn join_by_code(
    State(app): State<App>,
    ctx: Ctx,
    Path(code): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Lobby>, LobbyError> {
    let p = request::add_player(&body)?;
    // The token first (strict mode), so a caller without one learns nothing about which codes
    // exist; the lobby's own room is checked against the token's rooms claim below.
    ctx.act_as(&app, &p.player_id, None)?;
    let idx = indexes(&app);
    let e = idx
        .code_lobby(&code)
        .and_then(|l| idx.lobby(&ctx.scope, &l))
        .ok_or_else(|| LobbyError::BadRequest("Invalid invite code".into()))?;
    ctx.act_as(&app, &p.player_id, Some(e.id.room().as_str()))?;
    join_entry(&app, &ctx.scope, e, p, true).await
}

async fn join_entry(
    app: &App,
    scope: &Scope,
    e: Arc<LobbyEntry>,
    p: AddPlayer,
    via_code: bool,
) -> Result<Json<Lobby>, LobbyError> {
    let pid = MemberId::from(p.player_id.as_str());
    reserve(app, scope, &pid, e.id).await?;
    let member = NewMember {
        id: pid.clone(),
        kind: MemberKind::Player,
        name: p.display_name(),
        meta: p.metadata,
    };
    let e2 = e.clone();
    let r = run(app, &e, move |ops| rules::join(ops, &e2, member, via_code)).await;
    let idx = indexes(app);
    match r {
        Ok(lobby) => {
            idx.confirm(scope, &pid, e.id);
            Ok(Json(lobby))
        }
        Err(err) => {
            if err == LobbyError::BadRequest(ALREADY_HERE.into()) {
                idx.confirm(scope, &pid, e.id);
            } else {
                release_slot(app, scope, &pid, e.id).await;
            }
            Err(err)
        }
    }
}

/// `DELETE /lobbies/{id}/players/{playerId}?name=&requesterId=&isKick=`: leave, or host kick.
/// 200 with the lobby; 204 (no body) when the last player left and the lobby was deleted.
pub async fn remove_player(
    State(app): State<App>,
    ctx: Ctx,
    Path((id, player_id)): Path<(String, String)>,
) -> Result<Response, LobbyError> {
    let requester = MemberId::from(ctx.required("requesterId")?);
    let is_kick = ctx.flag("isKick")?.unwrap_or(false);
    ctx.act_as(&app, requester.as_str(), Some(&format!("lobby:{id}")))?;
    let e = entry(&app, &ctx.scope, &id)?;
    let target = MemberId::from(player_id.as_str());
    let (e2, t) = (e.clone(), target.clone());
    let after = run(&app, &e, move |ops| {
        rules::remove(ops, &e2, &t, &requester, is_kick)
    })
    .await?;
    let idx = indexes(&app);
    release_slot(&app, &ctx.scope, &target, e.id).await;
    Ok(match after {
        AfterRemoval::Lobby(lobby) => Json(*lobby).into_response(),
        AfterRemoval::Deleted => {
            idx.forget(&e.id);
            tracing::debug!(lobby = %e.id, "last player left: lobby deleted");
            StatusCode::NO_CONTENT.into_response()
        }
    })
}

/// `POST /lobbies/{id}/heartbeat?name=` with `{playerId}`: a sign of life. 200 with the lobby.
pub async fn heartbeat(
    State(app): State<App>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Lobby>, LobbyError> {
    let player = MemberId::from(request::player_id(&body)?);
    ctx.act_as(&app, player.as_str(), Some(&format!("lobby:{id}")))?;
    let e = entry(&app, &ctx.scope, &id)?;
    let e2 = e.clone();
    run(&app, &e, move |ops| rules::heartbeat(ops, &e2, &player))
        .await
        .map(Json)
}
