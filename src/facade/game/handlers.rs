//! The HTTP routes of the PLYR-style API, each mounted with and without the vendor's `/api`
//! prefix, and the task submission shared by every mutating route.
//!
//! Each handler follows the vendor's middleware order: parse the body (bad JSON → 400), check
//! the HMAC ([`super::sign`]), check `sessionJwts` ([`super::session`]), then the route's own
//! checks (`roomId`, room exists, membership), and only then create a task. A task runs as a
//! spawned future ([`super::rules`]); `sync` callers await it (bounded), others get its id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::error::GameError;
use super::rules;
use super::sign::{authenticate, ApiKey, Role};
use super::tasks::{Method, Outcome};
use crate::app::App;
use crate::auth::unix_now;
use crate::room::RoomHandle;
use crate::store::Kind;

/// How long a `sync:true` call waits for its task (the vendor polls 50 × 500 ms).
pub const SYNC_WAIT: Duration = Duration::from_secs(25);

/// Every game route, under `/api` and without it.
pub fn routes() -> Router<App> {
    let mut r = Router::new();
    for prefix in ["", "/api"] {
        r = r
            .route(&format!("{prefix}/game/create"), post(create))
            .route(&format!("{prefix}/game/join"), post(join))
            .route(&format!("{prefix}/game/leave"), post(leave))
            .route(&format!("{prefix}/game/end"), post(end))
            .route(&format!("{prefix}/game/isJoined"), get(is_joined))
            .route(&format!("{prefix}/task/status/{{id}}"), get(task_status));
    }
    r
}

fn now_ms() -> u64 {
    u64::try_from(crate::room::now_ms()).unwrap_or(0)
}

/// A signed POST: the key that signed it and its body object.
struct Signed {
    key: Arc<ApiKey>,
    body: Map<String, Value>,
}

fn signed_post(
    app: &App,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Signed, GameError> {
    let raw = raw.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => GameError::PayloadTooLarge,
        _ => GameError::BadRequest(e.body_text()),
    })?;
    let parsed: Value = if raw.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(&raw).map_err(|e| GameError::BadJson(e.to_string()))?
    };
    let keys = &app.facades.game.keys;
    let key = authenticate(keys, headers, Some((&raw, &parsed)), Role::User, now_ms())?;
    match parsed {
        Value::Object(body) => Ok(Signed { key, body }),
        _ => Err(GameError::BadRequest(
            "the body must be a JSON object".into(),
        )),
    }
}

fn signed_get(app: &App, headers: &HeaderMap) -> Result<Arc<ApiKey>, GameError> {
    authenticate(&app.facades.game.keys, headers, None, Role::User, now_ms())
}

fn required_room(body: &Map<String, Value>) -> Result<String, GameError> {
    rules::room_id(body.get("roomId"))?
        .ok_or_else(|| GameError::BadRequest("roomId is required".into()))
}

/// What join and leave share, in the vendor's check order: a signed body, its verified
/// `sessionJwts` (the players), its `roomId`, and the live room.
struct PlayerBatch {
    req: Signed,
    players: Vec<String>,
    room_no: String,
    handle: RoomHandle,
}

