//! The lobby event stream (`GET /lobbies-sse/{id}/events`), the inactivity timeout over a real
//! server, and the new-user scenario (create, two joins, SSE + WebSocket, a kick).

use std::time::Duration;

use crate::support::lobby::*;
use crate::support::*;
use reqwest::Method;
use serde_json::json;

/// `connected` {lobby} first, then one `lobby:updated` with the full lobby per change (join,
/// state, leave), each with an increasing id; the stream's own removal ends it.
#[tokio::test]
async fn sse_sends_connected_then_full_lobby_updates() {
    let spec = vendor_spec("sse_sends_connected_then_full_lobby_updates");
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    let mut sse = Sse::open(&s, &lobby, "h").await;
    let first = sse.next().await;
    assert_eq!(first.event, "connected");
    assert_eq!(first.data["lobby"]["id"], lobby["id"]);
    assert_vendor_lobby(&spec, &first.data["lobby"]);

    let (_, joined) = join(&s, &lobby, "p").await;
    let ev = sse.next().await;
    assert_eq!(ev.event, "lobby:updated");
    assert_vendor_lobby(&spec, &ev.data);
    assert_eq!(ev.data["players"], json!(["h", "p"]));
    assert_eq!(
        ev.data["updatedAt"], joined["updatedAt"],
        "REST and SSE carry the same updatedAt"
    );
    let id1: u64 = ev.id.clone().unwrap().parse().unwrap();

    update(
        &s,
        &lobby,
        json!({"requesterId": "p", "playerState": {"ready": true}}),
    )
    .await;
    let ev = sse.next().await;
    assert_eq!(ev.data["lobbyStateRealTime"], json!({"p": {"ready": true}}));
    let id2: u64 = ev.id.unwrap().parse().unwrap();
    assert!(id2 > id1);
    assert!(ev.data["updatedAt"].as_str() > joined["updatedAt"].as_str());

    let mut psse = Sse::open(&s, &lobby, "p").await;
    assert_eq!(psse.next().await.event, "connected");
    remove(&s, &lobby, "p", "h", true).await;
    let ev = sse.next().await;
    assert_eq!(ev.data["players"], json!(["h"]));
    let ev = psse.next().await;
    assert_eq!(ev.event, "lobby:updated");
    assert_eq!(
        ev.data["players"],
        json!(["h"]),
        "the kicked player sees its own removal"
    );
    assert!(psse.ends(READ_TIMEOUT).await, "then its stream ends");
    let (status, _) = Sse::try_open(&s, lobby["id"].as_str().unwrap(), "p").await;
    assert_eq!(status, 403, "a removed player cannot reopen the stream");
}

/// Stream refusals: unknown lobby 404, missing player-id 400, bad api-key 401.
#[tokio::test]
async fn sse_refuses_strangers_and_bad_requests() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    let id = lobby["id"].as_str().unwrap();
    let (status, _) = Sse::try_open(&s, "7d0a15bd-0000-4000-8000-000000000000", "h").await;
    assert_eq!(status, 404);
    let (status, body) = call(&s, Method::GET, &format!("/lobbies-sse/{id}/events"), None).await;
    assert_nest_error(status, &body, 400);
    let (status, body) = call_with(
        &s,
        Some("nope"),
        Method::GET,
        &format!("/lobbies-sse/{id}/events?player-id=h&lobby-config=default"),
        None,
    )
    .await;
    assert_nest_error(status, &body, 401);
    let (status, _) = Sse::try_open(&s, id, "stranger").await;
    assert_eq!(status, 403);
}

/// The last player leaving (204) and a host delete both end every stream with `lobby:deleted`.
#[tokio::test]
async fn sse_gets_lobby_deleted() {
    let s = server().await;
    let lobby = create(&s, "solo", json!({})).await;
    let mut sse = Sse::open(&s, &lobby, "solo").await;
    sse.next().await;
    assert_eq!(remove(&s, &lobby, "solo", "solo", false).await.0, 204);
    let ev = sse.next().await;
    assert_eq!(ev.event, "lobby:deleted");
    assert_eq!(ev.data, json!({"lobbyId": lobby["id"]}));
    assert!(sse.ends(READ_TIMEOUT).await);

    let lobby = create(&s, "boss", json!({})).await;
    join(&s, &lobby, "p").await;
    let mut sse = Sse::open(&s, &lobby, "p").await;
    sse.next().await;
    let path = format!("/lobbies/{}", lobby["id"].as_str().unwrap());
    assert_eq!(
        call(&s, Method::DELETE, &path, Some(json!({"playerId": "boss"})))
            .await
            .0,
        204
    );
    assert_eq!(sse.next().await.event, "lobby:deleted");
}

