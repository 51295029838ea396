//! The operator REST API: health, room list and snapshots, and backend leave/kick.
//! Everything but `/healthz` needs `Authorization: Bearer <admin_token>`.

use std::borrow::Cow;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::app::App;
use crate::auth::secret_eq;
use crate::ids::MemberId;
use crate::protocol::{LeaveReason, ServerMsg};
use crate::room::Snapshot;

/// Checks the admin bearer token in constant time.
pub fn require_admin(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = crate::ws::bearer(headers, None).ok_or(ApiError::Unauthorized)?;
    // Production mode without a configured token: nobody is the operator.
    let Some(admin) = app.settings.admin_token.as_deref() else {
        return Err(ApiError::Unauthorized);
    };
    if secret_eq(token.as_bytes(), admin.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `GET /healthz`.
pub async fn healthz(State(app): State<App>) -> Json<Value> {
    let mut v = json!({
        "status": if app.shutdown.is_cancelled() { "stopping" } else { "ok" },
        "rooms": app.registry.len(),
        "sockets": app.stats.sockets(),
        "store": {
            "durable": app.registry.store().durable(),
            "ok": !app.registry.store().health().failing.load(std::sync::atomic::Ordering::Relaxed),
        },
    });
    if let Some(c) = app.registry.cluster() {
        v["cluster"] = json!({
            "node": c.node_id(),
            "redis": c.redis_up(),
            "nodes": c.nodes(),
            "ownedRooms": c.owned_rooms(),
        });
    }
    Json(v)
}

/// The snapshot in the shape of a `panel` message.
pub fn panel_json(s: &Snapshot) -> Value {
    let msg = ServerMsg::Panel {
        room: Cow::Borrowed(&s.room),
        epoch: Cow::Borrowed(&s.epoch),
        version: s.version,
        host: s.host.as_deref().map(Cow::Borrowed),
        members: s.members.clone(),
    };
    serde_json::to_value(&msg).unwrap_or(Value::Null)
}

/// `GET /v1/rooms`.
pub async fn list(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &headers)?;
    let mut rooms = Vec::new();
    for h in app.registry.handles() {
        if let Ok(s) = h.snapshot().await {
            rooms.push(json!({
                "room": s.room, "kind": s.kind, "version": s.version,
                "members": s.members.len(), "subscribers": s.subscribers,
            }));
        }
    }
    rooms.sort_by(|a, b| a["room"].as_str().cmp(&b["room"].as_str()));
    Ok(Json(json!({ "rooms": rooms })))
}

/// `GET /v1/rooms/{room}`: the same snapshot as a `panel` message.
pub async fn get(
    State(app): State<App>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &headers)?;
    let h = app.registry.find(&room).ok_or(ApiError::NotFound)?;
    let s = h.snapshot().await?;
    Ok(Json(panel_json(&s)))
}

/// Body of `POST /v1/rooms/{room}/leave`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveBody {
    /// Member ids to remove, in one event.
    members: Vec<String>,
    /// `left` (default) or `leave`.
    #[serde(default)]
    reason: Option<LeaveReason>,
    /// All-or-nothing: fail with 404 and the missing ids if any is not a member.
    #[serde(default)]
    atomic: bool,
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })
}

/// `POST /v1/rooms/{room}/leave`: a backend removes members (reason `left` unless given).
pub async fn leave(
    State(app): State<App>,
    headers: HeaderMap,
    Path(room): Path<String>,
    b: Result<Json<LeaveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &headers)?;
    let b = body(b)?;
    if b.members.is_empty() || b.members.len() > 10_000 {
        return Err(ApiError::BadRequest(
            "`members` must hold 1 to 10000 ids".into(),
        ));
    }
    let reason = b.reason.unwrap_or(LeaveReason::Left);
    if !matches!(reason, LeaveReason::Left | LeaveReason::Leave) {
        return Err(ApiError::BadRequest(
            "`reason` is `left` or `leave` (use /kick to kick)".into(),
        ));
    }
    let h = app.registry.find(&room).ok_or(ApiError::NotFound)?;
    let ids = b.members.into_iter().map(MemberId::from).collect();
    let r = h.remove(ids, reason, None, b.atomic).await?;
    Ok(Json(
        json!({ "room": room, "version": r.version, "removed": r.removed }),
    ))
}

/// Body of `POST /v1/rooms/{room}/kick`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickBody {
    /// The member to kick.
    member: String,
}

/// `POST /v1/rooms/{room}/kick`: an operator kicks (and bans) a member.
pub async fn kick(
    State(app): State<App>,
    headers: HeaderMap,
    Path(room): Path<String>,
    b: Result<Json<KickBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &headers)?;
    let b = body(b)?;
    let h = app.registry.find(&room).ok_or(ApiError::NotFound)?;
    h.kick(None, MemberId::from(b.member)).await?;
    let s = h.snapshot().await?;
    Ok(Json(panel_json(&s)))
}