fn player_batch(
    app: &App,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<PlayerBatch, GameError> {
    let req = signed_post(app, headers, raw)?;
    let players = app.facades.game.sessions.verify_batch(
        req.body.get("sessionJwts"),
        &req.key.game_id,
        unix_now(),
    )?;
    let room_no = required_room(&req.body)?;
    let handle = live_room(app, &req.key, &room_no)?;
    Ok(PlayerBatch {
        req,
        players,
        room_no,
        handle,
    })
}

fn live_room(app: &App, key: &ApiKey, room_no: &str) -> Result<RoomHandle, GameError> {
    // In a cluster the room may be owned by another node: `find` reaches it there.
    app.registry
        .find(rules::room_key(&key.game_id, room_no).as_str())
        .ok_or(GameError::RoomNotFound)
}

/// Creates the task and runs `work` in the background. The answer: `{task:{id,status}}` at once,
/// or (sync) the finished task's status object with `extra` merged on top.
async fn submit(
    app: &App,
    method: Method,
    body: Value,
    sync: bool,
    extra: Map<String, Value>,
    work: impl Future<Output = Outcome> + Send + 'static,
) -> Result<Value, GameError> {
    let game = &app.facades.game;
    let mut id = game.tasks.create(method, body.clone());
    if let Some(c) = app.registry.cluster() {
        // Task ids are unique across the cluster, and a poll on any node finds this one here.
        let ttl = app.settings.game.task_ttl_secs;
        let mut tries = 0;
        loop {
            match c.claim_task(id.as_str(), ttl).await {
                Ok(true) => break,
                Ok(false) if tries < 8 => {
                    tries += 1;
                    game.tasks.forget(&id);
                    id = game.tasks.create(method, body.clone());
                }
                _ => {
                    game.tasks.forget(&id);
                    return Err(GameError::Internal(
                        "the cluster's Redis is unreachable; retry".into(),
                    ));
                }
            }
        }
        // If this node dies before the task is done, any node answers its poll "failed", as
        // after a restart: the change may or may not have happened.
        let lost: super::tasks::Outcome = Err(super::tasks::LOST.into());
        let at = super::tasks::completed_now();
        if let Some(body) = game.tasks.done_status(&id, &lost, &at) {
            if c.put_task_lost(id.as_str(), &body, ttl).await.is_err() {
                game.tasks.forget(&id);
                return Err(GameError::Internal(
                    "the cluster's Redis is unreachable; retry".into(),
                ));
            }
        }
    }
    // The task is recorded before the answer that names it (the request's commit barrier).
    if let Some(rec) = game.tasks.record(&id, None) {
        app.registry.store().put(Kind::Task, id.as_str(), rec);
    }
    app.stats.task("PENDING");
    let (runner, task) = (app.clone(), id.clone());
    let done = tokio::spawn(async move {
        let outcome = work.await;
        if let Err(e) = &outcome {
            tracing::info!(task = %task, method = method.as_str(), error = %e, "game task failed");
        }
        runner
            .stats
            .task(if outcome.is_ok() { "SUCCESS" } else { "FAILED" });
        // A result is pollable only once it is committed, with the room change it reports.
        let tasks = &runner.facades.game.tasks;
        let completed_at = super::tasks::completed_now();
        if let Some(rec) = tasks.record(&task, Some((&outcome, &completed_at))) {
            let store = runner.registry.store();
            store.put(Kind::Task, task.as_str(), rec);
            if let Err(e) = store.flush().await {
                tracing::warn!(task = %task, error = %e, "task result not committed");
            }
        }
        // A cluster keeps the result in Redis too, before it is pollable: a poll on any node
        // finds it while this node is down.
        if let (Some(c), Some(body)) = (
            runner.registry.cluster(),
            tasks.done_status(&task, &outcome, &completed_at),
        ) {
            let ttl = runner.settings.game.task_ttl_secs;
            if let Err(e) = c.put_task_result(task.as_str(), &body, ttl).await {
                tracing::warn!(task = %task, error = %e, "task result not stored in redis");
            }
        }
        tasks.finish_at(&task, outcome, completed_at);
    });
    if !sync {
        return Ok(json!({ "task": { "id": id, "status": "PENDING" } }));
    }
    match tokio::time::timeout(SYNC_WAIT, done).await {
        Err(_) => {
            app.stats.task("TIMEOUT");
            Err(GameError::Timeout(id))
        }
        Ok(Err(e)) => Err(GameError::Internal(format!("task {id} did not run: {e}"))),
        Ok(Ok(())) => {
            let mut status = game.tasks.status(id.as_str());
            if let Value::Object(m) = &mut status {
                m.extend(extra);
            }
            Ok(status)
        }
    }
}

/// `POST /game/create {expiresIn?, sync?}`.
async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GameError> {
    let req = signed_post(&app, &headers, raw)?;
    let expires_in = rules::expires_in(req.body.get("expiresIn"))?;
    let sync = rules::truthy(req.body.get("sync"));
    let game_id = req.key.game_id.clone();
    let count = match app.registry.cluster() {
        Some(c) => c
            .set_count(
                &super::rooms_ns(&game_id),
                app.settings.limits.max_game_rooms_per_game,
            )
            .await
            .map_err(|e| GameError::Internal(e.to_string()))?,
        None => app.registry.count_prefix(&format!("game:{game_id}:")),
    };
    app.limits
        .facade_room(
            &format!("game:{game_id}"),
            app.registry.len(),
            count,
            (
                crate::limits::Limit::GameRooms,
                app.settings.limits.max_game_rooms_per_game,
            ),
        )
        .map_err(GameError::Limited)?;
    let body = json!({ "gameId": game_id, "expiresIn": expires_in });
    let work = rules::create(app.clone(), game_id, expires_in);
    let mut v = submit(&app, Method::Create, body, sync, Map::new(), work).await?;
    if sync {
        // A sync create also answers the documented `{roomId, roomAddress}` at the top level.
        let result = v["taskData"]["result"].clone();
        if let Value::Object(m) = &mut v {
            for k in ["roomId", "roomAddress"] {
                if let Some(x) = result.get(k) {
                    m.insert(k.into(), x.clone());
                }
            }
        }
    }
    Ok(Json(v))
}

/// `POST /game/join {roomId, sessionJwts[], sync?}`.
async fn join(
    State(app): State<App>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GameError> {
    let PlayerBatch {
        req,
        players,
        room_no,
        handle,
    } = player_batch(&app, &headers, raw)?;
    let new = rules::not_members(&handle, players).await?;
    if new.is_empty() {
        return Ok(Json(json!({ "message": "All players are already joined" })));
    }
    let body = json!({ "plyrIds": new, "gameId": req.key.game_id, "roomId": room_no });
    let extra = top_level(&room_no, Some(&new));
    let sync = rules::truthy(req.body.get("sync"));
    Ok(Json(
        submit(
            &app,
            Method::Join,
            body,
            sync,
            extra,
            rules::join(handle, new),
        )
        .await?,
    ))
}

/// `POST /game/leave {roomId, sessionJwts[], sync?}`: all players leave, or none (401 array).
async fn leave(
    State(app): State<App>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GameError> {
    let PlayerBatch {
        req,
        players,
        room_no,
        handle,
    } = player_batch(&app, &headers, raw)?;
    let missing = rules::not_members(&handle, players.clone()).await?;
    if !missing.is_empty() {
        return Err(GameError::NotJoined(missing));
    }
    let body = json!({ "plyrIds": players, "gameId": req.key.game_id, "roomId": room_no });
    let extra = top_level(&room_no, Some(&players));
    let sync = rules::truthy(req.body.get("sync"));
    let work = rules::leave(handle, players);
    Ok(Json(
        submit(&app, Method::Leave, body, sync, extra, work).await?,
    ))
}

/// `POST /game/end {roomId, sync?}`.
async fn end(
    State(app): State<App>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GameError> {
    let req = signed_post(&app, &headers, raw)?;
    let room_no = required_room(&req.body)?;
    let handle = live_room(&app, &req.key, &room_no)?;
    let body = json!({ "gameId": req.key.game_id, "roomId": room_no });
    let extra = top_level(&room_no, None);
    let sync = rules::truthy(req.body.get("sync"));
    Ok(Json(
        submit(&app, Method::End, body, sync, extra, rules::end(handle)).await?,
    ))
}

fn top_level(room_no: &str, plyr_ids: Option<&[String]>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("roomId".into(), json!(room_no));
    if let Some(ids) = plyr_ids {
        m.insert("plyrIds".into(), json!(ids));
    }
    m
}

/// `GET /game/isJoined?roomId=&plyrId=` → `{isJoined}`.
async fn is_joined(
    State(app): State<App>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, GameError> {
    let key = signed_get(&app, &headers)?;
    let Query(q) = query.map_err(|e| GameError::BadRequest(e.body_text()))?;
    let plyr_id = match q.get("plyrId") {
        Some(p) if !p.is_empty() => p.to_lowercase(),
        _ => return Err(GameError::BadRequest("plyrId is required".into())),
    };
    let Some(room) = q.get("roomId") else {
        return Err(GameError::BadRequest("roomId is required".into()));
    };
    let room_no = rules::normalize_room_id(room);
    let handle = app
        .registry
        .get(rules::room_key(&key.game_id, &room_no).as_str());
    let joined = rules::is_joined(handle, plyr_id).await;
    Ok(Json(json!({ "isJoined": joined })))
}

/// `GET /task/status/{id}`: always 200 (`PENDING`, `SUCCESS`, `FAILED`, `NOT_FOUND`).
async fn task_status(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, GameError> {
    signed_get(&app, &headers)?;
    Ok(Json(app.facades.game.tasks.status(&id)))
}