/// With `timeout` = 1 s (min_timeout_secs lowered): a silent player is removed with reason
/// `timeout` while one with an open socket, one with an open stream and one that heartbeats stay;
/// the host migrates; when nobody is alive any more the lobby is deleted.
#[tokio::test]
async fn inactivity_timeout_removes_silent_players_then_the_lobby() {
    let s = server_with_min_timeout(1).await;
    let lobby = create(&s, "silent", json!({"timeout": 1})).await;
    assert_eq!(lobby["timeout"], 1);
    for p in ["socket", "streamer", "beater"] {
        assert_eq!(join(&s, &lobby, p).await.0, 200);
    }
    let (mut sock, _) = s.joined("socket", &room(&lobby)).await;
    let mut stream = Sse::open(&s, &lobby, "streamer").await;
    stream.next().await;
    let beat = format!("/lobbies/{}/heartbeat", lobby["id"].as_str().unwrap());
    let beater = {
        let (http, url) = (s.http.clone(), s.url(&q(&beat)));
        tokio::spawn(async move {
            for _ in 0..30 {
                let r = http
                    .post(&url)
                    .header("api-key", KEY)
                    .json(&json!({"playerId": "beater"}))
                    .send()
                    .await;
                assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let left = sock
        .try_recv(Duration::from_secs(4))
        .await
        .expect("a timeout within 4 s");
    assert_eq!(left["type"], "left");
    assert_eq!(left["members"], json!(["silent"]));
    assert_eq!(left["reason"], "timeout");
    assert_eq!(left["host"], "socket");
    let ev = stream.next().await;
    assert_eq!(ev.data["players"], json!(["socket", "streamer", "beater"]));
    assert_eq!(ev.data["host"], "socket");
    sock.silent(Duration::from_millis(1500)).await; // nobody else times out meanwhile
    beater.await.unwrap();

    // Everyone goes quiet: the beater stops, the socket and the stream close.
    sock.abort();
    drop(stream);
    let mut w = s.connect_token(ADMIN).await;
    w.watch(&room(&lobby)).await;
    let mut seen = Vec::new();
    loop {
        let ev = w
            .try_recv(Duration::from_secs(5))
            .await
            .expect("the lobby expires within 5 s");
        if ev["type"] == "closed" {
            assert_eq!(ev["reason"], "deleted");
            break;
        }
        assert_eq!(ev["reason"], "timeout", "{ev}");
        seen.extend(
            ev["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_owned()),
        );
    }
    seen.sort();
    assert_eq!(seen, ["beater", "socket", "streamer"]);
    assert_eq!(get(&s, lobby["id"].as_str().unwrap()).await.0, 404);
    assert_eq!(get(&s, "beater").await.0, 404);
}

/// The new-user walk-through: create, two joins with an SSE stream and a WebSocket open,
/// the host kicks one with the seed's `DELETE` call: the response is the full lobby without that
/// player, the SSE stream and the socket both see it, and the kicked player cannot kick anyone.
#[tokio::test]
async fn new_user_kick_walkthrough() {
    let s = server().await;
    let lobby = create(
        &s,
        "player123",
        json!({"name": "Pro Players Only", "maxPlayers": 8}),
    )
    .await;
    join(&s, &lobby, "player456").await;
    join(&s, &lobby, "player789").await;
    let mut sse = Sse::open(&s, &lobby, "player123").await;
    assert_eq!(sse.next().await.data["lobby"]["currentPlayers"], 3);
    let (mut ws, panel) = s.joined("player456", &room(&lobby)).await;
    assert_eq!(ids(&panel), ["player123", "player456", "player789"]);

    let id = lobby["id"].as_str().unwrap();
    let url = s.url(&format!(
        "/lobbies/{id}/players/player789?name=default&requesterId=player123&isKick=true"
    ));
    let r = s
        .http
        .delete(url)
        .header("api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let after: serde_json::Value = r.json().await.unwrap();
    assert_vendor_lobby(&vendor_spec("new_user_kick_walkthrough"), &after);
    assert_eq!(after["players"], json!(["player123", "player456"]));
    assert_eq!(after["currentPlayers"], 2);

    let ev = sse.next().await;
    assert_eq!(ev.event, "lobby:updated");
    assert_eq!(ev.data["players"], json!(["player123", "player456"]));
    let left = ws.expect("left").await;
    assert_eq!(left["members"], json!(["player789"]));
    assert_eq!(
        (left["reason"].clone(), left["by"].clone()),
        (json!("kick"), json!("player123"))
    );

    let (status, body) = remove(&s, &lobby, "player456", "player789", true).await;
    assert_nest_error(status, &body, 403);
}
