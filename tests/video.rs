//! The Digital Samba-style video façade end to end: a real server, reqwest for REST, WebSocket
//! watchers and web participants asserting the events every REST change produces.

mod common;

use std::time::Duration;

use common::*;
use rollcall::config::VideoTeam;
use serde_json::{json, Value};

const TEAM: &str = "team-a";
const KEY: &str = "team-a-developer-key";
const TEAM_B: &str = "team-b";
const KEY_B: &str = "team-b-developer-key";
const QUIET: Duration = Duration::from_millis(250);

async fn server() -> TestServer {
    start_with(|f| {
        f.video.teams = vec![
            VideoTeam {
                team_id: TEAM.into(),
                developer_key: KEY.into(),
            },
            VideoTeam {
                team_id: TEAM_B.into(),
                developer_key: KEY_B.into(),
            },
        ];
    })
    .await
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    BearerPair(&'a str, &'a str),
    BearerKey(&'a str),
    Raw(&'a str),
    None,
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A response: status, raw body, and the body as JSON (`null` when empty or not JSON).
struct Resp {
    status: u16,
    text: String,
    json: Value,
}

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<&str>,
) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = s.http.request(method, s.url(path));
    r = match auth {
        Auth::Basic(t, k) => r.basic_auth(t, Some(k)),
        Auth::BearerPair(t, k) => r.bearer_auth(b64(&format!("{t}:{k}"))),
        Auth::BearerKey(k) => r.bearer_auth(k),
        Auth::Raw(v) => r.header("authorization", v),
        Auth::None => r,
    };
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, text, json }
}

/// A call as team A with Basic auth (the curl `--user` form).
async fn api(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string());
    send(s, method, path, Auth::Basic(TEAM, KEY), body.as_deref()).await
}

