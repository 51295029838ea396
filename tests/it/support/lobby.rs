//! Helpers for the lobby façade tests: a PlayFlow-style HTTP client (api-key header, `?name=`),
//! an SSE reader bounded by the harness timeout, and the vendor's Lobby schema check (through the
//! shared checker in `tests/it/support/contract.rs`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::contract::Doc;
use crate::support::{start_with, TestServer, READ_TIMEOUT};

/// The project key the test servers accept.
pub const KEY: &str = "test-lobby-key-0001";
/// A second project's key.
pub const OTHER_KEY: &str = "test-lobby-key-0002";

/// A server with two projects and two lobby configs; `min_timeout_secs` as given.
pub async fn server_with_min_timeout(min: u64) -> TestServer {
    start_with(|f| {
        f.lobby.api_keys = vec![KEY.into(), OTHER_KEY.into()];
        f.lobby.configs = vec!["default".into(), "ranked".into()];
        f.lobby.min_timeout_secs = min;
    })
    .await
}

/// A server with the vendor's timeout range.
pub async fn server() -> TestServer {
    server_with_min_timeout(60).await
}

/// Adds `name=default` to a path unless it names a config already.
pub fn q(path: &str) -> String {
    if path.contains("name=") || path.contains("lobby-config=") {
        path.to_owned()
    } else if path.contains('?') {
        format!("{path}&name=default")
    } else {
        format!("{path}?name=default")
    }
}

/// Sends a request with `key` (none if `None`) and returns (status, JSON body or Null).
pub async fn call_with(
    s: &TestServer,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s.http.request(method, s.url(path));
    if let Some(k) = key {
        r = r.header("api-key", k);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = tokio::time::timeout(READ_TIMEOUT, r.send())
        .await
        .expect("answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// A request with the test key and `?name=default` added.
pub async fn call(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_with(s, Some(KEY), method, &q(path), body).await
}

/// Creates a lobby hosted by `host` (extra CreateLobby fields merged in); asserts 201.
pub async fn create(s: &TestServer, host: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": "Test lobby", "maxPlayers": 4, "isPrivate": false, "useInviteCode": false,
        "allowLateJoin": true, "region": "eu-west", "settings": {"mode": "ctf"}, "host": host
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, lobby) = call(s, Method::POST, "/lobbies", Some(body)).await;
    assert_eq!(status, 201, "create: {lobby}");
    lobby
}

/// Joins `player` to `lobby` by id.
pub async fn join(s: &TestServer, lobby: &Value, player: &str) -> (u16, Value) {
    let path = format!("/lobbies/{}/players", lobby["id"].as_str().unwrap());
    call(
        s,
        Method::POST,
        &path,
        Some(json!({"playerId": player, "metadata": {"displayName": "Player"}})),
    )
    .await
}

/// `DELETE /lobbies/{id}/players/{target}?requesterId=&isKick=`.
pub async fn remove(
    s: &TestServer,
    lobby: &Value,
    target: &str,
    requester: &str,
    kick: bool,
) -> (u16, Value) {
    let path = format!(
        "/lobbies/{}/players/{target}?name=default&requesterId={requester}&isKick={kick}",
        lobby["id"].as_str().unwrap()
    );
    call(s, Method::DELETE, &path, None).await
}

/// `PUT /lobbies/{id}`.
pub async fn update(s: &TestServer, lobby: &Value, body: Value) -> (u16, Value) {
    let path = format!("/lobbies/{}", lobby["id"].as_str().unwrap());
    call(s, Method::PUT, &path, Some(body)).await
}

/// `GET /lobbies/{id}`.
pub async fn get(s: &TestServer, id: &str) -> (u16, Value) {
    call(s, Method::GET, &format!("/lobbies/{id}"), None).await
}

/// The room id of a lobby on the WebSocket.
pub fn room(lobby: &Value) -> String {
    format!("lobby:{}", lobby["id"].as_str().unwrap())
}

/// The player ids of a lobby.
pub fn players(lobby: &Value) -> Vec<String> {
    lobby["players"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Asserts a NestJS error body with this status.
pub fn assert_nest_error(status: u16, body: &Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["statusCode"], want, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(
        body["message"].is_string() || body["message"].is_array(),
        "{body}"
    );
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A reader of `GET /lobbies-sse/{id}/events`.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// Opens the stream as the SDK does (`player-id`, `lobby-config`, `api-key`); asserts 200.
    pub async fn open(s: &TestServer, lobby: &Value, player: &str) -> Self {
        let (status, sse) = Self::try_open(s, lobby["id"].as_str().unwrap(), player).await;
        assert_eq!(status, 200);
        sse.expect("a stream")
    }

    /// Opens the stream; the status, and the stream when it is 200.
    pub async fn try_open(s: &TestServer, lobby: &str, player: &str) -> (u16, Option<Self>) {
        let url = s.url(&format!(
            "/lobbies-sse/{lobby}/events?player-id={player}&lobby-config=default"
        ));
        let resp = tokio::time::timeout(
            READ_TIMEOUT,
            s.http
                .get(url)
                .header("api-key", KEY)
                .header("Accept", "text/event-stream")
                .send(),
        )
        .await
        .expect("answer in time")
        .expect("request");
        let status = resp.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        (
            status,
            Some(Self {
                resp,
                buf: String::new(),
            }),
        )
    }

    /// The next event within the harness timeout (keep-alive comments skipped).
    pub async fn next(&mut self) -> SseEvent {
        self.try_next(READ_TIMEOUT).await.expect("an event in time")
    }

    /// The next event within `wait`; `None` on timeout or end of stream.
    pub async fn try_next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    }
                }
                if let Some(event) = event {
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(SseEvent { event, id, data });
                }
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Whether the server ends the stream within `wait` (no further event).
    pub async fn ends(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Ok(Ok(Some(b))) => {
                    let t = std::str::from_utf8(&b).unwrap();
                    assert!(
                        t.lines().all(|l| l.is_empty() || l.starts_with(':')),
                        "expected the stream to end, got {t}"
                    );
                }
                Err(_) => return false,
            }
        }
    }
}

