//! Shared helpers of the durable-store tests (issue 11) against the real binary: a production
//! configuration with every façade (video team, lobby key, game key and session key pair) and
//! optional webhooks, plain REST clients for the three façades and the operator API bound to a
//! base URL (so they work across restarts), WebSocket clients that survive the server dying, and
//! the `epoch` of versioned messages.

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::game::{hmac_hex, now_ms};
use crate::support::process::TempDir;
use crate::support::{Client, ADMIN, SECRET};

pub const TEAM: &str = "durable-team";
pub const TEAM_KEY: &str = "durable-team-developer-key";
pub const LOBBY_KEY: &str = "durable-lobby-key-0001";
pub const GAME_KEY: &str = "durable-game-key";
pub const GAME_SECRET: &str = "durable-game-secret";
pub const GAME: &str = "durablegame";
/// Every REST request's bound (a loaded 2-core machine commits to disk, so a bit more than a read).
pub const REST_TIMEOUT: Duration = Duration::from_secs(10);

/// A game session key pair: the public half in a file for the server, the private half to sign.
pub struct SessionKeys {
    pub private_pem: String,
    pub dir: TempDir,
}

impl SessionKeys {
    pub fn new() -> Self {
        let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let private_pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let public_pem = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let dir = TempDir::new("session-key");
        std::fs::write(dir.path().join("session.pem"), public_pem).unwrap();
        SessionKeys { private_pem, dir }
    }
    pub fn public_file(&self) -> std::path::PathBuf {
        self.dir.path().join("session.pem")
    }
    /// A PLYR session JWT for `plyr` in [`GAME`].
    pub fn session(&self, plyr: &str) -> String {
        let exp = now_ms() / 1000 + 3600;
        let claims = json!({"plyrId": plyr, "gameId": GAME, "nonce": 1,
            "primaryAddress": "0x1", "mirrorAddress": "0x2", "iat": exp - 3600, "exp": exp});
        let key = EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }
}

/// The TOML of a production configuration with every façade and creation rate limits off; `top`
/// is added at the top level (before any table; it must not open `[limits]`), `webhook` (a receiver URL) adds one fast-retry `[[webhooks]]` endpoint
/// that retries forever.
pub fn config(keys: &SessionKeys, top: &str, webhook: Option<&str>) -> String {
    let mut c = format!(
        "jwt_secret = \"{SECRET}\"\nadmin_token = \"{ADMIN}\"\n{top}\n\
         [limits]\nlobby_address_burst = 0\nlobby_address_per_sec = 0\n\
         tenant_room_burst = 0\ntenant_rooms_per_sec = 0\n\
         identity_room_burst = 0\nidentity_rooms_per_sec = 0\n\
         [lobby]\napi_keys = [\"{LOBBY_KEY}\"]\n\
         [video]\nteams = [{{ team_id = \"{TEAM}\", developer_key = \"{TEAM_KEY}\" }}]\n\
         [game]\nsession_public_key_file = \"{}\"\n\
         [[game.api_keys]]\napi_key = \"{GAME_KEY}\"\nsecret_key = \"{GAME_SECRET}\"\n\
         game_id = \"{GAME}\"\n",
        keys.public_file().display()
    );
    if let Some(url) = webhook {
        c.push_str(&format!(
            "[[webhooks]]\nurl = \"{url}\"\nsecret = \"{}\"\nname = \"test-hook\"\n\
             timeout_secs = 1.0\nbackoff_initial_secs = 0.05\nbackoff_max_secs = 0.3\n\
             max_attempts = 0\nmax_queue = 100000\nconcurrency = 4\n",
            crate::support::webhook::HOOK_SECRET
        ));
    }
    c
}

/// The outcome of one REST call: `None` when no answer came (the server died, or the bound).
pub type Answer = Option<(u16, Value)>;

