//! The PLYR-style game-room API end to end: a real server, a real HTTP client signing requests
//! the way the vendor's axios clients do, real ES256 session JWTs (key pair made per test), and
//! WebSocket subscribers that must see each REST change as exactly one native event.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rollcall::config::GameApiKey;
use serde_json::{json, Value};
use sha2::Sha256;

const API_KEY: &str = "test-game-key";
const SECRET_KEY: &str = "test-game-secret";
const GAME: &str = "testgame";

/// A server with one game key and a session key pair; signs requests like the vendor's clients.
struct Game {
    s: TestServer,
    private_pem: String,
    _key_file: TempFile,
}

struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0); // best effort cleanup of a temp file
    }
}

/// lowercase_hex(HMAC-SHA256(secret, ts + body)), written independently of the server's code.
fn hmac_hex(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn start_game(tweak: impl FnOnce(&mut rollcall::config::FileConfig)) -> Game {
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let private_pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public_pem = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let path = std::env::temp_dir().join(format!(
        "rollcall-game-test-{}-{}.pem",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&path, public_pem).unwrap();
    let key_path = path.clone();
    let s = start_with(move |f| {
        f.game.api_keys = vec![GameApiKey {
            api_key: API_KEY.into(),
            secret_key: SECRET_KEY.into(),
            role: "user".into(),
            game_id: GAME.into(),
        }];
        f.game.session_public_key_file = Some(key_path);
        tweak(f);
    })
    .await;
    Game {
        s,
        private_pem,
        _key_file: TempFile(path),
    }
}

impl Game {
    /// An ES256 session JWT as PLYR issues it.
    fn jwt(&self, plyr: &str, game: &str, nonce: u64, exp: u64) -> String {
        let claims = json!({"plyrId": plyr, "gameId": game, "nonce": nonce,
            "primaryAddress": "0x1", "mirrorAddress": "0x2", "iat": exp - 3600, "exp": exp});
        let key = EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }
    fn session(&self, plyr: &str) -> String {
        self.jwt(plyr, GAME, 1, now_ms() / 1000 + 3600)
    }
    /// POST with `raw` as the body and the given headers.
    async fn send(&self, path: &str, raw: String, headers: &[(&str, String)]) -> (u16, Value) {
        let mut rq = self.s.http.post(self.s.url(path)).body(raw);
        rq = rq.header("content-type", "application/json");
        for (k, v) in headers {
            rq = rq.header(*k, v);
        }
        let r = rq.send().await.expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    /// POST `body` signed like axios + the vendor's generateHmacSignature.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let raw = body.to_string();
        let ts = now_ms().to_string();
        let sig = hmac_hex(SECRET_KEY, &ts, &raw);
        let h = [
            ("apikey", API_KEY.into()),
            ("timestamp", ts),
            ("signature", sig),
        ];
        self.send(path, raw, &h).await
    }
    /// GET signed over `{}` with timestamp `ts`.
    async fn get_at(&self, path: &str, ts: &str) -> (u16, Value) {
        let r = self
            .s
            .http
            .get(self.s.url(path))
            .header("apikey", API_KEY)
            .header("timestamp", ts)
            .header("signature", hmac_hex(SECRET_KEY, ts, "{}"))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.get_at(path, &now_ms().to_string()).await
    }
    /// Creates a room synchronously; returns its roomId.
    async fn room(&self) -> String {
        let (st, v) = self.post("/api/game/create", json!({"sync": true})).await;
        assert_eq!((st, &v["status"]), (200, &json!("SUCCESS")), "{v}");
        v["roomId"].as_str().unwrap().to_owned()
    }
    /// Joins players synchronously.
    async fn join(&self, room: &str, players: &[&str]) -> Value {
        let jwts: Vec<String> = players.iter().map(|p| self.session(p)).collect();
        let (st, v) = self
            .post(
                "/api/game/join",
                json!({"roomId": room, "sessionJwts": jwts, "sync": true}),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v
    }
    async fn leave(&self, room: &str, players: &[&str], sync: bool) -> (u16, Value) {
        let jwts: Vec<String> = players.iter().map(|p| self.session(p)).collect();
        self.post(
            "/api/game/leave",
            json!({"roomId": room, "sessionJwts": jwts, "sync": sync}),
        )
        .await
    }
    /// Polls a task with one reused timestamp (as the vendor's script does) until it is done.
    async fn poll(&self, id: &str, ts: &str) -> Value {
        for _ in 0..100 {
            let (st, v) = self.get_at(&format!("/api/task/status/{id}"), ts).await;
            assert_eq!(st, 200, "{v}");
            if v["status"] != "PENDING" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("task {id} still pending");
    }
    async fn members(&self, room: &str) -> Vec<String> {
        let (st, v) = self
            .s
            .admin_get(&format!("/v1/rooms/game:{GAME}:{room}"))
            .await;
        assert_eq!(st, 200, "{v}");
        ids(&v)
    }
}

/// Both SEED-APIS test vectors verify on the live server: with their fixed 2023 timestamp the
/// signature passes and the request fails only the time window; one changed hex digit fails the
/// signature check instead.
#[tokio::test]
async fn seed_hmac_vectors_verify_on_the_server() {
    let g = start_game(|f| f.game.api_keys[0].secret_key = "test-secret".into()).await;
    let ts = "1700000000000";
    let body = r#"{"roomId":"123","sessionJwts":["jwt1"],"sync":true}"#;
    let v1 = "3c966071238a18a7689350226ebc91efaaff8917651119bdfa3b1e358784664b";
    let v2 = "a9ac3c6e3b3f80104f0cb589a9f3571e0d0671fbf216390f2ba7da859314af45";
    assert_eq!(hmac_hex("test-secret", ts, body), v1);
    assert_eq!(hmac_hex("test-secret", ts, "{}"), v2);
    let h = |sig: &str| {
        [
            ("apikey", API_KEY.to_string()),
            ("timestamp", ts.into()),
            ("signature", sig.into()),
        ]
    };
    let r = g.send("/api/game/leave", body.into(), &h(v1)).await;
    assert_eq!(r, (401, json!({"error": "Request expired"})));
    let r = g
        .send("/api/game/leave", body.into(), &h(&v1.replace('3', "4")))
        .await;
    assert_eq!(r, (401, json!({"error": "Invalid signature"})));
    let r = g.send("/api/game/end", String::new(), &h(v2)).await;
    assert_eq!(
        r,
        (401, json!({"error": "Request expired"})),
        "an empty POST body signs as {{}}"
    );
    let get =
        g.s.http
            .get(g.s.url("/task/status/1-0"))
            .header("apikey", API_KEY)
            .header("timestamp", ts)
            .header("signature", v2)
            .send()
            .await
            .unwrap();
    assert_eq!(get.status().as_u16(), 401);
    assert_eq!(
        get.json::<Value>().await.unwrap(),
        json!({"error": "Request expired"})
    );
}

/// Every authentication failure answers the vendor's status and string, in the vendor's order.
/// (403 `Insufficient permissions` cannot happen on these routes: all need `user`, the lowest
/// role; its check is unit-tested in `sign.rs`.)
#[tokio::test]
async fn every_auth_failure_has_the_vendor_string() {
    let g = start_game(|_| {}).await;
    let raw = r#"{"sync":true}"#.to_string();
    let at = |ts: String, body: &str| {
        let sig = hmac_hex(SECRET_KEY, &ts, body);
        vec![
            ("apikey", API_KEY.to_string()),
            ("timestamp", ts),
            ("signature", sig),
        ]
    };
    let now = now_ms();
    let good = at(now.to_string(), &raw);
    for missing in 0..3 {
        let mut h = good.clone();
        h.remove(missing);
        let r = g.send("/api/game/create", raw.clone(), &h).await;
        assert_eq!(r, (401, json!({"error": "Missing authentication headers"})));
    }
    let mut h = good.clone();
    h[0].1 = "nope".into();
    assert_eq!(
        g.send("/api/game/create", raw.clone(), &h).await,
        (401, json!({"error": "Invalid API key"}))
    );
    let tampered = r#"{"sync":true,"expiresIn":5}"#.to_string();
    assert_eq!(
        g.send("/api/game/create", tampered, &good).await,
        (401, json!({"error": "Invalid signature"}))
    );
    let expired = json!({"error": "Request expired"});
    for ts in [
        (now - 301_000).to_string(),
        (now + 301_000).to_string(),
        "NaN".into(),
        format!("{now}x"),
    ] {
        assert_eq!(
            g.send("/api/game/create", raw.clone(), &at(ts, &raw)).await,
            (401, expired.clone())
        );
    }
    // A body re-formatted in transit still verifies through its re-serialization.
    let pretty = "{ \"sync\" : true }\n".to_string();
    let (st, v) = g.send("/api/game/create", pretty, &good).await;
    assert_eq!((st, &v["status"]), (200, &json!("SUCCESS")), "{v}");
    // Bad JSON and oversize bodies get the vendor's `{error}` shape.
    let (st, v) = g.send("/api/game/create", "{".into(), &good).await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON body"),
        "{v}"
    );
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024));
    assert_eq!(
        g.send("/api/game/create", big.clone(), &at(now.to_string(), &big))
            .await,
        (413, json!({"error": "Payload too large"}))
    );
}

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
    let mut w = g.s.connect("observer").await;
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
    let metrics =
        g.s.http
            .get(g.s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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
    let mut w = g.s.connect("observer").await;
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
    let (mut c, _) = g.s.joined("carol", &key).await;
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
    let (mut b, _) = g.s.joined("bob", &format!("game:{GAME}:{room}")).await;
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
    let mut w = g.s.connect("observer").await;
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
