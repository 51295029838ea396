//! Per-tenant limits on façade records (issue #9 item 4): a video team, a lobby api-key and a
//! game over their room caps or creating too fast answer 429 with `Retry-After` in the vendor's
//! error shape; the global room cap answers 503; oversized lobby settings are 400; every refusal
//! is counted in `/metrics`.

use crate::support::*;
use rollcall::config::{FileConfig, VideoTeam};
use serde_json::{json, Value};

/// POST `path` with `body` and `headers`; (status, Retry-After, JSON body).
async fn post(
    s: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut r = s.http.post(s.url(path)).json(&body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some((u, p)) = basic {
        r = r.basic_auth(u, Some(p));
    }
    let resp = tokio::time::timeout(READ_TIMEOUT, r.send())
        .await
        .expect("answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    let after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, after, v)
}

async fn refusals(s: &TestServer, limit: &str) -> String {
    let text = s.metrics().await;
    text.lines()
        .find(|l| {
            l.starts_with(&format!(
                "rollcall_limit_refusals_total{{limit=\"{limit}\"}}"
            ))
        })
        .unwrap_or("")
        .to_owned()
}

fn video_team(f: &mut FileConfig) {
    f.video.teams = vec![VideoTeam {
        team_id: crate::support::video::TEAM.into(),
        developer_key: crate::support::video::KEY.into(),
    }];
}

/// A team at `max_video_rooms_per_team` gets 429 + `Retry-After: 60` with the vendor's
/// `{message}` body, counted by limit.
#[tokio::test]
async fn video_rooms_per_team_cap_is_429_with_retry_after() {
    let s = start_with(|f| {
        video_team(f);
        f.limits.max_video_rooms_per_team = 2;
    })
    .await;
    let auth = Some((crate::support::video::TEAM, crate::support::video::KEY));
    for _ in 0..2 {
        let (st, _, v) = post(&s, "/api/v1/rooms", &[], auth, json!({})).await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, after, v) = post(&s, "/api/v1/rooms", &[], auth, json!({})).await;
    assert_eq!((st, after.as_deref()), (429, Some("60")), "{v}");
    assert!(v["message"].is_string(), "{v}");
    assert!(refusals(&s, "video_rooms_per_team").await.ends_with(" 1"));
}

/// A lobby api-key creating lobbies faster than its bucket gets 429 + `Retry-After` in
/// NestJS's body shape; lobby settings over `max_lobby_settings_bytes` are 400.
#[tokio::test]
async fn lobby_creation_rate_is_429_and_big_settings_400() {
    use crate::support::lobby::*;
    let s = start_with(|f| {
        f.lobby.api_keys = vec![KEY.into()];
        f.limits.tenant_room_burst = 2;
        f.limits.tenant_rooms_per_sec = 0.01;
        f.limits.max_lobby_settings_bytes = 1024;
    })
    .await;
    let big = "x".repeat(2048);
    let (st, v) = call(
        &s,
        reqwest::Method::POST,
        "/lobbies",
        Some(
            json!({"name": "Lobby", "maxPlayers": 4, "isPrivate": false, "useInviteCode": false,
                     "allowLateJoin": true, "region": "eu-west", "host": "h0",
                     "settings": {"blob": big}}),
        ),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let msg = v["message"].to_string();
    assert!(msg.contains("settings must be at most 1024 bytes"), "{v}");
    assert!(refusals(&s, "lobby_settings_bytes").await.ends_with(" 1"));
    create(&s, "h1", json!({})).await;
    create(&s, "h2", json!({})).await;
    let body = json!({"name": "Lobby", "maxPlayers": 4, "isPrivate": false, "useInviteCode": false,
                      "allowLateJoin": true, "region": "eu-west", "host": "h3"});
    let (st, after, v) = post(&s, &q("/lobbies"), &[("api-key", KEY)], None, body).await;
    assert_eq!(st, 429, "{v}");
    let after: u64 = after.expect("Retry-After").parse().unwrap();
    assert!(after >= 1, "{after}");
    assert_eq!(
        (v["statusCode"].as_u64(), v["error"].as_str()),
        (Some(429), Some("Too Many Requests"))
    );
    assert!(refusals(&s, "tenant_rate").await.ends_with(" 1"));
}

/// A game at `max_game_rooms_per_game` live rooms gets 429 `{error}`; with the global
/// `max_rooms` reached every façade answers 503 with `Retry-After`.
#[tokio::test]
async fn game_rooms_per_game_cap_is_429_and_global_cap_503() {
    use crate::support::game::*;
    let g = start_game(|f| {
        f.limits.max_game_rooms_per_game = 1;
        f.limits.max_rooms = 2;
        video_team(f);
    })
    .await;
    g.room().await;
    let (st, v) = g.post("/api/game/create", json!({"sync": true})).await;
    assert_eq!(st, 429, "{v}");
    assert!(v["error"].is_string(), "{v}");
    assert!(refusals(&g.s, "game_rooms_per_game").await.ends_with(" 1"));
    // One more room (a native one) reaches max_rooms = 2: a video room is refused with 503.
    let (_keep, _) = g.s.joined("a", "native-room").await;
    let auth = Some((crate::support::video::TEAM, crate::support::video::KEY));
    let (st, after, v) = post(&g.s, "/api/v1/rooms", &[], auth, json!({})).await;
    assert_eq!((st, after.as_deref()), (503, Some("60")), "{v}");
    assert!(refusals(&g.s, "max_rooms").await.ends_with(" 1"));
}

/// The lobby api-key ships inside game clients, so one source address cannot drain the
/// project's lobby quota: past its burst it gets 429 + `Retry-After` (fresh-eyes review finding),
/// counted as `lobby_address_rate`.
#[tokio::test]
async fn one_address_cannot_drain_a_projects_lobbies() {
    use crate::support::lobby::*;
    let s = start_with(|f| {
        f.lobby.api_keys = vec![KEY.into()];
        f.limits.lobby_address_burst = 3;
        f.limits.lobby_address_per_sec = 0.01;
    })
    .await;
    for host in ["h1", "h2", "h3"] {
        create(&s, host, json!({})).await;
    }
    let body = json!({"name": "Lobby", "maxPlayers": 4, "isPrivate": false, "useInviteCode": false,
                      "allowLateJoin": true, "region": "eu-west", "host": "h4"});
    let (st, after, v) = post(&s, &q("/lobbies"), &[("api-key", KEY)], None, body).await;
    assert_eq!(st, 429, "{v}");
    assert!(after.is_some(), "Retry-After");
    assert!(refusals(&s, "lobby_address_rate").await.ends_with(" 1"));
}
