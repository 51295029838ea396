//! Tenant isolation on the socket (issue #9 item 5): a façade room is visible only to that
//! façade's credentials for that tenant and room, the operator token sees every room, and a
//! native token's `rooms` claim narrows the native rooms it may use.

use crate::support::*;
use rollcall::config::GameApiKey;
use serde_json::{json, Value};

/// Sends `join` or `watch` of `room` and returns the error code (`None` for an ack).
async fn code(c: &mut Client, ty: &str, room: &str) -> Option<String> {
    let msgs = c.request(json!({"type": ty, "room": room})).await;
    let reply = msgs.last().expect("a reply");
    match reply["type"].as_str() {
        Some("ack") => None,
        _ => Some(reply["code"].as_str().unwrap_or("?").to_owned()),
    }
}

/// A native token whose claims include `rooms`.
fn native_with_rooms(sub: &str, rooms: Value) -> String {
    let claims = json!({"sub": sub, "exp": rollcall::auth::unix_now() + 600, "rooms": rooms});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Video rooms: a native token cannot watch or join `video:<uuid>`; a room token of room A
/// cannot watch room B; the operator token watches both.
#[tokio::test]
async fn video_rooms_are_visible_to_their_own_tokens_and_the_operator() {
    use crate::support::video::*;
    let s = server().await;
    let a = create(&s, json!({"friendly_url": "room-a"})).await;
    let b = create(&s, json!({"friendly_url": "room-b"})).await;
    let (a, b) = (
        format!("video:{}", a["id"].as_str().unwrap()),
        format!("video:{}", b["id"].as_str().unwrap()),
    );
    let mut native = s.connect("snoop").await;
    assert_eq!(
        code(&mut native, "watch", &a).await.as_deref(),
        Some("forbidden")
    );
    assert_eq!(
        code(&mut native, "join", &a).await.as_deref(),
        Some("forbidden")
    );
    let rd = a.strip_prefix("video:").unwrap();
    let token = room_token(
        KEY,
        json!({"td": TEAM, "rd": rd, "ud": "u1", "exp": now() + 600}),
    );
    let mut web = s.connect_token(&token).await;
    assert_eq!(
        code(&mut web, "watch", &b).await.as_deref(),
        Some("forbidden")
    );
    assert_eq!(code(&mut web, "watch", &a).await, None);
    let mut op = s.connect_token(ADMIN).await;
    assert_eq!(code(&mut op, "watch", &a).await, None);
    assert_eq!(code(&mut op, "watch", &b).await, None);
}

/// Lobbies: a native token watches `lobby:<id>` only as one of the lobby's players; a player
/// of lobby A cannot watch lobby B; the operator token watches both.
#[tokio::test]
async fn lobby_rooms_are_visible_to_their_players_and_the_operator() {
    use crate::support::lobby::*;
    let s = server().await;
    let a = room(&create(&s, "host-a", json!({})).await);
    let b = room(&create(&s, "host-b", json!({})).await);
    let mut outsider = s.connect("snoop").await;
    assert_eq!(
        code(&mut outsider, "watch", &a).await.as_deref(),
        Some("forbidden")
    );
    assert_eq!(
        code(&mut outsider, "join", &a).await.as_deref(),
        Some("forbidden")
    );
    let mut host_a = s.connect("host-a").await;
    assert_eq!(
        code(&mut host_a, "watch", &b).await.as_deref(),
        Some("forbidden")
    );
    assert_eq!(code(&mut host_a, "watch", &a).await, None);
    let mut op = s.connect_token(ADMIN).await;
    assert_eq!(code(&mut op, "watch", &a).await, None);
    assert_eq!(code(&mut op, "watch", &b).await, None);
}

/// Game rooms: a native token cannot watch `game:...`; a session token of game X cannot watch
/// game Y's room (nor a native room); a session token of game Y watches its own; the operator
/// watches every game room.
#[tokio::test]
async fn game_rooms_are_visible_to_their_games_tokens_and_the_operator() {
    use crate::support::game::*;
    let g = start_game(|f| {
        f.game.api_keys.push(GameApiKey {
            api_key: "other-game-key".into(),
            secret_key: "other-game-secret".into(),
            role: "user".into(),
            game_id: "othergame".into(),
        });
    })
    .await;
    let room = g.room().await;
    let key = format!("game:{GAME}:{room}");
    let mut native = g.s.connect("snoop").await;
    assert_eq!(
        code(&mut native, "watch", &key).await.as_deref(),
        Some("forbidden")
    );
    let exp = rollcall::auth::unix_now() + 600;
    let mut other = g.s.connect_token(&g.jwt("eve", "othergame", 1, exp)).await;
    assert_eq!(
        code(&mut other, "watch", &key).await.as_deref(),
        Some("forbidden")
    );
    assert_eq!(
        code(&mut other, "join", "lobby-chat").await.as_deref(),
        Some("forbidden")
    );
    let mut ours = g.s.connect_token(&g.session("bob")).await;
    assert_eq!(code(&mut ours, "watch", &key).await, None);
    let mut op = g.s.connect_token(ADMIN).await;
    assert_eq!(code(&mut op, "watch", &key).await, None);
}

/// A native token's `rooms` claim admits only matching native rooms (exact names and `prefix*`);
/// a token without the claim uses any native room; a malformed claim is refused at the upgrade.
#[tokio::test]
async fn rooms_claim_restricts_native_rooms() {
    let s = start().await;
    let mut narrow = s
        .connect_token(&native_with_rooms("n", json!(["chess-*", "lobby-42"])))
        .await;
    assert_eq!(code(&mut narrow, "join", "chess-1").await, None);
    assert_eq!(code(&mut narrow, "watch", "lobby-42").await, None);
    assert_eq!(
        code(&mut narrow, "join", "go-1").await.as_deref(),
        Some("forbidden")
    );
    assert_eq!(
        code(&mut narrow, "watch", "lobby-420").await.as_deref(),
        Some("forbidden")
    );
    let mut wide = s.connect("w").await;
    assert_eq!(code(&mut wide, "join", "go-1").await, None);
    let bad = native_with_rooms("n", json!(["bad room!"]));
    let r = s
        .http
        .get(format!("http://{}/v1/ws?token={bad}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
