//! PlayFlow-style lobbies over the room core: REST behaviour, vendor contract, and what the
//! lobby's WebSocket room sees for each REST change. (SSE, timeout and the new-user scenario:
//! `tests/it/lobby_sse.rs`.)

use crate::support::lobby::*;
use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Contract: every response carrying a Lobby (create, get, list, join, update, leave) has every
/// property the vendor's OpenAPI marks required, plus the later docs' matchmaking fields, each
/// with the vendor's type, nullability, enum, length and range; create answers 201 with the
/// documented defaults.
#[tokio::test]
async fn every_lobby_response_satisfies_the_vendor_schema() {
    let spec = vendor_spec("every_lobby_response_satisfies_the_vendor_schema");
    let s = server().await;
    let (status, lobby) = call(
        &s,
        Method::POST,
        "/lobbies",
        Some(json!({"name": "Defaults", "host": "h1"})),
    )
    .await;
    assert_eq!(status, 201, "{lobby}");
    assert_vendor_lobby(&spec, &lobby);
    assert_eq!(lobby["maxPlayers"], 8);
    assert_eq!(lobby["region"], "us-west");
    assert_eq!(lobby["status"], "waiting");
    assert_eq!(lobby["timeout"], 300);
    assert_eq!(lobby["allowLateJoin"], true);
    assert_eq!(
        (lobby["isPrivate"].clone(), lobby["useInviteCode"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(lobby["inviteCode"], Value::Null);
    assert_eq!(lobby["settings"], Value::Null);
    assert_eq!(lobby["lobbyStateRealTime"], Value::Null);
    assert_eq!(lobby["gameServer"], Value::Null);
    assert_eq!(lobby["host"], "h1");
    assert_eq!(lobby["players"], json!(["h1"]));
    assert_eq!(lobby["currentPlayers"], 1);

    let id = lobby["id"].as_str().unwrap();
    let (_, got) = get(&s, id).await;
    assert_vendor_lobby(&spec, &got);
    let (_, joined) = join(&s, &lobby, "p2").await;
    assert_vendor_lobby(&spec, &joined);
    let (_, updated) = update(
        &s,
        &lobby,
        json!({"requesterId": "p2", "playerState": {"ready": true}}),
    )
    .await;
    assert_vendor_lobby(&spec, &updated);
    let (_, queued) = update(
        &s,
        &lobby,
        json!({"requesterId": "h1", "matchmaking": {"action": "start", "mode": "1v1"}}),
    )
    .await;
    assert_vendor_lobby(&spec, &queued);
    let (_, list) = call(&s, Method::GET, "/lobbies", None).await;
    for l in list.as_array().unwrap() {
        assert_vendor_lobby(&spec, l);
    }
    let (status, left) = remove(&s, &lobby, "p2", "p2", false).await;
    assert_eq!(status, 200);
    assert_vendor_lobby(&spec, &left);
    // The checker itself rejects a lobby missing a field or breaking a rule.
    let mut broken = left.clone();
    broken.as_object_mut().unwrap().remove("inviteCode");
    broken["maxPlayers"] = json!(101);
    if let Some(spec) = &spec {
        assert_eq!(lobby_violations(spec, &broken).len(), 2);
    }
}

/// `?public=true` lists only public lobbies; configs and projects do not see each other's.
#[tokio::test]
async fn list_filters_public_and_scopes_by_config_and_key() {
    let s = server().await;
    let public = create(&s, "a", json!({})).await;
    let private = create(&s, "b", json!({"isPrivate": true})).await;
    let (_, ranked) = call(
        &s,
        Method::POST,
        "/lobbies?name=ranked",
        Some(json!({"name": "Ranked", "host": "c"})),
    )
    .await;
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = call(&s, Method::GET, "/lobbies", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&all),
        [
            public["id"].as_str().unwrap(),
            private["id"].as_str().unwrap()
        ]
    );
    let (_, only_public) = call(&s, Method::GET, "/lobbies?public=true", None).await;
    assert_eq!(ids(&only_public), [public["id"].as_str().unwrap()]);
    let (_, r) = call(&s, Method::GET, "/lobbies?name=ranked", None).await;
    assert_eq!(ids(&r), [ranked["id"].as_str().unwrap()]);
    let (status, other) = call_with(
        &s,
        Some(OTHER_KEY),
        Method::GET,
        "/lobbies?name=default",
        None,
    )
    .await;
    assert_eq!(
        (status, other),
        (200, json!([])),
        "another project sees none of them"
    );
    let (status, body) = call_with(
        &s,
        Some(OTHER_KEY),
        Method::GET,
        &format!("/lobbies/{}?name=default", public["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_nest_error(status, &body, 404);
}

/// GET by lobby id or by player id; 404 for an unknown id or a player in no lobby.
#[tokio::test]
async fn get_finds_a_lobby_by_id_or_by_player_id() {
    let s = server().await;
    let lobby = create(&s, "host-1", json!({})).await;
    join(&s, &lobby, "guest-1").await;
    for key in [lobby["id"].as_str().unwrap(), "guest-1", "host-1"] {
        let (status, got) = get(&s, key).await;
        assert_eq!(status, 200, "{key}: {got}");
        assert_eq!(got["id"], lobby["id"]);
        assert_eq!(players(&got), ["host-1", "guest-1"]);
    }
    let (status, body) = get(&s, "nobody").await;
    assert_nest_error(status, &body, 404);
    let (status, body) = get(&s, "7d0a15bd-0000-4000-8000-000000000000").await;
    assert_nest_error(status, &body, 404);
    let (status, list) = call(
        &s,
        Method::GET,
        &format!("/lobbies/{}/players", lobby["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((status, list), (200, json!(["host-1", "guest-1"])));
}

/// Join by id and by invite code; a socket attached to the lobby sees each join as `joined`;
/// a private lobby has a code and refuses a join by id (403); a bad code is 400.
#[tokio::test]
async fn join_by_id_and_by_code_reach_the_socket() {
    let s = server().await;
    let lobby = create(&s, "h", json!({"isPrivate": true, "useInviteCode": false})).await;
    assert_eq!(
        lobby["useInviteCode"], true,
        "private lobbies always use an invite code"
    );
    let code = lobby["inviteCode"].as_str().expect("a code").to_owned();
    assert!(code.len() <= 10);
    let (mut host, panel) = s.joined("h", &room(&lobby)).await;
    assert_eq!(ids(&panel), ["h"]);

    let (status, body) = join(&s, &lobby, "by-id").await;
    assert_nest_error(status, &body, 403);
    let path = format!("/lobbies/code/{}/players", code.to_lowercase());
    let (status, joined) = call(
        &s,
        Method::POST,
        &path,
        Some(json!({"playerId": "by-code", "metadata": {"displayName": "Coder"}})),
    )
    .await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(players(&joined), ["h", "by-code"]);
    let ev = host.expect("joined").await;
    assert_eq!(ev["members"][0]["id"], "by-code");
    assert_eq!(ev["members"][0]["name"], "Coder");

    let (status, body) = call(
        &s,
        Method::POST,
        "/lobbies/code/NOPE1234/players",
        Some(json!({"playerId": "x"})),
    )
    .await;
    assert_nest_error(status, &body, 400);

    let open = create(&s, "h2", json!({})).await;
    let (status, joined) = join(&s, &open, "p").await;
    assert_eq!(status, 200);
    assert_eq!(joined["currentPlayers"], 2);
    assert_eq!(players(&joined), ["h2", "p"]);
}

/// A full lobby refuses with 400; a player already in a lobby of the config cannot join or
/// create another (400), but may in another config.
#[tokio::test]
async fn full_lobby_and_player_already_in_a_lobby_are_400() {
    let s = server().await;
    let lobby = create(&s, "h", json!({"maxPlayers": 2})).await;
    assert_eq!(join(&s, &lobby, "p1").await.0, 200);
    let (status, body) = join(&s, &lobby, "p2").await;
    assert_nest_error(status, &body, 400);
    assert_eq!(body["message"], "Lobby is full");

    let other = create(&s, "h2", json!({})).await;
    let (status, body) = join(&s, &other, "p1").await;
    assert_nest_error(status, &body, 400);
    assert_eq!(body["message"], "Player is already in a lobby");
    let (status, body) = join(&s, &lobby, "p1").await;
    assert_nest_error(status, &body, 400);
    let (status, body) = call(
        &s,
        Method::POST,
        "/lobbies",
        Some(json!({"name": "Second", "host": "h"})),
    )
    .await;
    assert_nest_error(status, &body, 400);
    let (status, _) = call(
        &s,
        Method::POST,
        "/lobbies?name=ranked",
        Some(json!({"name": "Elsewhere", "host": "h"})),
    )
    .await;
    assert_eq!(status, 201, "another config is another namespace");
}

/// Leave: 200 with the full lobby without the leaver; sockets in the room see exactly one
/// `left` with reason `leave`.
#[tokio::test]
async fn leave_returns_the_lobby_and_sockets_see_one_left() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    join(&s, &lobby, "p").await;
    let (mut w, panel) = {
        let mut c = s.connect_token(ADMIN).await;
        let p = c.watch(&room(&lobby)).await;
        (c, p)
    };
    let (mut p, _) = s.joined("p", &room(&lobby)).await;
    let (status, after) = remove(&s, &lobby, "p", "p", false).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(players(&after), ["h"]);
    assert_eq!(after["currentPlayers"], 1);
    let left = w.expect("left").await;
    assert_eq!(left["members"], json!(["p"]));
    assert_eq!(left["reason"], "leave");
    assert_eq!(left["version"], panel["version"].as_u64().unwrap() + 1);
    assert!(left.get("host").is_none());
    w.silent(std::time::Duration::from_millis(150)).await;
    assert_eq!(p.expect("left").await["reason"], "leave");
    let (status, body) = remove(&s, &lobby, "p", "p", false).await;
    assert_nest_error(status, &body, 404);
}

/// The host leaving hands the host to the next player in join order, in the same `left` event
/// and in the lobby.
#[tokio::test]
async fn host_leaving_passes_host_to_the_next_player() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    join(&s, &lobby, "second").await;
    join(&s, &lobby, "third").await;
    let (mut third, _) = s.joined("third", &room(&lobby)).await;
    let (status, after) = remove(&s, &lobby, "h", "h", false).await;
    assert_eq!(status, 200);
    assert_eq!(after["host"], "second");
    assert_eq!(players(&after), ["second", "third"]);
    let left = third.expect("left").await;
    assert_eq!(left["members"], json!(["h"]));
    assert_eq!(left["host"], "second");
}

/// A host kick: the kicked socket gets `left` then `kicked`, the others `left` reason `kick`
/// with `by`; the response is the lobby without the target; a non-host kick is 403, a host
/// kicking itself 400, and the kicked player cannot rejoin during the ban (403).
#[tokio::test]
async fn host_kick_reaches_every_socket_and_non_host_kick_is_403() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    join(&s, &lobby, "a").await;
    join(&s, &lobby, "b").await;
    let (mut h, _) = s.joined("h", &room(&lobby)).await;
    let (mut b, _) = s.joined("b", &room(&lobby)).await;

    let (status, body) = remove(&s, &lobby, "b", "a", true).await;
    assert_nest_error(status, &body, 403);
    let (status, body) = remove(&s, &lobby, "b", "a", false).await;
    assert_nest_error(status, &body, 403);
    let (status, body) = remove(&s, &lobby, "h", "h", true).await;
    assert_nest_error(status, &body, 400);

    let (status, after) = remove(&s, &lobby, "b", "h", true).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(players(&after), ["h", "a"]);
    let left = h.expect("left").await;
    assert_eq!(
        (
            left["reason"].clone(),
            left["by"].clone(),
            left["members"].clone()
        ),
        (json!("kick"), json!("h"), json!(["b"]))
    );
    assert_eq!(b.expect("left").await["reason"], "kick");
    let kicked = b.expect("kicked").await;
    assert_eq!(kicked["by"], "h");
    let (status, body) = join(&s, &lobby, "b").await;
    assert_nest_error(status, &body, 403);
    let (status, body) = remove(&s, &lobby, "a", "b", true).await;
    assert_nest_error(status, &body, 403);
}

/// The last player leaving: 204 with no body, the lobby is gone (404), sockets get `closed`
/// with reason `deleted`; the host may also delete it (`DELETE /lobbies/{id}`, 204), others 403.
#[tokio::test]
async fn last_leave_and_host_delete_remove_the_lobby() {
    let s = server().await;
    let lobby = create(&s, "solo", json!({})).await;
    let mut w = s.connect_token(ADMIN).await;
    w.watch(&room(&lobby)).await;
    let (status, body) = remove(&s, &lobby, "solo", "solo", false).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(w.expect("left").await["reason"], "leave");
    let closed = w.expect("closed").await;
    assert_eq!(closed["reason"], "deleted");
    assert_eq!(get(&s, lobby["id"].as_str().unwrap()).await.0, 404);
    assert_eq!(get(&s, "solo").await.0, 404);
    create(&s, "solo", json!({})).await; // free to create again

    let lobby = create(&s, "boss", json!({})).await;
    join(&s, &lobby, "p").await;
    let path = format!("/lobbies/{}", lobby["id"].as_str().unwrap());
    let (status, body) = call(&s, Method::DELETE, &path, Some(json!({"playerId": "p"}))).await;
    assert_nest_error(status, &body, 403);
    let (status, body) = call(&s, Method::DELETE, &path, Some(json!({}))).await;
    assert_nest_error(status, &body, 400);
    let (mut p, _) = s.joined("p", &room(&lobby)).await;
    let (status, body) = call(&s, Method::DELETE, &path, Some(json!({"playerId": "boss"}))).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(p.expect("closed").await["reason"], "deleted");
    assert_eq!(get(&s, lobby["id"].as_str().unwrap()).await.0, 404);
    assert_eq!(
        join(&s, &create(&s, "z", json!({})).await, "p").await.0,
        200,
        "p is free again"
    );
}

/// The guard: no or a wrong api-key is 401; a missing or unknown `?name=` is 400; all with the
/// NestJS error body.
#[tokio::test]
async fn api_key_and_lobby_config_are_required() {
    let s = server().await;
    for key in [None, Some("wrong-key"), Some("")] {
        let (status, body) = call_with(&s, key, Method::GET, "/lobbies?name=default", None).await;
        assert_nest_error(status, &body, 401);
        assert_eq!(body["error"], "Unauthorized");
    }
    let (status, body) = call_with(&s, Some(KEY), Method::GET, "/lobbies", None).await;
    assert_nest_error(status, &body, 400);
    let (status, body) = call_with(
        &s,
        Some(KEY),
        Method::POST,
        "/lobbies?name=casual",
        Some(json!({"name": "abc", "host": "h"})),
    )
    .await;
    assert_nest_error(status, &body, 400);
    assert_eq!(body["message"], "Lobby configuration 'casual' not found");
    let (status, body) = call_with(
        &s,
        None,
        Method::DELETE,
        "/lobbies/x/players/y?name=default&requesterId=y",
        None,
    )
    .await;
    assert_nest_error(status, &body, 401);
}

/// Ranges and enums: 400 with NestJS validation messages; malformed JSON 400; a body over 64 KiB
/// 413 with the NestJS body.
#[tokio::test]
async fn out_of_range_values_are_400_and_oversize_bodies_413() {
    let s = server().await;
    let bad = [
        json!({"name": "ab", "host": "h"}),
        json!({"name": "x".repeat(51), "host": "h"}),
        json!({"name": "abc"}),
        json!({"name": "abc", "host": "h", "maxPlayers": 0}),
        json!({"name": "abc", "host": "h", "maxPlayers": 101}),
        json!({"name": "abc", "host": "h", "timeout": 59}),
        json!({"name": "abc", "host": "h", "timeout": 3601}),
        json!({"name": "abc", "host": "h", "region": "moon"}),
        json!({"name": "abc", "host": "h", "isPrivate": "no"}),
        json!({"name": "abc", "host": "h", "settings": "x"}),
    ];
    for body in bad {
        let (status, err) = call(&s, Method::POST, "/lobbies", Some(body.clone())).await;
        assert_nest_error(status, &err, 400);
        assert!(
            err["message"].is_array(),
            "validation messages for {body}: {err}"
        );
    }
    let ok = create(
        &s,
        "h",
        json!({"maxPlayers": 100, "timeout": 3600, "region": "south-america-chile"}),
    )
    .await;
    let (status, err) = update(&s, &ok, json!({"requesterId": "h", "status": "paused"})).await;
    assert_nest_error(status, &err, 400);
    let (status, err) = update(
        &s,
        &ok,
        json!({"requesterId": "h", "settings": {"maxPlayers": 200}}),
    )
    .await;
    assert_nest_error(status, &err, 400);
    let r = s
        .http
        .post(s.url("/lobbies?name=default"))
        .header("api-key", KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let big = json!({"requesterId": "h", "playerState": {"blob": "x".repeat(70 * 1024)}});
    let (status, err) = update(&s, &ok, big).await;
    assert_nest_error(status, &err, 413);
    assert_eq!(err["error"], "Payload Too Large");
}

/// Heartbeat: 200 with the lobby for a player in it, 404 for one who is not.
#[tokio::test]
async fn heartbeat_answers_for_players_only() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    let path = format!("/lobbies/{}/heartbeat", lobby["id"].as_str().unwrap());
    let (status, l) = call(&s, Method::POST, &path, Some(json!({"playerId": "h"}))).await;
    assert_eq!(status, 200);
    assert_eq!(l["id"], lobby["id"]);
    let (status, body) = call(&s, Method::POST, &path, Some(json!({"playerId": "x"}))).await;
    assert_nest_error(status, &body, 404);
    let (status, body) = call(&s, Method::POST, &path, Some(json!({}))).await;
    assert_nest_error(status, &body, 400);
}
