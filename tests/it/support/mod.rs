//! Shared test harness: a real server on 127.0.0.1:0 ([`TestServer`], which also reads its
//! `/metrics`), real WebSocket and HTTP clients, and reads that are always bounded by a timeout
//! (a missing message fails, never hangs). The submodules hold each area's own helpers.

pub mod cluster;
pub mod contract;
pub mod durable;
pub mod game;
pub mod lobby;
pub mod panel;
pub mod process;
pub mod redis;
pub mod video;
pub mod webhook;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rollcall::config::{FileConfig, Settings};
use rollcall::server::Running;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single read may wait.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// The HS256 secret the test servers use.
pub const SECRET: &str = "test-secret-0123456789";
/// The admin token the test servers use.
pub const ADMIN: &str = "test-admin-token";

/// A running server; shut down on drop.
pub struct TestServer {
    pub running: Option<Running>,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
}

/// Starts a server with test defaults, adjusted by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut FileConfig)) -> TestServer {
    let mut f = FileConfig {
        data_dir: rollcall::config::EPHEMERAL.into(),
        listen: "127.0.0.1:0".into(),
        jwt_secret: Some(SECRET.into()),
        admin_token: Some(ADMIN.into()),
        grace_secs: 0.0,
        ..FileConfig::default()
    };
    // Configured secrets mean production mode, where no development credential is live: give
    // each façade, explicitly, the credentials the tests use (the development values, so tests
    // and the README's examples agree).
    f.game.api_keys = vec![rollcall::config::GameApiKey {
        api_key: rollcall::facade::game::DEV_API_KEY.into(),
        secret_key: rollcall::facade::game::DEV_SECRET_KEY.into(),
        role: "user".into(),
        game_id: rollcall::facade::game::DEV_GAME_ID.into(),
    }];
    f.game.session_public_key_file = Some(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/facade/game/dev-keys/session-public.pem"),
    );
    f.lobby.api_keys = vec![rollcall::facade::lobby::DEV_LOBBY_KEY.into()];
    f.video.teams = vec![rollcall::config::VideoTeam {
        team_id: rollcall::facade::video::DEV_TEAM_ID.into(),
        developer_key: rollcall::facade::video::DEV_DEVELOPER_KEY.into(),
    }];
    tweak(&mut f);
    let settings = Settings::from_file(f).expect("valid test settings");
    let running = rollcall::server::spawn(settings)
        .await
        .expect("server starts");
    let addr = running.addr;
    TestServer {
        running: Some(running),
        addr,
        http: reqwest::Client::new(),
    }
}

/// Starts a server with test defaults.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }
    /// A socket token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        rollcall::auth::sign_hs256(SECRET, sub, Some(&format!("{sub} name")), 3600)
    }
    /// Connects as `sub` (token in the query string).
    pub async fn connect(&self, sub: &str) -> Client {
        self.connect_token(&self.token(sub)).await
    }
    /// Connects with a given token.
    pub async fn connect_token(&self, token: &str) -> Client {
        let url = format!("{}?token={}", self.ws_url(), token);
        let (ws, _) = tokio::time::timeout(READ_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("upgrade accepted");
        Client { ws }
    }
    /// Connects as `sub` and joins `room`, returning the client and its panel.
    pub async fn joined(&self, sub: &str, room: &str) -> (Client, Value) {
        let mut c = self.connect(sub).await;
        let panel = c.join(room).await;
        (c, panel)
    }
    /// GET with the admin token.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    /// POST JSON with the admin token.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    /// One `/metrics` scrape, bounded by [`READ_TIMEOUT`]: checks it is a 200 with OpenMetrics
    /// text ending in `# EOF`, and returns the text.
    pub async fn metrics(&self) -> String {
        tokio::time::timeout(READ_TIMEOUT, async {
            let r = self.http.get(self.url("/metrics")).send().await;
            let r = r.expect("scrape");
            assert_eq!(r.status(), 200);
            let ct = r.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .to_owned();
            assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
            let text = r.text().await.expect("scrape body");
            assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
            text
        })
        .await
        .expect("scrape in time")
    }
    /// The value of the sample `name` with exactly `labels` (as exposed, e.g.
    /// `{limit="rooms"}`, or `""` for none) in a fresh scrape; `None` if the server does not
    /// expose it.
    pub async fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        sample(&self.metrics().await, name, labels)
    }
    /// Stops the server and waits for it.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.app.shutdown.cancel();
        }
    }
}

/// A WebSocket test client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }
    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }
    /// The next text message as JSON; panics after [`READ_TIMEOUT`].
    pub async fn recv(&mut self) -> Value {
        self.try_recv(READ_TIMEOUT)
            .await
            .expect("a message in time")
    }
    /// The next text message within `wait`, or `None`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sends JSON"))
                }
                Some(Ok(Message::Close(f))) => panic!("socket closed: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error: {e}"),
                None => panic!("socket ended"),
            }
        }
    }
    /// The next message, which must be of `ty`.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], ty, "expected {ty}, got {v}");
        v
    }
    /// Reads and discards messages until none arrives for 50 ms; returns them.
    pub async fn drain(&mut self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Some(v) = self.try_recv(Duration::from_millis(50)).await {
            out.push(v);
        }
        out
    }
    /// Asserts nothing arrives for `wait`.
    pub async fn silent(&mut self, wait: Duration) {
        if let Some(v) = self.try_recv(wait).await {
            panic!("expected silence, got {v}");
        }
    }
    /// Waits for the close frame; returns its code.
    pub async fn closed(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return 1006,
            }
        }
    }
    /// Sends a request with a `ref` and returns every message up to and including its reply.
    pub async fn request(&mut self, mut req: Value) -> Vec<Value> {
        let r = format!("r{}", rand_ref());
        req["ref"] = json!(r);
        self.send(req).await;
        let mut out = Vec::new();
        loop {
            let v = self.recv().await;
            let done = v["ref"] == json!(r);
            out.push(v);
            if done {
                return out;
            }
        }
    }
    /// Sends a request and returns its reply (ack/error/pong), asserting nothing else came first.
    pub async fn call(&mut self, req: Value) -> Value {
        let mut msgs = self.request(req).await;
        let reply = msgs.pop().expect("a reply");
        assert!(
            msgs.is_empty(),
            "unexpected messages before the reply: {msgs:?}"
        );
        reply
    }
    /// Joins `room`: returns the panel, checks the ack.
    pub async fn join(&mut self, room: &str) -> Value {
        let msgs = self.request(json!({"type": "join", "room": room})).await;
        assert_eq!(
            msgs.last().unwrap()["type"],
            "ack",
            "join refused: {msgs:?}"
        );
        msgs.into_iter()
            .find(|m| m["type"] == "panel")
            .expect("a panel before the ack")
    }
    /// Watches `room`: returns the panel.
    pub async fn watch(&mut self, room: &str) -> Value {
        let msgs = self.request(json!({"type": "watch", "room": room})).await;
        assert_eq!(
            msgs.last().unwrap()["type"],
            "ack",
            "watch refused: {msgs:?}"
        );
        msgs.into_iter()
            .find(|m| m["type"] == "panel")
            .expect("a panel before the ack")
    }
    /// Drops the TCP connection without a close frame.
    pub fn abort(self) {
        drop(self.ws);
    }
}

fn rand_ref() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The value of the sample `name` with exactly `labels` (`{k="v",…}` as exposed, or `""`) in a
/// `/metrics` text; `None` if absent.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The member ids of a panel.
pub fn ids(panel: &Value) -> Vec<String> {
    panel["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}
