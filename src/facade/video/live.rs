//! Live listings (SEED-APIS §3.5): `GET /rooms/{room}/live[/participants]` for one room and
//! `GET /rooms/live[/participants]` across the team.
//!
//! A room's live session is its current member set, web and phone alike: web participants with
//! their token's `ud` as `external_id` and its `role` (else the room's `default_role`, else
//! `participant`), phone callers with `id = call_id` and `role = "phone"`. `start_time` is the
//! earliest join among the current participants. A single room with nobody live answers 200 with
//! an empty list (count 0) and no `start_time`/`session_duration`; the team-wide lists omit such
//! rooms, as the vendor does.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::auth::AuthTeam;
use super::body::Page;
use super::error::{FieldErrors, VideoError};
use super::rooms::resolve;
use super::{room_key, TeamId};
use crate::app::App;
use crate::ids::RoomId;
use crate::protocol::MemberKind;
use crate::room::{now_ms, RoomError, RoomHandle};

/// A vendor timestamp with microseconds: `2022-05-16T12:48:18.000000Z`.
pub fn iso_micros(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// One live participant, as read inside the room's actor.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    kind: MemberKind,
    name: Option<String>,
    joined_at: i64,
    meta: Value,
}

/// A room's attributes and its participants, read atomically.
async fn read(h: &RoomHandle) -> Result<(Map<String, Value>, Vec<Row>), RoomError> {
    h.custom(|ops| {
        let s = ops.snapshot();
        let rows = s
            .members
            .iter()
            .map(|m| Row {
                id: m.id.to_string(),
                kind: m.kind,
                name: m.name.as_ref().map(|n| n.to_string()),
                joined_at: m.joined_at,
                meta: ops.meta_of(&m.id).cloned().unwrap_or(Value::Null),
            })
            .collect();
        (s.attrs, rows)
    })
    .await
}

fn participant(app: &App, room: &RoomId, attrs: &Map<String, Value>, r: &Row) -> Value {
    let (external_id, role) = if r.kind == MemberKind::Phone {
        (
            r.meta
                .get("external_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            "phone".to_owned(),
        )
    } else {
        let seat = app.facades.video.seats.get(room, &r.id);
        let role = seat
            .as_ref()
            .and_then(|s| s.role.clone())
            .or_else(|| {
                attrs
                    .get("default_role")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "participant".into());
        (seat.and_then(|s| s.external_id), role)
    };
    let mut p = Map::new();
    p.insert("id".into(), json!(r.id));
    if let Some(e) = external_id {
        p.insert("external_id".into(), json!(e));
    }
    if let Some(n) = &r.name {
        p.insert("name".into(), json!(n));
    }
    p.insert("role".into(), json!(role));
    p.insert("join_time".into(), json!(iso_micros(r.joined_at)));
    Value::Object(p)
}

/// The vendor's live object of one room; `detail` lists participants, else counts them.
fn live_object(
    app: &App,
    room: &RoomId,
    attrs: &Map<String, Value>,
    rows: &[Row],
    detail: bool,
) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), attrs.get("id").cloned().unwrap_or(Value::Null));
    if let Some(e) = attrs.get("external_id") {
        o.insert("external_id".into(), e.clone());
    }
    if let Some(start) = rows.iter().map(|r| r.joined_at).min() {
        o.insert("start_time".into(), json!(iso_micros(start)));
        o.insert(
            "session_duration".into(),
            json!((now_ms() - start).max(0) / 1000),
        );
    }
    let live = if detail {
        Value::Array(
            rows.iter()
                .map(|r| participant(app, room, attrs, r))
                .collect(),
        )
    } else {
        json!(rows.len())
    };
    o.insert("live_participants".into(), live);
    Value::Object(o)
}

async fn one_room(
    app: App,
    team: TeamId,
    key: Result<Path<String>, PathRejection>,
    detail: bool,
) -> Result<Json<Value>, VideoError> {
    let (_, h) = resolve(&app, &team, key).await?;
    let (attrs, rows) = read(&h).await?;
    Ok(Json(live_object(&app, h.id(), &attrs, &rows, detail)))
}

/// `GET /api/v1/rooms/{room}/live`: `live_participants` is a count.
pub async fn room_count(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, VideoError> {
    one_room(app, team, key, false).await
}

/// `GET /api/v1/rooms/{room}/live/participants`: `live_participants` lists web and phone
/// participants in join order.
pub async fn room_participants(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, VideoError> {
    one_room(app, team, key, true).await
}

async fn team_live(
    app: App,
    team: TeamId,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    detail: bool,
) -> Result<Json<Value>, VideoError> {
    let page = Page::parse(q)?;
    let after = match page.after.as_deref() {
        None => None,
        Some(a) => Some(
            super::rooms::uuid_of(&app, &team, a)
                .await
                .ok_or_else(|| FieldErrors::one("after", "The selected after is invalid."))?,
        ),
    };
    let rooms = super::rooms::team_rooms(&app, &team).await?;
    let handles: Vec<Option<RoomHandle>> = rooms
        .iter()
        .map(|u| app.registry.find(room_key(*u).as_str()))
        .collect();
    let reads = futures::future::join_all(handles.iter().map(|h| async move {
        match h {
            Some(h) => read(h).await.ok().map(|r| (h.id().clone(), r)),
            None => None,
        }
    }))
    .await;
    // Every room of the team in creation order (the cursor may name a room nobody is in), with
    // its live object when someone is live.
    let all: Vec<(uuid::Uuid, Option<Value>)> = rooms
        .iter()
        .zip(reads)
        .map(|(e, r)| {
            let live = r
                .filter(|(_, (_, rows))| !rows.is_empty())
                .map(|(id, (attrs, rows))| live_object(&app, &id, &attrs, &rows, detail));
            (*e, live)
        })
        .collect();
    let total = all.iter().filter(|(_, v)| v.is_some()).count();
    let data: Vec<Value> = page
        .select(all, |(u, _)| after == Some(*u), |(_, v)| v.is_some())
        .ok_or_else(|| FieldErrors::one("after", "The selected after is invalid."))?
        .into_iter()
        .filter_map(|(_, v)| v)
        .collect();
    Ok(Json(json!({ "total_count": total, "data": data })))
}

/// `GET /api/v1/rooms/live`: the team's rooms with someone live, with counts (paginated).
pub async fn team_counts(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, VideoError> {
    team_live(app, team, q, false).await
}

/// `GET /api/v1/rooms/live/participants`: the team's rooms with someone live, with participants.
pub async fn team_participants(
    State(app): State<App>,
    AuthTeam(team): AuthTeam,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, VideoError> {
    team_live(app, team, q, true).await
}
