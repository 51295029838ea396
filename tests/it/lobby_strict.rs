//! Strict requesters (`[lobby] strict_requester`, issue 9 finding 9): PlayFlow trusts the
//! `requesterId` a client sends, while the api-key ships inside game clients, so anyone can kick or
//! take host by claiming to be the host. The default keeps the vendor's behaviour; strict mode
//! needs the requester's own token in `client-auth-token`.

use crate::support::lobby::*;
use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A request like `call`, with `client-auth-token` when given.
async fn as_player(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s
        .http
        .request(method, s.url(&q(path)))
        .header("api-key", KEY);
    if let Some(t) = token {
        r = r.header("client-auth-token", t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = tokio::time::timeout(READ_TIMEOUT, r.send())
        .await
        .expect("answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Default (the vendor's behaviour): a player claiming to be the host can kick; documented, and
/// kept so existing PlayFlow clients work unchanged.
#[tokio::test]
async fn by_default_the_requester_id_is_trusted_as_at_playflow() {
    let s = server().await;
    let lobby = create(&s, "host", json!({})).await;
    join(&s, &lobby, "victim").await;
    let (status, body) = remove(&s, &lobby, "victim", "host", true).await;
    assert_eq!(status, 200, "{body}");
}

/// Strict mode: a kick, a host transfer, a leave and a delete each need the requester's own
/// token: none → 401, another player's → 403, the host's own → done.
#[tokio::test]
async fn strict_mode_needs_the_requesters_own_token() {
    let s = strict().await;
    let (host, mallory) = (s.token("host"), s.token("mallory"));
    let lobby = create_as(&s, "host", &host).await;
    let id = lobby["id"].as_str().unwrap().to_owned();
    join_as(&s, &id, "mallory", &mallory).await;
    join_as(&s, &id, "victim", &s.token("victim")).await;
    let kick = format!("/lobbies/{id}/players/victim?requesterId=host&isKick=true");

    let (status, body) = as_player(&s, Method::DELETE, &kick, None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = as_player(&s, Method::DELETE, &kick, Some("not-a-jwt"), None).await;
    assert_eq!(status, 401);
    let (status, body) = as_player(&s, Method::DELETE, &kick, Some(&mallory), None).await;
    assert_eq!(status, 403, "mallory cannot pose as the host: {body}");
    let take_host = json!({"requesterId": "host", "host": "mallory"});
    let path = format!("/lobbies/{id}");
    let (status, _) = as_player(&s, Method::PUT, &path, Some(&mallory), Some(take_host)).await;
    assert_eq!(status, 403);
    let (status, _) = as_player(
        &s,
        Method::DELETE,
        &path,
        Some(&mallory),
        Some(json!({"playerId": "host"})),
    )
    .await;
    assert_eq!(status, 403, "nor delete the lobby as the host");
    let leave = format!("/lobbies/{id}/players/victim?requesterId=victim");
    let (status, _) = as_player(&s, Method::DELETE, &leave, Some(&mallory), None).await;
    assert_eq!(status, 403, "nor make another player leave");

    let (status, after) = as_player(&s, Method::DELETE, &kick, Some(&host), None).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["players"], json!(["host", "mallory"]));
    assert_eq!(after["host"], "host");
}

/// Strict mode also covers creating (as host), joining by id or code and heartbeats: nobody can
/// create or join as another player (which would lock that player out of lobbies of this
/// config) or keep a lobby alive for them; a token whose `rooms` claim does not admit the lobby
/// is refused too (fresh-eyes review findings).
#[tokio::test]
async fn strict_mode_covers_create_join_and_heartbeat() {
    let s = strict().await;
    let mallory = s.token("mallory");
    let body = json!({"name": "Fake", "host": "ceo"});
    let (status, _) = as_player(&s, Method::POST, "/lobbies", None, Some(body.clone())).await;
    assert_eq!(status, 401);
    let (status, _) = as_player(&s, Method::POST, "/lobbies", Some(&mallory), Some(body)).await;
    assert_eq!(status, 403, "mallory cannot create a lobby as ceo");

    let host = s.token("host");
    let lobby = create_as(&s, "host", &host).await;
    let id = lobby["id"].as_str().unwrap().to_owned();
    let players = format!("/lobbies/{id}/players");
    let victim = json!({"playerId": "victim"});
    let (status, _) = as_player(&s, Method::POST, &players, None, Some(victim.clone())).await;
    assert_eq!(status, 401);
    let (status, _) = as_player(&s, Method::POST, &players, Some(&mallory), Some(victim)).await;
    assert_eq!(status, 403, "mallory cannot join as victim");
    // Without a token a bogus invite code is 401 like a real one: codes cannot be probed.
    let (status, _) = as_player(
        &s,
        Method::POST,
        "/lobbies/code/ZZZZZZ/players",
        None,
        Some(json!({"playerId": "victim"})),
    )
    .await;
    assert_eq!(status, 401);
    let beat = format!("/lobbies/{id}/heartbeat");
    let (status, _) = as_player(
        &s,
        Method::POST,
        &beat,
        Some(&mallory),
        Some(json!({"playerId": "host"})),
    )
    .await;
    assert_eq!(status, 403, "nor keep the host alive");

    // A token restricted to other rooms cannot act on this lobby, even as its own player.
    let now = rollcall::auth::unix_now();
    let chess_only = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "host", "rooms": ["chess-*"], "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let (status, _) = as_player(
        &s,
        Method::PUT,
        &format!("/lobbies/{id}"),
        Some(&chess_only),
        Some(json!({"requesterId": "host", "status": "in_game"})),
    )
    .await;
    assert_eq!(status, 403);
}

/// A server with one lobby key and strict requesters.
async fn strict() -> TestServer {
    start_with(|f| {
        f.lobby.api_keys = vec![KEY.into()];
        f.lobby.strict_requester = true;
    })
    .await
}

/// Creates a lobby as `host` with its own token; asserts 201.
async fn create_as(s: &TestServer, host: &str, token: &str) -> Value {
    let body = json!({"name": "Strict lobby", "maxPlayers": 4, "host": host});
    let (status, lobby) = as_player(s, Method::POST, "/lobbies", Some(token), Some(body)).await;
    assert_eq!(status, 201, "{lobby}");
    lobby
}

/// Joins `player` to lobby `id` with its own token; asserts 200.
async fn join_as(s: &TestServer, id: &str, player: &str, token: &str) {
    let path = format!("/lobbies/{id}/players");
    let body = json!({"playerId": player});
    let (status, lobby) = as_player(s, Method::POST, &path, Some(token), Some(body)).await;
    assert_eq!(status, 200, "{lobby}");
}
