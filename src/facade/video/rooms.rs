//! Rooms: `POST /rooms`, `GET /rooms`, `GET|PATCH|DELETE /rooms/{room}`.
//!
//! A room is an actor keyed `video:<uuid>` whose `attrs` hold the room object served here (the
//! vendor's field names; unset optional strings are omitted, never `null`, because the vendor
//! schema types them as plain strings). The vendor's many presentation settings (colours,
//! toolbar, recordings ...) are accepted and ignored: rollcall has no room UI.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use rand::Rng;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::auth::AuthTeam;
use super::body::{self, opt_string, Page};
use super::directory::Listed;
use super::error::{FieldErrors, VideoError};
use super::{room_key, TeamId};
use crate::app::App;
use crate::room::{RoomHandle, RoomKind, RoomSpec};

/// `friendly_url` values that would be shadowed by a fixed route (`/rooms/live`).
const RESERVED_NAMES: [&str; 1] = ["live"];

/// A vendor timestamp with second precision: `2025-04-07T05:42:44Z`.
pub fn iso_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The room object served to clients: the room's attributes minus internal ones.
pub fn room_json(attrs: &Map<String, Value>) -> Value {
    let mut m = attrs.clone();
    m.shift_remove("default_role");
    Value::Object(m)
}

/// A room's actor, resolved from `{room}` (UUID or `friendly_url`) within the caller's team.
pub async fn resolve(
    app: &App,
    team: &TeamId,
    key: Result<Path<String>, PathRejection>,
) -> Result<(Listed, RoomHandle), VideoError> {
    let Path(key) = key.map_err(|_| VideoError::RoomNotFound)?;
    let listed = app
        .facades
        .video
        .directory
        .resolve(team, &key)
        .ok_or(VideoError::RoomNotFound)?;
    match app.registry.get(room_key(listed.uuid).as_str()) {
        Some(h) => Ok((listed, h)),
        None => {
            // The actor is gone (closed): the directory entry is stale.
            app.facades.video.directory.remove(listed.uuid);
            Err(VideoError::RoomNotFound)
        }
    }
}

/// The fields a create or update may set, validated.
#[derive(Debug, Default)]
struct Fields {
    description: Option<Option<String>>,
    topic: Option<Option<String>>,
    friendly_url: Option<String>,
    privacy: Option<String>,
    /// `Some(None)`: back to the server default.
    max_participants: Option<Option<usize>>,
    external_id: Option<Option<String>>,
    default_role: Option<Option<String>>,
}

fn validate(obj: &Map<String, Value>, cap: usize) -> Result<Fields, VideoError> {
    let mut e = FieldErrors::new();
    let mut f = Fields::default();
    // Present keys only: on update, an absent key keeps its value and `null` clears it.
    let text = |field: &str, min: usize, max: usize, e: &mut FieldErrors| {
        obj.contains_key(field)
            .then(|| opt_string(obj, field, min, max, e))
    };
    f.description = text("description", 3, 500, &mut e);
    f.topic = text("topic", 1, 500, &mut e);
    f.external_id = text("external_id", 1, 255, &mut e);
    f.default_role = text("default_role", 1, 255, &mut e);
    if obj.contains_key("friendly_url") {
        match opt_string(obj, "friendly_url", 3, 32, &mut e) {
            Some(u) if !body::url_safe(&u) => e.add(
                "friendly_url",
                "The friendly url field must only contain letters, numbers, dashes and underscores.",
            ),
            Some(u) if RESERVED_NAMES.contains(&u.as_str()) => {
                e.add("friendly_url", "The selected friendly url is reserved.")
            }
            Some(u) => f.friendly_url = Some(u),
            None if obj.get("friendly_url") == Some(&Value::Null) => {
                e.add("friendly_url", "The friendly url field must be a string.")
            }
            None => {}
        }
    }
    if let Some(v) = obj.get("privacy") {
        match v.as_str() {
            Some(p @ ("public" | "private")) => f.privacy = Some(p.to_owned()),
            _ => e.add(
                "privacy",
                "The selected privacy is invalid (public or private).",
            ),
        }
    }
    if let Some(v) = obj.get("max_participants") {
        let n = match v {
            Value::Null => Some(None),
            Value::Number(n) => n.as_u64().map(|n| Some(n as usize)),
            Value::String(s) => s.parse::<usize>().ok().map(Some),
            _ => None,
        };
        match n {
            Some(Some(n)) if !(2..=cap).contains(&n) => e.add(
                "max_participants",
                format!("The max participants field must be between 2 and {cap}."),
            ),
            Some(n) => f.max_participants = Some(n),
            None => e.add(
                "max_participants",
                "The max participants field must be an integer.",
            ),
        }
    }
    e.check().map(|()| f)
}

/// A generated `friendly_url`: 32 URL-safe characters, like the vendor's.
fn generated_name() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

