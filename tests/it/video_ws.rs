//! The video façade on the WebSocket: web participants with room tokens, and the live listings of
//! web and phone participants.

use crate::support::video::*;
use crate::support::*;
use serde_json::json;

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
