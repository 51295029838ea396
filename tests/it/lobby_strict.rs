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
    let s = start_with(|f| {
        f.lobby.api_keys = vec![KEY.into()];
        f.lobby.strict_requester = true;
    })
    .await;
    let lobby = create(&s, "host", json!({})).await;
    join(&s, &lobby, "mallory").await;
    join(&s, &lobby, "victim").await;
    let id = lobby["id"].as_str().unwrap();
    let kick = format!("/lobbies/{id}/players/victim?requesterId=host&isKick=true");
    let (host, mallory) = (s.token("host"), s.token("mallory"));

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