/// The vendor's OpenAPI document for PlayFlow lobbies, when it is there (see
/// [`crate::support::contract::vendor_doc`]): without it the tests still run and only the vendor-schema
/// assertions are skipped (a `SKIPPED:` line says so).
pub fn vendor_spec(test: &str) -> Option<Doc> {
    crate::support::contract::vendor_doc(test, "playflow-lobbies.openapi.json")
}

/// Statuses of the later vendor docs (the spec file predates matchmaking).
pub const LATER_STATUSES: [&str; 5] = ["waiting", "in_queue", "match_found", "in_game", "finished"];

/// The later docs' matchmaking fields: required, presence only (the file has no schema for them).
pub const MATCHMAKING_FIELDS: [&str; 4] = [
    "matchmakingMode",
    "matchmakingStartedAt",
    "matchmakingTicketId",
    "matchmakingData",
];

/// Checks `lobby` against the vendor's Lobby schema with the shared contract checker: every
/// required property present, each of the schema's type, nullability, enum, length, range and
/// format rules; with the later docs' statuses as the `status` enum and their four
/// `matchmaking*` fields required; timestamps as JavaScript's `toISOString` writes them (the
/// vendor is NestJS). Returns the violations.
pub fn lobby_violations(spec: &Doc, lobby: &Value) -> Vec<String> {
    let mut schema = spec.0["components"]["schemas"]["Lobby"].clone();
    schema["properties"]["status"]["enum"] = json!(LATER_STATUSES);
    schema["required"]
        .as_array_mut()
        .expect("required list")
        .extend(MATCHMAKING_FIELDS.map(|f| json!(f)));
    let mut out = spec.violations(&schema, lobby);
    for field in ["createdAt", "updatedAt"] {
        if let Some(t) = lobby[field].as_str() {
            if !(t.len() == 24 && t.ends_with('Z')) {
                out.push(format!("$.{field}: {t:?} is not toISOString's form"));
            }
        }
    }
    out
}

/// Asserts `lobby` satisfies the vendor schema (nothing to check without the document).
pub fn assert_vendor_lobby(spec: &Option<Doc>, lobby: &Value) {
    let Some(spec) = spec else { return };
    let v = lobby_violations(spec, lobby);
    assert!(v.is_empty(), "vendor contract violations {v:?} in {lobby}");
}
