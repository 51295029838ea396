//! The PLYR-style game-room API end to end: a real server, a real HTTP client signing requests
//! the way the vendor's axios clients do, real ES256 session JWTs (key pair made per test), and
//! WebSocket subscribers that must see each REST change as exactly one native event.

use crate::support::game::*;
use crate::support::*;
use std::time::Duration;

use serde_json::{json, Value};

/// The vendor's create-then-poll loop: async create, then status polls that all reuse one
/// timestamp (here 4 minutes old, inside the window) until `taskData.result.roomId` appears.
#[tokio::test]
async fn create_then_poll_with_a_reused_timestamp() {
    let g = start_game(|_| {}).await;
    let (st, v) = g
        .post("/api/game/create", json!({"expiresIn": "86400"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["task"]["status"], "PENDING");
    let id = v["task"]["id"].as_str().unwrap().to_owned();
    let (ms, seq) = id.split_once('-').expect("a <ms>-<seq> id");
    assert!(ms.parse::<u64>().unwrap() >= now_ms() - 60_000 && seq.parse::<u64>().is_ok());
    let ts = (now_ms() - 240_000).to_string();
    let done = g.poll(&id, &ts).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["taskId"], id.as_str());
    assert_eq!(done["taskData"]["method"], "createGameRoom");
    assert_eq!(
        done["taskData"]["body"],
        json!({"gameId": GAME, "expiresIn": 86400})
    );
    let room = done["taskData"]["result"]["roomId"]
        .as_str()
        .expect("result.roomId")
        .to_owned();
    assert_eq!(
        done["taskData"]["result"]["roomAddress"],
        format!("game:{GAME}:{room}")
    );
    assert_eq!(
        (&done["hash"], &done["errorMessage"]),
        (&Value::Null, &Value::Null)
    );
    assert!(done["completedAt"].as_str().unwrap().ends_with('Z'));
    // The same timestamp keeps working for the next polls; the room exists for sockets.
    assert_eq!(g.poll(&id, &ts).await["status"], "SUCCESS");
    let mut w = g.s.connect_token(ADMIN).await;
    let panel = w.watch(&format!("game:{GAME}:{room}")).await;
    assert_eq!(panel["members"], json!([]));
    // Room ids count up per game; without the /api prefix too.
    let (_, v) = g
        .post("/game/create", json!({"sync": true, "expiresIn": 60}))
        .await;
    assert_eq!(
        v["roomId"].as_str().unwrap().parse::<u64>().unwrap(),
        room.parse::<u64>().unwrap() + 1
    );
    // Unknown and never-issued task ids read NOT_FOUND with 200.
    assert_eq!(
        g.get("/task/status/1-0").await,
        (200, json!({"status": "NOT_FOUND"}))
    );
    assert_eq!(
        g.get("/api/task/status/nonsense").await,
        (200, json!({"status": "NOT_FOUND"}))
    );
    // Tasks by state reach /metrics: two creates, both finished.
    let metrics = g.s.metrics().await;
    for state in ["pending", "success"] {
        let line = format!("rollcall_tasks_total{{state=\"{state}\"}} 2");
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
}

/// Sync and async joins: one `joined` event per batch, already-joined players filtered out.
#[tokio::test]
async fn join_sync_and_async_are_one_event_per_batch() {
    let g = start_game(|_| {}).await;
    let room = g.room().await;
    let mut w = g.s.connect_token(ADMIN).await;
    w.watch(&format!("game:{GAME}:{room}")).await;
    let v = g.join(&room, &["Alice", "bob"]).await;
    assert_eq!(v["status"], "SUCCESS", "{v}");
    assert_eq!(
        (&v["roomId"], &v["plyrIds"]),
        (&json!(room), &json!(["alice", "bob"]))
    );
    assert_eq!(
        v["taskData"]["body"],
        json!({"plyrIds": ["alice", "bob"], "gameId": GAME, "roomId": room})
    );
    let ev = w.expect("joined").await;
    assert_eq!(ids(&ev), ["alice", "bob"]);
    // Async, legacy `{plyrId: jwt}` form, with one player already in: only carol joins.
    let body = json!({"roomId": room, "sessionJwts": {"alice": g.session("alice"), "carol": g.session("carol")}});
    let (st, v) = g.post("/api/game/join", body).await;
    assert_eq!((st, &v["task"]["status"]), (200, &json!("PENDING")), "{v}");
    let done = g
        .poll(v["task"]["id"].as_str().unwrap(), &now_ms().to_string())
        .await;
    assert_eq!(done["taskData"]["body"]["plyrIds"], json!(["carol"]));
    assert_eq!(ids(&w.expect("joined").await), ["carol"]);
    let (st, v) = g
        .post(
            "/api/game/join",
            json!({"roomId": room, "sessionJwts": [g.session("bob")]}),
        )
        .await;
    assert_eq!(
        (st, v),
        (200, json!({"message": "All players are already joined"}))
    );
    w.silent(Duration::from_millis(200)).await;
    assert_eq!(g.members(&room).await, ["alice", "bob", "carol"]);
}

/// The seed scenario: a two-player batch leave is ONE `left` event naming both, seen by a game
/// client attached with its session JWT and by another player's socket.
#[tokio::test]
async fn batch_leave_is_one_left_event() {
    let g = start_game(|_| {}).await;
    let room = g.room().await;
    g.join(&room, &["alice", "bob", "carol"]).await;
    let key = format!("game:{GAME}:{room}");
    let mut a = g.s.connect_token(&g.session("alice")).await;
    assert_eq!(ids(&a.join(&key).await), ["alice", "bob", "carol"]);
    let mut c = g.s.connect_token(&g.session("carol")).await;
    c.join(&key).await;
    let (st, v) = g.leave(&room, &["alice", "bob"], true).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "SUCCESS");
    assert_eq!(
        (&v["roomId"], &v["plyrIds"]),
        (&json!(room), &json!(["alice", "bob"]))
    );
    assert_eq!(v["taskData"]["method"], "leaveGameRoom");
    for s in [&mut a, &mut c] {
        let left = s.expect("left").await;
        assert_eq!(left["members"], json!(["alice", "bob"]));
        assert_eq!(left["reason"], "leave");
        s.silent(Duration::from_millis(200)).await;
    }
    assert_eq!(g.members(&room).await, ["carol"]);
    let (_, v) = g
        .get(&format!("/api/game/isJoined?roomId={room}&plyrId=alice"))
        .await;
    assert_eq!(v, json!({"isJoined": false}));
    // Async leave of the last player: PENDING, then SUCCESS, one more `left`.
    let (st, v) = g.leave(&room, &["carol"], false).await;
    assert_eq!((st, &v["task"]["status"]), (200, &json!("PENDING")));
    assert_eq!(
        g.poll(v["task"]["id"].as_str().unwrap(), &now_ms().to_string())
            .await["status"],
        "SUCCESS"
    );
    assert_eq!(g.members(&room).await, Vec::<String>::new());
}

/// All-or-nothing: one player not in the room → 401 with the error array, nobody leaves, no
/// socket hears anything.
#[tokio::test]
async fn leave_with_a_player_not_joined_changes_nothing() {
    let g = start_game(|_| {}).await;
    let room = g.room().await;
    g.join(&room, &["alice", "bob"]).await;
    let mut b = g.s.connect_token(&g.session("bob")).await;
    b.join(&format!("game:{GAME}:{room}")).await;
    let (st, v) = g.leave(&room, &["alice", "zed", "yan"], true).await;
    assert_eq!(st, 401);
    assert_eq!(
        v,
        json!({"error": ["Player is not joined: zed", "Player is not joined: yan"]})
    );
    b.silent(Duration::from_millis(300)).await;
    assert_eq!(g.members(&room).await, ["alice", "bob"]);
    // roomId missing: 400 (the vendor crashes with 500); unknown room: 404.
    let body = json!({"sessionJwts": [g.session("alice")], "sync": true});
    assert_eq!(
        g.post("/api/game/leave", body).await,
        (400, json!({"error": "roomId is required"}))
    );
    let (st, v) = g.leave("999", &["alice"], true).await;
    assert_eq!((st, v), (404, json!({"error": "Room not found"})));
}

/// Invalid session JWTs: 401 naming each bad player (or `unknown`), nothing changes.
#[tokio::test]
async fn invalid_session_jwts_name_the_players() {
    let g = start_game(|_| {}).await;
    let room = g.room().await;
    let exp = now_ms() / 1000 + 3600;
    let other = start_game(|_| {}).await; // another key pair: a bad signature here
    let jwts = json!([
        g.jwt("wrong", "othergame", 1, exp),
        g.jwt("late", GAME, 1, now_ms() / 1000 - 10),
        other.jwt("forged", GAME, 1, exp),
        g.session("fine"),
    ]);
    let (st, v) = g
        .post(
            "/api/game/join",
            json!({"roomId": room, "sessionJwts": jwts, "sync": true}),
        )
        .await;
    assert_eq!(st, 401);
    assert_eq!(
        v,
        json!({"error": "Invalid sessionJwts", "invalidPlyrIds": {
        "wrong": "Invalid gameId", "late": "JWT deadline is expired", "unknown": "Invalid sessionJwt"}})
    );
    // A newer login (higher nonce) makes the older token stale.
    g.join(&room, &["nina"]).await;
    let newer = g.jwt("nina", GAME, 5, exp);
    assert_eq!(
        g.leave(&room, &[], true).await,
        (400, json!({"error": "sessionJwts is empty"}))
    );
    let (st, _) = g
        .post(
            "/api/game/leave",
            json!({"roomId": room, "sessionJwts": [newer], "sync": true}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = g
        .post(
            "/api/game/join",
            json!({"roomId": room, "sessionJwts": [g.session("nina")]}),
        )
        .await;
    assert_eq!(
        (st, &v["invalidPlyrIds"]),
        (401, &json!({"nina": "JWT nonce is expired"}))
    );
    assert_eq!(g.members(&room).await, Vec::<String>::new());
    // The socket path refuses the same bad tokens before the upgrade.
    for bad in [
        g.jwt("x", "othergame", 9, exp),
        g.jwt("y", GAME, 9, now_ms() / 1000 - 10),
        other.session("z"),
    ] {
        let url = format!("{}?token={bad}", g.s.ws_url());
        assert!(
            tokio_tungstenite::connect_async(url).await.is_err(),
            "socket admitted"
        );
    }
}

/// End closes the room: sockets get `closed` (reason `ended`), the room is gone afterwards.
#[tokio::test]
async fn end_closes_the_room() {
    let g = start_game(|_| {}).await;
    let room = g.room().await;
    g.join(&room, &["alice"]).await;
    let mut a = g.s.connect_token(&g.session("alice")).await;
    a.join(&format!("game:{GAME}:{room}")).await;
    let (st, v) = g
        .post("/api/game/end", json!({"roomId": room, "sync": true}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["status"], &v["roomId"]),
        (&json!("SUCCESS"), &json!(room))
    );
    assert_eq!(
        v["taskData"]["body"],
        json!({"gameId": GAME, "roomId": room})
    );
    let closed = a.expect("closed").await;
    assert_eq!(closed["reason"], "ended");
    assert_eq!(
        g.post("/api/game/end", json!({"roomId": room})).await,
        (404, json!({"error": "Room not found"}))
    );
    assert_eq!(
        g.post("/api/game/end", json!({})).await,
        (400, json!({"error": "roomId is required"}))
    );
    let (_, v) = g
        .get(&format!("/game/isJoined?roomId={room}&plyrId=alice"))
        .await;
    assert_eq!(v, json!({"isJoined": false}));
}

/// A room created with a short `expiresIn` (a number) closes itself with reason `expired`.
#[tokio::test]
async fn expired_room_closes() {
    let g = start_game(|_| {}).await;
    let (st, v) = g
        .post("/api/game/create", json!({"expiresIn": 1, "sync": true}))
        .await;
    assert_eq!(st, 200, "{v}");
    let mut w = g.s.connect_token(ADMIN).await;
    w.watch(v["roomAddress"].as_str().unwrap()).await;
    let closed = w.expect("closed").await;
    assert_eq!(closed["reason"], "expired");
}

/// isJoined: the vendor's two 400s, then membership (plyrId case-insensitive, roomId lowercased).
#[tokio::test]
async fn is_joined_answers_membership() {
    let g = start_game(|_| {}).await;
    let room = g.room().await;
    g.join(&room, &["alice"]).await;
    assert_eq!(
        g.get(&format!("/api/game/isJoined?roomId={room}")).await,
        (400, json!({"error": "plyrId is required"}))
    );
    assert_eq!(
        g.get("/api/game/isJoined?plyrId=alice").await,
        (400, json!({"error": "roomId is required"}))
    );
    assert_eq!(
        g.get(&format!("/api/game/isJoined?roomId={room}&plyrId=ALICE"))
            .await,
        (200, json!({"isJoined": true}))
    );
    assert_eq!(
        g.get(&format!("/api/game/isJoined?roomId=0{room}&plyrId=bob"))
            .await,
        (200, json!({"isJoined": false}))
    );
    assert_eq!(
        g.get("/api/game/isJoined?roomId=404&plyrId=alice").await,
        (200, json!({"isJoined": false}))
    );
    let r =
        g.s.http
            .get(g.s.url("/api/game/isJoined?roomId=1&plyrId=a"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// The task log is bounded: beyond `max_tasks` the oldest task reads NOT_FOUND.
#[tokio::test]
async fn task_log_is_bounded() {
    let g = start_game(|f| f.game.max_tasks = 2).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, v) = g.post("/api/game/create", json!({})).await;
        ids.push(v["task"]["id"].as_str().unwrap().to_owned());
    }
    let ts = now_ms().to_string();
    assert_eq!(
        g.get_at(&format!("/api/task/status/{}", ids[0]), &ts)
            .await
            .1,
        json!({"status": "NOT_FOUND"})
    );
    assert_eq!(g.poll(&ids[2], &ts).await["status"], "SUCCESS");
}
