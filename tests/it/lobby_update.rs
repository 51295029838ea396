//! PlayFlow-style lobby updates (playerState merge, settings, status, host transfer,
//! matchmaking) and concurrency, each checked against what the lobby's WebSocket room sees.

use crate::support::lobby::*;
use serde_json::{json, Value};

/// playerState is shallow-merged into the requester's lobbyStateRealTime entry (one `state`
/// event); the host may target another player, a non-host may not (403).
#[tokio::test]
async fn player_state_merges_and_host_may_target_others() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    join(&s, &lobby, "p").await;
    let (mut h, _) = s.joined("h", &room(&lobby)).await;
    let (status, l) = update(
        &s,
        &lobby,
        json!({"requesterId": "p", "playerState": {"hp": 10, "pos": {"x": 1}}}),
    )
    .await;
    assert_eq!(status, 200, "{l}");
    let (_, l) = update(
        &s,
        &lobby,
        json!({"requesterId": "p", "playerState": {"hp": 7}}),
    )
    .await;
    assert_eq!(
        l["lobbyStateRealTime"],
        json!({"p": {"hp": 7, "pos": {"x": 1}}})
    );
    let ev = h.expect("state").await;
    assert_eq!(
        (ev["member"].clone(), ev["state"].clone()),
        (json!("p"), json!({"hp": 10, "pos": {"x": 1}}))
    );
    assert_eq!(
        h.expect("state").await["state"],
        json!({"hp": 7, "pos": {"x": 1}})
    );

    let (status, l) = update(
        &s,
        &lobby,
        json!({"requesterId": "h", "targetPlayerId": "p", "playerState": {"team": "red"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(l["lobbyStateRealTime"]["p"]["team"], "red");
    let (status, body) = update(
        &s,
        &lobby,
        json!({"requesterId": "p", "targetPlayerId": "h", "playerState": {"x": 1}}),
    )
    .await;
    assert_nest_error(status, &body, 403);
    let (status, body) = update(
        &s,
        &lobby,
        json!({"requesterId": "stranger", "playerState": {"x": 1}}),
    )
    .await;
    assert_nest_error(status, &body, 403);
    let (status, body) = update(&s, &lobby, json!({"requesterId": "p", "playerState": [1]})).await;
    assert_nest_error(status, &body, 400);
}

/// Host-only updates: settings (flat as the SDK sends, or nested as the docs show; custom keys
/// under settings.settings), status, host transfer (a `host` event) and matchmaking start/cancel.
#[tokio::test]
async fn host_updates_settings_status_host_and_matchmaking() {
    let s = server().await;
    let lobby = create(&s, "h", json!({})).await;
    join(&s, &lobby, "p").await;
    let (mut w, _) = s.joined("p", &room(&lobby)).await;
    let (status, body) = update(&s, &lobby, json!({"requesterId": "p", "status": "in_game"})).await;
    assert_nest_error(status, &body, 403);

    let (status, l) = update(
        &s,
        &lobby,
        json!({"requesterId": "h", "name": "Renamed", "maxPlayers": 6,
        "settings": {"region": "sea", "isPrivate": true, "settings": {"map": "castle"}}}),
    )
    .await;
    assert_eq!(status, 200, "{l}");
    assert_eq!(
        (
            l["name"].clone(),
            l["maxPlayers"].clone(),
            l["region"].clone()
        ),
        (json!("Renamed"), json!(6), json!("sea"))
    );
    assert_eq!(l["settings"], json!({"map": "castle"}));
    assert_eq!(
        (l["isPrivate"].clone(), l["useInviteCode"].clone()),
        (json!(true), json!(true))
    );
    assert!(
        l["inviteCode"].is_string(),
        "going private generates a code"
    );
    let ev = w.expect("updated").await;
    assert_eq!(ev["attrs"]["name"], "Renamed");
    let (status, body) = update(&s, &lobby, json!({"requesterId": "h", "maxPlayers": 1})).await;
    assert_nest_error(status, &body, 400);

    let (_, l) = update(
        &s,
        &lobby,
        json!({"requesterId": "h", "matchmaking": {"action": "start", "mode": "ranked"}}),
    )
    .await;
    assert_eq!(l["status"], "in_queue");
    assert_eq!(l["matchmakingMode"], "ranked");
    assert!(l["matchmakingStartedAt"].is_string() && l["matchmakingTicketId"].is_string());
    let (status, body) = update(
        &s,
        &lobby,
        json!({"requesterId": "h", "matchmaking": {"action": "start", "mode": "ranked"}}),
    )
    .await;
    assert_nest_error(status, &body, 400);
    let (_, l) = update(
        &s,
        &lobby,
        json!({"requesterId": "h", "matchmaking": {"action": "cancel"}}),
    )
    .await;
    assert_eq!(l["status"], "waiting");
    assert_eq!(
        (
            l["matchmakingMode"].clone(),
            l["matchmakingTicketId"].clone()
        ),
        (Value::Null, Value::Null)
    );
    let (_, l) = update(&s, &lobby, json!({"requesterId": "h", "status": "in_game"})).await;
    assert_eq!(l["status"], "in_game");
    assert_eq!(w.expect("updated").await["attrs"]["status"], "in_queue");
    assert_eq!(w.expect("updated").await["attrs"]["status"], "waiting");
    assert_eq!(w.expect("updated").await["attrs"]["status"], "in_game");

    let (_, l) = update(&s, &lobby, json!({"requesterId": "h", "host": "p"})).await;
    assert_eq!(l["host"], "p");
    let ev = w.expect("host").await;
    assert_eq!(
        (ev["host"].clone(), ev["by"].clone()),
        (json!("p"), json!("h"))
    );
    let (status, body) = update(&s, &lobby, json!({"requesterId": "h", "host": "h"})).await;
    assert_nest_error(status, &body, 403);
    let (status, body) = update(&s, &lobby, json!({"requesterId": "p", "host": "ghost"})).await;
    assert_nest_error(status, &body, 400);
}

/// 200 concurrent joins into a 100-seat lobby: exactly 99 get in, the rest get 400 full; then
/// concurrent leaves and kicks leave a consistent lobby (no ghost, currentPlayers = players).
#[tokio::test]
async fn concurrent_joins_leaves_and_kicks_stay_consistent() {
    let s = server().await;
    let lobby = create(&s, "h", json!({"maxPlayers": 100})).await;
    let joins = (0..200).map(|i| {
        let (s, lobby) = (&s, &lobby);
        async move { join(s, lobby, &format!("p{i}")).await.0 }
    });
    let codes = futures::future::join_all(joins).await;
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 99);
    assert_eq!(codes.iter().filter(|c| **c == 400).count(), 101);
    let (_, l) = get(&s, lobby["id"].as_str().unwrap()).await;
    assert_eq!(l["currentPlayers"], 100);
    let inside: Vec<String> = players(&l).into_iter().filter(|p| p != "h").collect();
    let ops = inside.iter().enumerate().map(|(i, p)| {
        let (s, lobby) = (&s, &lobby);
        async move {
            if i % 2 == 0 {
                remove(s, lobby, p, p, false).await.0
            } else {
                remove(s, lobby, p, "h", true).await.0
            }
        }
    });
    let codes = futures::future::join_all(ops).await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    let (_, l) = get(&s, lobby["id"].as_str().unwrap()).await;
    assert_eq!(
        (l["currentPlayers"].clone(), l["players"].clone()),
        (json!(1), json!(["h"]))
    );
    let (_, again) = join(&s, &lobby, &inside[0]).await;
    assert_eq!(
        again["currentPlayers"], 2,
        "a player who left is free to join again"
    );
}