async fn create(s: &TestServer, body: Value) -> Value {
    let r = api(s, "POST", "/api/v1/rooms", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// A native socket watching video room `uuid`.
async fn watcher(s: &TestServer, uuid: &str) -> Client {
    let mut w = s.connect("watcher").await;
    w.watch(&format!("video:{uuid}")).await;
    w
}

fn room_token(key: &str, claims: Value) -> String {
    rollcall_sign(key, &claims)
}

/// Signs with jsonwebtoken directly (not the server's own signer), HS256.
fn rollcall_sign(key: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    rollcall::auth::unix_now()
}

/// The developer key is accepted as Basic `team:key`, `Bearer base64(team:key)` and
/// `Bearer key`; anything else is 401 `{message}`.
#[tokio::test]
async fn auth_accepts_the_three_documented_forms_only() {
    let s = server().await;
    for auth in [
        Auth::Basic(TEAM, KEY),
        Auth::BearerPair(TEAM, KEY),
        Auth::BearerKey(KEY),
        Auth::Raw(&format!("basic {}", b64(&format!("{TEAM}:{KEY}")))),
    ] {
        let r = send(&s, "GET", "/api/v1/rooms", auth, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let wrong_pair = format!("Basic {}", b64(&format!("{TEAM}:{KEY_B}")));
    for auth in [
        Auth::None,
        Auth::Basic(TEAM, "wrong-key-wrong-key"),
        Auth::Basic(TEAM_B, KEY),
        Auth::Basic("nobody", KEY),
        Auth::BearerPair(TEAM, "nope"),
        Auth::BearerKey("not-a-key"),
        Auth::Raw(&wrong_pair),
        Auth::Raw(&format!("Token {KEY}")),
        Auth::Raw("Bearer"),
    ] {
        let r = send(&s, "GET", "/api/v1/rooms", auth, None).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.json, json!({"message": "Unauthenticated."}));
    }
    // 401 comes before the body is looked at.
    let r = send(&s, "POST", "/api/v1/rooms", Auth::None, Some("{nope")).await;
    assert_eq!(r.status, 401);
}

/// A room is created with the vendor's fields and found by UUID and by `friendly_url`; names
/// are unique per team, generated when omitted; the list is paginated newest first.
#[tokio::test]
async fn rooms_are_created_and_found_by_uuid_and_friendly_url() {
    let s = server().await;
    let room = create(
        &s,
        json!({"friendly_url": "Weekly-Sync_1", "description": "Our weekly sync", "topic": "sync",
               "privacy": "private", "max_participants": 50, "external_id": "EXT-1",
               "toolbar_color": "#000000", "roles": ["moderator"]}),
    )
    .await;
    let id = room["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{room}");
    for (k, v) in [
        ("friendly_url", json!("Weekly-Sync_1")),
        ("description", json!("Our weekly sync")),
        ("topic", json!("sync")),
        ("privacy", json!("private")),
        ("max_participants", json!(50)),
        ("external_id", json!("EXT-1")),
    ] {
        assert_eq!(room[k], v, "{k} in {room}");
    }
    assert!(room["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        room.get("toolbar_color").is_none(),
        "presentation settings are not echoed"
    );
    for key in [id.as_str(), "Weekly-Sync_1"] {
        let r = api(&s, "GET", &format!("/api/v1/rooms/{key}"), None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json, room);
    }
    let dup = api(
        &s,
        "POST",
        "/api/v1/rooms",
        Some(json!({"friendly_url": "Weekly-Sync_1"})),
    )
    .await;
    assert_eq!(dup.status, 422);
    assert!(
        dup.json["errors"]["friendly_url"].is_array(),
        "{}",
        dup.text
    );
    let gen = create(&s, json!({})).await;
    let name = gen["friendly_url"].as_str().unwrap();
    assert_eq!(name.len(), 32);
    assert!(name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(gen["privacy"], "public");
    let r = api(&s, "GET", "/api/v1/rooms", None).await;
    assert_eq!(r.json["total_count"], "2");
    assert_eq!(r.json["data"][0]["id"], gen["id"], "newest first");
    assert_eq!(r.json["data"][1]["id"], room["id"]);
    let r = api(&s, "GET", "/api/v1/rooms?order=asc&limit=1", None).await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.json["data"][0]["id"], room["id"]);
    let r = api(
        &s,
        "GET",
        "/api/v1/rooms?order=asc&after=Weekly-Sync_1",
        None,
    )
    .await;
    assert_eq!(r.json["data"][0]["id"], gen["id"]);
    let r = api(&s, "GET", "/api/v1/rooms?limit=500", None).await;
    assert_eq!(r.status, 422);
    assert!(r.json["errors"]["limit"].is_array());
    for bad in [
        json!({"friendly_url": "ab"}),
        json!({"friendly_url": "has space"}),
        json!({"friendly_url": "live"}),
        json!({"privacy": "secret"}),
        json!({"max_participants": 1}),
        json!({"description": 5}),
        json!([1]),
    ] {
        let r = api(&s, "POST", "/api/v1/rooms", Some(bad.clone())).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert!(
            r.json["message"].is_string() && r.json["errors"].is_object(),
            "{}",
            r.text
        );
    }
}

/// Rooms belong to a team: another team's room is 404 by UUID or name, and names are only
/// unique within a team.
#[tokio::test]
async fn another_teams_room_is_not_found() {
    let s = server().await;
    let room = create(&s, json!({"friendly_url": "shared-name"})).await;
    let id = room["id"].as_str().unwrap();
    for key in [id, "shared-name"] {
        for path in [
            format!("/api/v1/rooms/{key}"),
            format!("/api/v1/rooms/{key}/live/participants"),
        ] {
            let r = send(&s, "GET", &path, Auth::BearerKey(KEY_B), None).await;
            assert_eq!(r.status, 404, "{path}");
            assert_eq!(r.json, json!({"message": "Room not found."}));
        }
    }
    let r = send(
        &s,
        "POST",
        &format!("/api/v1/rooms/{id}/phone-participants/left"),
        Auth::BearerKey(KEY_B),
        Some(r#"["x"]"#),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = send(
        &s,
        "POST",
        "/api/v1/rooms",
        Auth::BearerKey(KEY_B),
        Some(r#"{"friendly_url":"shared-name"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.json["id"], room["id"]);
    let r = send(&s, "GET", "/api/v1/rooms", Auth::BearerKey(KEY_B), None).await;
    assert_eq!(r.json["total_count"], "1");
}

/// `joined` with an array adds every caller in ONE `joined` event (200, empty body); a repeat
/// with nothing new is silent; a changed caller is upserted in place.
#[tokio::test]
async fn phone_joined_is_one_joined_event_and_upserts() {
    let s = server().await;
    let room = create(&s, json!({"friendly_url": "phones"})).await;
    let id = room["id"].as_str().unwrap();
    let mut w = watcher(&s, id).await;
    let callers = json!([
        {"call_id": "call-1", "name": "Ann", "caller_number": "+4915112345678", "external_id": "crm-1"},
        {"call_id": "call-2", "caller_number": "+14155550100", "muted": true},
    ]);
    let r = api(
        &s,
        "POST",
        "/api/v1/rooms/phones/phone-participants/joined",
        Some(callers.clone()),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    let ev = w.expect("joined").await;
    assert_eq!(ev["room"], format!("video:{id}"));
    assert_eq!(ids(&ev), ["call-1", "call-2"]);
    assert_eq!(ev["members"][0]["kind"], "phone");
    assert_eq!(ev["members"][0]["name"], "Ann");
    assert_eq!(
        ev["members"][1]["name"], "+14155550100",
        "name falls back to the number"
    );
    let v = ev["version"].as_u64().unwrap();
    w.silent(QUIET).await;
    // The same report again changes nothing: no event.
    let r = api(
        &s,
        "POST",
        &format!("/api/v1/rooms/{id}/phone-participants/joined"),
        Some(callers),
    )
    .await;
    assert_eq!(r.status, 200);
    w.silent(QUIET).await;
    // Upsert by call_id: a new name updates the caller in place, in one event.
    let r = api(
        &s,
        "POST",
        "/api/v1/rooms/phones/phone-participants/joined",
        Some(json!([{"call_id": "call-2", "name": "Bob"}])),
    )
    .await;
    assert_eq!(r.status, 200);
    let ev = w.expect("joined").await;
    assert_eq!(ids(&ev), ["call-2"]);
    assert_eq!(ev["members"][0]["name"], "Bob");
    assert_eq!(ev["version"], v + 1);
}

/// `left` with two call ids removes both in ONE `left` event with reason `left` (200, empty
/// body); unknown ids are a silent no-op; the `{ids:[...]}` form works too.
#[tokio::test]
async fn phone_left_is_one_left_event_and_unknown_ids_are_a_no_op() {
    let s = server().await;
    let room = create(&s, json!({})).await;
    let id = room["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/rooms/{id}/phone-participants");
    let r = api(
        &s,
        "POST",
        &format!("{base}/joined"),
        Some(json!([
            {"call_id": "53858671-c5e0-441a-9e33-e5d7f7f1861e", "name": "A"},
            {"call_id": "074f23f1-6a8e-4856-8779-5cc888456d5c", "name": "B"},
            {"call_id": "c3", "name": "C"},
        ])),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut w = watcher(&s, &id).await;
    // The seed's own request body, literally.
    let seed = r#"["53858671-c5e0-441a-9e33-e5d7f7f1861e","074f23f1-6a8e-4856-8779-5cc888456d5c"]"#;
    let r = send(
        &s,
        "POST",
        &format!("{base}/left"),
        Auth::Basic(TEAM, KEY),
        Some(seed),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    let ev = w.expect("left").await;
    assert_eq!(
        ev["members"],
        json!([
            "53858671-c5e0-441a-9e33-e5d7f7f1861e",
            "074f23f1-6a8e-4856-8779-5cc888456d5c"
        ])
    );
    assert_eq!(ev["reason"], "left");
    w.silent(QUIET).await;
    // Unknown (and already gone) ids: 200, empty body, nothing happens.
    let r = api(
        &s,
        "POST",
        &format!("{base}/left"),
        Some(json!(["nobody", "53858671-c5e0-441a-9e33-e5d7f7f1861e"])),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    w.silent(QUIET).await;
    // The generated OpenAPI's form, with the Java sample's Bearer base64(team:key).
    let r = send(
        &s,
        "POST",
        &format!("{base}/left"),
        Auth::BearerPair(TEAM, KEY),
        Some(r#"{"ids":["c3"]}"#),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    let ev = w.expect("left").await;
    assert_eq!(ev["members"], json!(["c3"]));
    assert_eq!(ev["reason"], "left");
    let live = api(&s, "GET", &format!("/api/v1/rooms/{id}/live"), None).await;
    assert_eq!(live.json["live_participants"], 0);
}

/// Unknown rooms are 404 `{message}` on every room route.
#[tokio::test]
async fn unknown_room_is_404() {
    let s = server().await;
    for (m, path, body) in [
        ("GET", "/api/v1/rooms/no-such-room", None),
        (
            "GET",
            "/api/v1/rooms/9b2f6a5e-1111-4a4a-9c9c-000000000000",
            None,
        ),
        ("GET", "/api/v1/rooms/no-such-room/live", None),
        ("GET", "/api/v1/rooms/no-such-room/live/participants", None),
        (
            "POST",
            "/api/v1/rooms/no-such-room/phone-participants/joined",
            Some(json!([{"call_id": "c", "name": "n"}])),
        ),
        (
            "POST",
            "/api/v1/rooms/no-such-room/phone-participants/left",
            Some(json!(["c"])),
        ),
        (
            "PATCH",
            "/api/v1/rooms/no-such-room",
            Some(json!({"topic": "x"})),
        ),
        ("DELETE", "/api/v1/rooms/no-such-room", None),
    ] {
        let r = api(&s, m, path, body).await;
        assert_eq!(r.status, 404, "{m} {path}: {}", r.text);
        assert_eq!(r.json, json!({"message": "Room not found."}));
    }
}

/// Invalid bodies are 422 `{message, errors:{field:[...]}}` (never a plain-text 400/415), and
/// nothing reaches the room; oversize bodies are 413 JSON.
#[tokio::test]
async fn invalid_bodies_are_422_and_change_nothing() {
    let s = server().await;
    let room = create(&s, json!({})).await;
    let id = room["id"].as_str().unwrap();
    let mut w = watcher(&s, id).await;
    let joined = format!("/api/v1/rooms/{id}/phone-participants/joined");
    let left = format!("/api/v1/rooms/{id}/phone-participants/left");
    let too_many =
        serde_json::to_string(&(0..1001).map(|i| format!("c{i}")).collect::<Vec<_>>()).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (&left, "[]".into(), "ids"),
        (&left, "{}".into(), "ids"),
        (&left, r#"{"ids":[]}"#.into(), "ids"),
        (&left, r#"{"ids":"c1"}"#.into(), "ids"),
        (&left, "[1,2]".into(), "ids.0"),
        (&left, r#"["ok", null]"#.into(), "ids.1"),
        (&left, r#""c1""#.into(), "body"),
        (&left, "[\"c1\"".into(), "body"),
        (&left, "".into(), "body"),
        (&left, too_many, "ids"),
        (&joined, "[]".into(), "body"),
        (&joined, r#"{"call_id":"c","name":"n"}"#.into(), "body"),
        (&joined, "[{}]".into(), "0.call_id"),
        (&joined, r#"[{"name":"n"}]"#.into(), "0.call_id"),
        (&joined, r#"[{"call_id":"c"}]"#.into(), "0.name"),
        (
            &joined,
            r#"[{"call_id":"c","caller_number":"4915112345678"}]"#.into(),
            "0.caller_number",
        ),
        (
            &joined,
            r#"[{"call_id":"c","name":"n","caller_number":"+12ab"}]"#.into(),
            "0.caller_number",
        ),
        (&joined, r#"[{"call_id":5,"name":"n"}]"#.into(), "0.call_id"),
        (
            &joined,
            r#"[{"call_id":"c","name":"n","muted":"yes"}]"#.into(),
            "0.muted",
        ),
        (&joined, r#"[{"call_id":"ok","name":"n"},"x"]"#.into(), "1"),
        (&joined, "not json".into(), "body"),
    ];
    for (path, body, field) in cases {
        let r = send(&s, "POST", path, Auth::Basic(TEAM, KEY), Some(&body)).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert!(r.json["message"].is_string(), "{}", r.text);
        assert!(
            r.json["errors"][field].is_array(),
            "{body}: expected errors.{field} in {}",
            r.text
        );
    }
    w.silent(QUIET).await;
    // No Content-Type at all: the body is still read as JSON.
    let r = s
        .http
        .post(s.url(&joined))
        .basic_auth(TEAM, Some(KEY))
        .body(r#"[{"call_id":"c1","name":"n"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    w.expect("joined").await;
    // Over the 64 KiB body limit: 413 with a JSON body.
    let big = format!("[\"{}\"]", "x".repeat(70 * 1024));
    let r = send(&s, "POST", &left, Auth::Basic(TEAM, KEY), Some(&big)).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.json["message"].is_string());
}

/// A web participant joins over the WebSocket with a room token; `live/participants` lists it
/// (external id, name, role from the token) and the phone callers (role `phone`).
#[tokio::test]
async fn live_participants_lists_web_and_phone() {
    let s = server().await;
    let room = create(
        &s,
        json!({"friendly_url": "standup", "external_id": "ROOM-EXT"}),
    )
    .await;
    let id = room["id"].as_str().unwrap().to_owned();
    let empty = api(&s, "GET", "/api/v1/rooms/standup/live/participants", None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.json,
        json!({"id": id, "external_id": "ROOM-EXT", "live_participants": []})
    );
    let token = room_token(
        KEY,
        json!({"td": TEAM, "rd": id, "ud": "user-7", "u": "Alice",
                                        "role": "moderator", "iat": now(), "exp": now() + 600}),
    );
    let mut web = s.connect_token(&token).await;
    let panel = web.join(&format!("video:{id}")).await;
    assert_eq!(ids(&panel), ["user-7"]);
    assert_eq!(panel["members"][0]["kind"], "web");
    assert_eq!(panel["members"][0]["name"], "Alice");
    let r = api(&s, "POST", "/api/v1/rooms/standup/phone-participants/joined",
                Some(json!([{"call_id": "call-9", "caller_number": "+442071838750", "external_id": "crm-9"}]))).await;
    assert_eq!(r.status, 200);
    let ev = web.expect("joined").await;
    assert_eq!(ids(&ev), ["call-9"]);
    let r = api(&s, "GET", "/api/v1/rooms/standup/live/participants", None).await;
    assert_eq!(r.status, 200);
    let live = &r.json;
    assert_eq!(live["id"], id.as_str());
    assert_eq!(live["external_id"], "ROOM-EXT");
    assert!(live["start_time"].as_str().unwrap().ends_with('Z'));
    assert!(live["session_duration"].is_u64());
    let p = live["live_participants"].as_array().unwrap();
    assert_eq!(p.len(), 2, "{live}");
    assert_eq!(
        (
            &p[0]["id"],
            &p[0]["external_id"],
            &p[0]["name"],
            &p[0]["role"]
        ),
        (
            &json!("user-7"),
            &json!("user-7"),
            &json!("Alice"),
            &json!("moderator")
        )
    );
    assert_eq!(
        (
            &p[1]["id"],
            &p[1]["external_id"],
            &p[1]["name"],
            &p[1]["role"]
        ),
        (
            &json!("call-9"),
            &json!("crm-9"),
            &json!("+442071838750"),
            &json!("phone")
        )
    );
    assert!(p[1]["join_time"].as_str().unwrap().ends_with('Z'));
    let r = api(&s, "GET", &format!("/api/v1/rooms/{id}/live"), None).await;
    assert_eq!(r.json["live_participants"], 2);
    // Team-wide: only rooms with someone live.
    create(&s, json!({"friendly_url": "nobody-here"})).await;
    let r = api(&s, "GET", "/api/v1/rooms/live/participants", None).await;
    assert_eq!(r.json["total_count"], 1, "{}", r.text);
    assert_eq!(r.json["data"][0]["id"], id.as_str());
    assert_eq!(
        r.json["data"][0]["live_participants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = api(&s, "GET", "/api/v1/rooms/live", None).await;
    assert_eq!(r.json["data"][0]["live_participants"], 2);
    // `left` names only phone participants: a web participant's id is a no-op.
    let r = api(
        &s,
        "POST",
        "/api/v1/rooms/standup/phone-participants/left",
        Some(json!(["user-7"])),
    )
    .await;
    assert_eq!(r.status, 200);
    web.silent(QUIET).await;
}

/// A room token admits its own room only; tokens with a wrong key, another team's room, an
/// expired `exp` or another algorithm are refused at the upgrade; `exp` may be omitted.
#[tokio::test]
async fn room_tokens_admit_their_room_only() {
    let s = server().await;
    let a = create(&s, json!({"friendly_url": "room-a"})).await;
    let b = create(&s, json!({"friendly_url": "room-b"})).await;
    let (ida, idb) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let token = room_token(
        KEY,
        json!({"td": TEAM, "rd": ida, "u": "Eve", "exp": now() + 600}),
    );
    let mut c = s.connect_token(&token).await;
    let err = c
        .call(json!({"type": "join", "room": format!("video:{idb}")}))
        .await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "forbidden", "{err}");
    let err = c
        .call(json!({"type": "watch", "room": format!("video:{idb}")}))
        .await;
    assert_eq!(err["code"], "forbidden");
    let panel = c.join(&format!("video:{ida}")).await;
    let me = ids(&panel)[0].clone();
    assert!(
        uuid::Uuid::parse_str(&me).is_ok(),
        "no ud: a generated id, got {me}"
    );
    // rd may be the friendly_url; no exp is accepted (the vendor makes it optional).
    let t = room_token(KEY, json!({"td": TEAM, "rd": "room-b", "ud": "u2"}));
    let mut c2 = s.connect_token(&t).await;
    c2.join(&format!("video:{idb}")).await;
    let other = create_b(&s).await;
    let bad = [
        room_token(KEY_B, json!({"td": TEAM, "rd": ida, "exp": now() + 600})),
        room_token(KEY, json!({"td": TEAM, "rd": other, "exp": now() + 600})),
        room_token(KEY, json!({"td": TEAM, "rd": ida, "exp": now() - 600})),
        room_token(KEY, json!({"td": TEAM, "rd": ida, "nbf": now() + 600})),
        room_token(KEY, json!({"td": "no-team", "rd": ida})),
        room_token(KEY, json!({"rd": ida})),
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &json!({"td": TEAM, "rd": ida}),
            &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap(),
    ];
    for t in bad {
        let r = s
            .http
            .get(format!("{}?token={t}", s.url("/v1/ws")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{t}");
    }
}

async fn create_b(s: &TestServer) -> String {
    let r = send(
        s,
        "POST",
        "/api/v1/rooms",
        Auth::BearerKey(KEY_B),
        Some("{}"),
    )
    .await;
    r.json["id"].as_str().unwrap().to_owned()
}

/// PATCH changes fields (sockets see one `updated` event); DELETE closes the room (sockets see
/// `closed` with reason `deleted`), answers 204, and frees the name.
#[tokio::test]
async fn update_and_delete_reach_the_sockets() {
    let s = server().await;
    let room = create(
        &s,
        json!({"friendly_url": "old-name", "description": "first"}),
    )
    .await;
    let id = room["id"].as_str().unwrap().to_owned();
    let mut w = watcher(&s, &id).await;
    let r = api(
        &s,
        "PATCH",
        "/api/v1/rooms/old-name",
        Some(json!({"friendly_url": "new-name", "description": null, "max_participants": 2})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["friendly_url"], "new-name");
    assert!(r.json.get("description").is_none());
    let ev = w.expect("updated").await;
    assert_eq!(ev["attrs"]["friendly_url"], "new-name");
    assert_eq!(
        api(&s, "GET", "/api/v1/rooms/old-name", None).await.status,
        404
    );
    assert_eq!(
        api(&s, "GET", "/api/v1/rooms/new-name", None).await.status,
        200
    );
    // max_participants is enforced for phone callers too.
    let r = api(&s, "POST", "/api/v1/rooms/new-name/phone-participants/joined",
                Some(json!([{"call_id": "1", "name": "a"}, {"call_id": "2", "name": "b"}, {"call_id": "3", "name": "c"}]))).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json["errors"]["max_participants"].is_array());
    w.silent(QUIET).await;
    let r = api(&s, "DELETE", "/api/v1/rooms/new-name", None).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let ev = w.expect("closed").await;
    assert_eq!(ev["reason"], "deleted");
    assert_eq!(
        api(&s, "GET", &format!("/api/v1/rooms/{id}"), None)
            .await
            .status,
        404
    );
    let again = create(&s, json!({"friendly_url": "new-name"})).await;
    assert_ne!(again["id"], id.as_str());
}
