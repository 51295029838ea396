//! The Digital Samba-style video façade over REST: auth, rooms, phone participants and every bad
//! input, with a WebSocket watcher asserting the event each REST change produces.

use crate::support::video::*;
use crate::support::*;
use serde_json::json;

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

/// The vendor's own middleware sends `caller_number: "Unknown"` for a withheld number: the caller
/// appears in the room under that name (issue 9, finding 8), and a spaced `+` number is stored
/// compacted to E.164.
#[tokio::test]
async fn withheld_caller_number_from_the_vendor_middleware_is_accepted() {
    let s = server().await;
    let room = create(&s, json!({})).await;
    let id = room["id"].as_str().unwrap();
    let mut w = watcher(&s, id).await;
    let r = api(
        &s,
        "POST",
        &format!("/api/v1/rooms/{id}/phone-participants/joined"),
        Some(json!([{"call_id": "CA1", "caller_number": "Unknown"},
                     {"call_id": "CA2", "caller_number": "+49 30 123456"}])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ev = w.expect("joined").await;
    assert_eq!(ids(&ev), ["CA1", "CA2"]);
    assert_eq!(ev["members"][0]["name"], "Unknown");
    assert_eq!(ev["members"][1]["name"], "+4930123456");
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
            r#"[{"call_id":"c","caller_number":4915112345678}]"#.into(),
            "0.caller_number",
        ),
        (
            &joined,
            r#"[{"call_id":"c","name":"n","caller_number":""}]"#.into(),
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