/// Reserves `name` in `team` for `uuid`: here, and in a cluster on every node (false: another
/// room holds it).
async fn reserve(app: &App, team: &TeamId, name: &str, uuid: Uuid) -> Result<bool, VideoError> {
    let dir = &app.facades.video.directory;
    if !dir.reserve(team, name, uuid) {
        return Ok(false);
    }
    let Some(c) = app.registry.cluster() else {
        return Ok(true);
    };
    let room = room_key(uuid);
    match c
        .claim_name(&super::names_ns(team), name, room.as_str())
        .await
    {
        Ok(true) => Ok(true),
        other => {
            dir.release(team, name, uuid);
            other.map_err(VideoError::Internal)
        }
    }
}

/// Gives `name` back, here and in a cluster.
async fn release(app: &App, team: &TeamId, name: &str, uuid: Uuid) {
    app.facades.video.directory.release(team, name, uuid);
    if let Some(c) = app.registry.cluster() {
        let room = room_key(uuid);
        c.release_name(&super::names_ns(team), name, room.as_str())
            .await;
    }
}

fn taken() -> VideoError {
    FieldErrors::one("friendly_url", "The friendly url has already been taken.")
}

fn set_opt(m: &mut Map<String, Value>, key: &str, v: Option<String>) {
    match v {
        Some(s) => {
            m.insert(key.into(), Value::String(s));
        }
        None => {
            m.shift_remove(key);
        }
    }
}

