//! Display names and lobby player state are bounded: a 40 KB token `name` or lobby display name
//! and a 60 KB `playerState` are refused with a clear error instead of landing in every panel.

use crate::support::lobby::{assert_nest_error, call, create, update};
use crate::support::*;
use reqwest::Method;
use serde_json::json;

/// A native token whose `name` claim is 40 KB is refused at the upgrade (401 `invalid_token`);
/// one of 255 bytes is accepted.
#[tokio::test]
async fn a_token_with_a_huge_name_is_refused() {
    let s = start().await;
    let token = rollcall::auth::sign_hs256(SECRET, "big", Some(&"n".repeat(40_000)), 600);
    let r = s
        .http
        .get(format!("{}?token={token}", s.url("/v1/ws")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.expect("JSON body");
    assert_eq!(body["error"], "invalid_token");
    assert!(
        body["message"].as_str().unwrap_or("").contains("name"),
        "{body}"
    );

    let ok = rollcall::auth::sign_hs256(SECRET, "fine", Some(&"n".repeat(255)), 600);
    let mut c = s.connect_token(&ok).await;
    let panel = c.join("names").await;
    assert_eq!(panel["members"][0]["name"], "n".repeat(255));
}

/// A lobby player whose `metadata.displayName` is 40 KB is refused (400, NestJS body).
#[tokio::test]
async fn a_lobby_player_with_a_huge_display_name_is_refused() {
    let s = crate::support::lobby::server().await;
    let lobby = create(&s, "host", json!({})).await;
    let path = format!("/lobbies/{}/players", lobby["id"].as_str().unwrap());
    let body = json!({"playerId": "p2", "metadata": {"displayName": "n".repeat(40_000)}});
    let (status, err) = call(&s, Method::POST, &path, Some(body)).await;
    assert_nest_error(status, &err, 400);
    assert!(err.to_string().contains("displayName"), "{err}");
}

/// A 60 KB `playerState` is refused with 413 and leaves the state as it was; a state that grows
/// past `max_state_bytes` through merges is refused the same way.
#[tokio::test]
async fn a_huge_player_state_is_refused() {
    let s = crate::support::lobby::server().await;
    let lobby = create(&s, "host", json!({})).await;
    let big = json!({"requesterId": "host", "playerState": {"blob": "x".repeat(60_000)}});
    let (status, err) = update(&s, &lobby, big).await;
    assert_nest_error(status, &err, 413);
    assert!(err.to_string().contains("playerState"), "{err}");

    let half = "y".repeat(2_500);
    let (status, _) = update(
        &s,
        &lobby,
        json!({"requesterId": "host", "playerState": {"a": half}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, err) = update(
        &s,
        &lobby,
        json!({"requesterId": "host", "playerState": {"b": half}}),
    )
    .await;
    assert_nest_error(status, &err, 413);
    let (_, now) = crate::support::lobby::get(&s, lobby["id"].as_str().unwrap()).await;
    assert_eq!(now["lobbyStateRealTime"]["host"], json!({"a": half}));
}
