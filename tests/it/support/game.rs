//! Shared helpers of the game-room API tests: a server with a test API key and a per-test ES256
//! session key pair, request signing as the vendor's clients do it, and room inspection.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rollcall::config::GameApiKey;
use serde_json::{json, Value};
use sha2::Sha256;

pub const API_KEY: &str = "test-game-key";
pub const SECRET_KEY: &str = "test-game-secret";
pub const GAME: &str = "testgame";

/// A server with one game key and a session key pair; signs requests like the vendor's clients.
pub struct Game {
    pub s: TestServer,
    pub private_pem: String,
    _key_file: TempFile,
}

pub struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0); // best effort cleanup of a temp file
    }
}

/// lowercase_hex(HMAC-SHA256(secret, ts + body)), written independently of the server's code.
pub fn hmac_hex(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub async fn start_game(tweak: impl FnOnce(&mut rollcall::config::FileConfig)) -> Game {
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
    pub fn jwt(&self, plyr: &str, game: &str, nonce: u64, exp: u64) -> String {
        let claims = json!({"plyrId": plyr, "gameId": game, "nonce": nonce,
            "primaryAddress": "0x1", "mirrorAddress": "0x2", "iat": exp - 3600, "exp": exp});
        let key = EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }
    pub fn session(&self, plyr: &str) -> String {
        self.jwt(plyr, GAME, 1, now_ms() / 1000 + 3600)
    }
    /// POST with `raw` as the body and the given headers.
    pub async fn send(&self, path: &str, raw: String, headers: &[(&str, String)]) -> (u16, Value) {
        let mut rq = self.s.http.post(self.s.url(path)).body(raw);
        rq = rq.header("content-type", "application/json");
        for (k, v) in headers {
            rq = rq.header(*k, v);
        }
        let r = rq.send().await.expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    /// POST `body` signed like axios + the vendor's generateHmacSignature.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
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
    pub async fn get_at(&self, path: &str, ts: &str) -> (u16, Value) {
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
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_at(path, &now_ms().to_string()).await
    }
    /// Creates a room synchronously; returns its roomId.
    pub async fn room(&self) -> String {
        let (st, v) = self.post("/api/game/create", json!({"sync": true})).await;
        assert_eq!((st, &v["status"]), (200, &json!("SUCCESS")), "{v}");
        v["roomId"].as_str().unwrap().to_owned()
    }
    /// Joins players synchronously.
    pub async fn join(&self, room: &str, players: &[&str]) -> Value {
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
    pub async fn leave(&self, room: &str, players: &[&str], sync: bool) -> (u16, Value) {
        let jwts: Vec<String> = players.iter().map(|p| self.session(p)).collect();
        self.post(
            "/api/game/leave",
            json!({"roomId": room, "sessionJwts": jwts, "sync": sync}),
        )
        .await
    }
    /// Polls a task with one reused timestamp (as the vendor's script does) until it is done.
    pub async fn poll(&self, id: &str, ts: &str) -> Value {
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
    pub async fn members(&self, room: &str) -> Vec<String> {
        let (st, v) = self
            .s
            .admin_get(&format!("/v1/rooms/game:{GAME}:{room}"))
            .await;
        assert_eq!(st, 200, "{v}");
        ids(&v)
    }
}
