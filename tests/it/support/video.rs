//! Helpers shared by the video façade's test files (`tests/it/video.rs`, `tests/it/video_ws.rs`): a
//! server with two teams, requests in every auth form, rooms, watchers and room tokens.

use std::time::Duration;

use crate::support::*;
use rollcall::config::VideoTeam;
use serde_json::Value;

pub const TEAM: &str = "team-a";
pub const KEY: &str = "team-a-developer-key";
pub const TEAM_B: &str = "team-b";
pub const KEY_B: &str = "team-b-developer-key";
pub const QUIET: Duration = Duration::from_millis(250);

pub async fn server() -> TestServer {
    start_with(|f| {
        f.video.teams = vec![
            VideoTeam {
                team_id: TEAM.into(),
                developer_key: KEY.into(),
            },
            VideoTeam {
                team_id: TEAM_B.into(),
                developer_key: KEY_B.into(),
            },
        ];
    })
    .await
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    Basic(&'a str, &'a str),
    BearerPair(&'a str, &'a str),
    BearerKey(&'a str),
    Raw(&'a str),
    None,
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A response: status, raw body, and the body as JSON (`null` when empty or not JSON).
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

pub async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<&str>,
) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = s.http.request(method, s.url(path));
    r = match auth {
        Auth::Basic(t, k) => r.basic_auth(t, Some(k)),
        Auth::BearerPair(t, k) => r.bearer_auth(b64(&format!("{t}:{k}"))),
        Auth::BearerKey(k) => r.bearer_auth(k),
        Auth::Raw(v) => r.header("authorization", v),
        Auth::None => r,
    };
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, text, json }
}

/// A call as team A with Basic auth (the curl `--user` form).
pub async fn api(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string());
    send(s, method, path, Auth::Basic(TEAM, KEY), body.as_deref()).await
}

pub async fn create(s: &TestServer, body: Value) -> Value {
    let r = api(s, "POST", "/api/v1/rooms", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// A native socket watching video room `uuid`.
pub async fn watcher(s: &TestServer, uuid: &str) -> Client {
    let mut w = s.connect_token(ADMIN).await;
    w.watch(&format!("video:{uuid}")).await;
    w
}

/// A room token signed with jsonwebtoken directly (not the server's own signer), HS256.
pub fn room_token(key: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

pub fn now() -> u64 {
    rollcall::auth::unix_now()
}