/// `POST /api/v1/rooms`: 200 with the room object (the vendor documents 200, not 201).
pub async fn create(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, VideoError> {
    let obj = body::json_object(b)?;
    let cap = app.settings.max_members_per_room;
    let f = validate(&obj, cap)?;
    let count = match app.registry.cluster() {
        Some(c) => c
            .set_count(
                &super::rooms_ns(&team),
                app.settings.limits.max_video_rooms_per_team,
            )
            .await
            .map_err(VideoError::Internal)?,
        None => app.facades.video.directory.count(&team),
    };
    app.limits
        .facade_room(
            &format!("video:{team}"),
            app.registry.len(),
            count,
            (
                crate::limits::Limit::VideoRooms,
                app.settings.limits.max_video_rooms_per_team,
            ),
        )
        .map_err(VideoError::Limited)?;
    let uuid = Uuid::new_v4();
    let name = match f.friendly_url {
        Some(n) => {
            if !reserve(&app, &team, &n, uuid).await? {
                return Err(taken());
            }
            n
        }
        None => loop {
            let n = generated_name();
            if reserve(&app, &team, &n, uuid).await? {
                break n;
            }
        },
    };
    let max = f.max_participants.flatten().unwrap_or(cap);
    let now = iso_seconds(crate::room::now_ms());
    let mut attrs = Map::new();
    attrs.insert("id".into(), json!(uuid.to_string()));
    set_opt(&mut attrs, "description", f.description.flatten());
    set_opt(&mut attrs, "topic", f.topic.flatten());
    attrs.insert("friendly_url".into(), json!(name));
    attrs.insert(
        "privacy".into(),
        json!(f.privacy.unwrap_or_else(|| "public".into())),
    );
    attrs.insert("max_participants".into(), json!(max));
    set_opt(&mut attrs, "external_id", f.external_id.flatten());
    set_opt(&mut attrs, "default_role", f.default_role.flatten());
    attrs.insert("created_at".into(), json!(now));
    attrs.insert("updated_at".into(), json!(now));
    let spec = RoomSpec {
        // The owning team: what finds the room again after a restart (`VideoState::restore`).
        private: json!({ "team": team.as_str() }),
        kind: RoomKind::Video,
        max_members: max,
        linger: None,
        attrs: attrs.clone(),
    };
    if let Some(c) = app.registry.cluster() {
        // Listed for every node before the room exists (a listing skips it until then), and
        // counted against the cap in the same step.
        let cap = app.settings.limits.max_video_rooms_per_team;
        let added = c
            .set_add_capped(&super::rooms_ns(&team), room_key(uuid).as_str(), cap)
            .await;
        if !matches!(added, Ok(true)) {
            release(&app, &team, &name, uuid).await;
            return Err(match added {
                Err(e) => VideoError::Internal(e),
                _ => VideoError::Limited(
                    app.limits
                        .tenant_full(crate::limits::Limit::VideoRooms, cap),
                ),
            });
        }
    }
    if app.registry.create(&room_key(uuid), spec).is_none() {
        // A v4 UUID collision: practically impossible; refuse rather than share a room.
        release(&app, &team, &name, uuid).await;
        return Err(VideoError::Internal(crate::room::RoomError::Closed));
    }
    app.facades.video.directory.insert(uuid, &team);
    tracing::info!(team = %team, room = %uuid, friendly_url = %name, "video room created");
    Ok(Json(room_json(&attrs)))
}

/// `GET /api/v1/rooms`: `{total_count, data}`, paginated (`total_count` is a string, as in the
/// vendor's schema for this route).
pub async fn list(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, VideoError> {
    let page = Page::parse(q)?;
    let all = team_rooms(&app, &team).await?;
    let total = all.len();
    let after = match page.after.as_deref() {
        Some(a) => uuid_of(&app, &team, a).await,
        None => None,
    };
    let chosen = page
        .select(all, |u| after == Some(*u), |_| true)
        .ok_or_else(|| FieldErrors::one("after", "The selected after is invalid."))?;
    let snaps = futures::future::join_all(chosen.iter().map(|u| {
        let h = app.registry.find(room_key(*u).as_str());
        async move {
            match h {
                Some(h) => h.snapshot().await.ok(),
                None => None,
            }
        }
    }))
    .await;
    let data: Vec<Value> = snaps
        .iter()
        .flatten()
        .map(|s| room_json(&s.attrs))
        .collect();
    Ok(Json(
        json!({ "data": data, "total_count": total.to_string() }),
    ))
}

/// `team`'s rooms, oldest first: this node's directory, or in a cluster every node's (the
/// team's room set in Redis).
pub(super) async fn team_rooms(app: &App, team: &TeamId) -> Result<Vec<Uuid>, VideoError> {
    let Some(c) = app.registry.cluster() else {
        let rooms = app.facades.video.directory.list(team);
        return Ok(rooms.into_iter().map(|e| e.uuid).collect());
    };
    let rooms = c
        .set_members(&super::rooms_ns(team))
        .await
        .map_err(VideoError::Internal)?;
    Ok(rooms
        .iter()
        .filter_map(|r| r.strip_prefix("video:"))
        .filter_map(|u| Uuid::parse_str(u).ok())
        .collect())
}

/// The room `key` (a UUID or a `friendly_url`) names in `team`, on any node.
pub(super) async fn uuid_of(app: &App, team: &TeamId, key: &str) -> Option<Uuid> {
    if let Some(e) = app.facades.video.directory.resolve(team, key) {
        return Some(e.uuid);
    }
    let c = app.registry.cluster()?;
    if let Ok(u) = Uuid::parse_str(key) {
        return Some(u);
    }
    let room = c.name_holder(&super::names_ns(team), key).await.ok()??;
    Uuid::parse_str(room.strip_prefix("video:")?).ok()
}

/// `GET /api/v1/rooms/{room}`.
pub async fn get(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, VideoError> {
    let (_, h) = resolve(&app, &team, key).await?;
    let s = h.snapshot().await?;
    Ok(Json(room_json(&s.attrs)))
}

/// `PATCH /api/v1/rooms/{room}`: changes the given fields; sockets in the room get one `updated`
/// event with the new attributes. 200 with the room object.
pub async fn update(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, VideoError> {
    let (listed, h) = resolve(&app, &team, key).await?;
    let obj = body::json_object(b)?;
    let cap = app.settings.max_members_per_room;
    let f = validate(&obj, cap)?;
    let uuid = listed.uuid;
    if let Some(n) = &f.friendly_url {
        if !reserve(&app, &team, n, uuid).await? {
            return Err(taken());
        }
    }
    let new_name = f.friendly_url.clone();
    let r = h
        .custom(move |ops| {
            let old = ops
                .attrs()
                .get("friendly_url")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let max = f.max_participants.map(|m| m.unwrap_or(cap));
            let a = ops.attrs_mut();
            for (key, v) in [
                ("description", f.description),
                ("topic", f.topic),
                ("external_id", f.external_id),
                ("default_role", f.default_role),
            ] {
                if let Some(v) = v {
                    set_opt(a, key, v);
                }
            }
            if let Some(n) = f.friendly_url {
                a.insert("friendly_url".into(), json!(n));
            }
            if let Some(p) = f.privacy {
                a.insert("privacy".into(), json!(p));
            }
            if let Some(m) = max {
                a.insert("max_participants".into(), json!(m));
            }
            a.insert(
                "updated_at".into(),
                json!(iso_seconds(crate::room::now_ms())),
            );
            if let Some(m) = max {
                ops.set_max_members(m);
            }
            ops.publish_attrs();
            (old, room_json(ops.attrs()))
        })
        .await;
    match r {
        Ok((old, room)) => {
            if let (Some(old), Some(new)) = (old, new_name) {
                if old != new {
                    release(&app, &team, &old, uuid).await;
                }
            }
            Ok(Json(room))
        }
        Err(e) => {
            if let Some(n) = new_name {
                release(&app, &team, &n, uuid).await;
            }
            Err(e.into())
        }
    }
}

/// `DELETE /api/v1/rooms/{room}`: closes the room (sockets get `closed` with reason `deleted`);
/// 204 with an empty body. The optional `{delete_resources}` body is ignored.
pub async fn delete(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, VideoError> {
    let (listed, h) = resolve(&app, &team, key).await?;
    let closed = h.close("deleted").await;
    let names = app.facades.video.directory.remove(listed.uuid);
    if let Some(c) = app.registry.cluster() {
        let room = room_key(listed.uuid);
        for name in names {
            c.release_name(&super::names_ns(&team), &name, room.as_str())
                .await;
        }
        c.set_remove(&super::rooms_ns(&team), room.as_str()).await;
    }
    app.facades.video.seats.forget_room(h.id());
    closed?;
    tracing::info!(team = %team, room = %listed.uuid, "video room deleted");
    Ok(StatusCode::NO_CONTENT)
}