/// REST clients of the three façades and the operator API, against one base URL.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Api {
            base,
            http: reqwest::Client::builder()
                .timeout(REST_TIMEOUT)
                .build()
                .unwrap(),
        }
    }

    async fn answer(rq: reqwest::RequestBuilder) -> Answer {
        let r = rq.send().await.ok()?;
        let status = r.status().as_u16();
        let text = r.text().await.ok()?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Some((status, v))
    }

    // ---- video (Digital Samba) ----
    pub async fn video(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut rq = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .basic_auth(TEAM, Some(TEAM_KEY));
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        Self::answer(rq).await
    }

    // ---- lobbies (PlayFlow) ----
    pub async fn lobby(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut rq = self
            .http
            .request(method, format!("{}{path}{sep}name=default", self.base))
            .header("api-key", LOBBY_KEY);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        Self::answer(rq).await
    }
    pub async fn lobby_create(&self, host: &str, invite: bool) -> Answer {
        let body = json!({"name": format!("Lobby of {host}"), "maxPlayers": 8,
            "isPrivate": false, "useInviteCode": invite, "allowLateJoin": true,
            "region": "eu-west", "settings": {"mode": "ctf"}, "host": host});
        self.lobby(Method::POST, "/lobbies", Some(body)).await
    }
    pub async fn lobby_join(&self, id: &str, player: &str) -> Answer {
        let body = json!({"playerId": player, "metadata": {"displayName": player}});
        self.lobby(Method::POST, &format!("/lobbies/{id}/players"), Some(body))
            .await
    }
    pub async fn lobby_remove(
        &self,
        id: &str,
        target: &str,
        requester: &str,
        kick: bool,
    ) -> Answer {
        let path = format!("/lobbies/{id}/players/{target}?requesterId={requester}&isKick={kick}");
        self.lobby(Method::DELETE, &path, None).await
    }

    // ---- game rooms (PLYR) ----
    pub async fn game(&self, path: &str, body: Value) -> Answer {
        let raw = body.to_string();
        let ts = now_ms().to_string();
        let rq = self
            .http
            .post(format!("{}/api{path}", self.base))
            .header("apikey", GAME_KEY)
            .header("signature", hmac_hex(GAME_SECRET, &ts, &raw))
            .header("timestamp", ts)
            .header("content-type", "application/json")
            .body(raw);
        Self::answer(rq).await
    }
    pub async fn game_get(&self, path: &str) -> Answer {
        let ts = now_ms().to_string();
        let rq = self
            .http
            .get(format!("{}/api{path}", self.base))
            .header("apikey", GAME_KEY)
            .header("signature", hmac_hex(GAME_SECRET, &ts, "{}"))
            .header("timestamp", ts);
        Self::answer(rq).await
    }

    // ---- operator ----
    pub async fn admin_get(&self, path: &str) -> Answer {
        Self::answer(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(ADMIN),
        )
        .await
    }
    /// The member ids of `room` (operator snapshot); `None` if it does not exist (404).
    pub async fn members(&self, room: &str) -> Option<Vec<String>> {
        let (st, v) = self
            .admin_get(&format!("/v1/rooms/{room}"))
            .await
            .expect("the snapshot answers");
        if st == 404 {
            return None;
        }
        assert_eq!(st, 200, "{room}: {v}");
        let mut ids = crate::support::ids(&v);
        ids.sort();
        Some(ids)
    }
}

/// A native socket token for `sub`.
pub fn token(sub: &str) -> String {
    rollcall::auth::sign_hs256(SECRET, sub, Some(&format!("{sub} name")), 3600)
}

/// Connects to `ws_url` with `token`, bounded; `None` if refused or not in time.
pub async fn try_connect(ws_url: &str, token: &str) -> Option<Client> {
    let url = format!("{ws_url}?token={token}");
    match tokio::time::timeout(REST_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((ws, _))) => Some(Client { ws }),
        _ => None,
    }
}

/// Connects, panicking if refused.
pub async fn connect(ws_url: &str, token: &str) -> Client {
    try_connect(ws_url, token).await.expect("socket connects")
}

/// What a socket read: messages until it closed or broke, then how it ended.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    pub messages: Vec<Value>,
    /// The close code (1005 without one, 1006 for a broken connection); `None` while open.
    pub close: Option<u16>,
}

/// Reads `c` in the background into a shared recording until the socket ends (never panics on
/// a dying server). The task ends with the socket or with the test's runtime.
pub fn record(mut c: Client) -> std::sync::Arc<std::sync::Mutex<Recording>> {
    let rec = std::sync::Arc::new(std::sync::Mutex::new(Recording::default()));
    let out = rec.clone();
    tokio::spawn(async move {
        loop {
            let code = match c.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str(t.as_str()) {
                        out.lock().unwrap().messages.push(v);
                    }
                    continue;
                }
                Some(Ok(Message::Close(Some(f)))) => u16::from(f.code),
                Some(Ok(Message::Close(None))) => 1005,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => 1006,
            };
            out.lock().unwrap().close = Some(code);
            return;
        }
    });
    rec
}

/// Sends `v` without panicking; false if the socket is gone.
pub async fn send_quiet(c: &mut Client, v: Value) -> bool {
    c.ws.send(Message::text(v.to_string())).await.is_ok()
}

/// The epoch of a versioned message, asserted to be present and a string (issue 11's spec).
pub fn epoch(msg: &Value) -> String {
    msg["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("a versioned message carries \"epoch\": \"<string>\": {msg}"))
        .to_owned()
}

/// True if `msg` is versioned (carries `version`): `panel`, `joined`, `left`, `state`, `host`,
/// `updated`.
pub fn is_versioned(msg: &Value) -> bool {
    matches!(
        msg["type"].as_str(),
        Some("panel" | "joined" | "left" | "state" | "host" | "updated")
    )
}

/// Waits (bounded by `bound`) until `check` returns true, polling every 50 ms; returns whether it did.
pub async fn eventually<F, Fut>(bound: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database file of a data directory.
pub fn db_file(dir: &Path) -> std::path::PathBuf {
    dir.join("rollcall.db")
}
