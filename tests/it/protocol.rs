//! The wire contract: examples round-trip through the server's types; bad input gets a
//! documented error and the socket stays usable; authentication happens before the upgrade;
//! limits are enforced with the documented codes.

use std::time::Duration;

use crate::support::*;
use futures::SinkExt;
use rollcall::protocol::{ClientMsg, ServerMsg};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Every example in `protocol/examples` parses as the message type its name says and serializes
/// back to the same JSON.
#[test]
fn examples_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).expect("read");
        let original: Value = serde_json::from_str(&text).expect("example is JSON");
        let back = if name.starts_with("client-") {
            let m: ClientMsg =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::to_value(&m).unwrap()
        } else {
            assert!(
                name.starts_with("server-"),
                "{name}: examples are client-* or server-*"
            );
            let m: ServerMsg =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::to_value(&m).unwrap()
        };
        assert_eq!(original, back, "{name} does not round-trip");
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} examples");
}

/// A real server's messages match the documented shapes (spot check against the examples).
#[tokio::test]
async fn live_messages_parse_as_server_messages() {
    let s = start().await;
    let (mut a, panel) = s.joined("alice", "shape").await;
    let (_b, _) = s.joined("bob", "shape").await;
    let mut all = vec![panel];
    all.extend(
        a.request(json!({"type": "state", "room": "shape", "state": {"hp": 1}}))
            .await,
    );
    all.push(a.call(json!({"type": "ping", "ref": 1})).await);
    all.push(a.call(json!({"type": "nope"})).await);
    for m in all {
        let parsed: ServerMsg =
            serde_json::from_value(m.clone()).unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), m);
    }
}

/// Each malformed request gets an `error` with the documented code (and its `ref` when it could
/// be read), and the socket keeps working afterwards.
#[tokio::test]
async fn bad_input_gets_a_documented_error_and_the_socket_survives() {
    let s = start_with(|f| {
        f.max_state_bytes = 64;
        f.max_rooms_per_socket = 2;
        f.max_members_per_room = 2;
    })
    .await;
    let mut c = s.connect("alice").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"type": "dance", "ref": "x1"}), "unknown_type"),
        (json!({"type": "join", "ref": "x2"}), "bad_request"),
        (json!({"room": "r", "ref": "x3"}), "bad_request"),
        (
            json!({"type": "join", "room": "bad room!", "ref": "x4"}),
            "invalid_room",
        ),
        (
            json!({"type": "join", "room": "lobby:nope", "ref": "x5"}),
            "room_not_found",
        ),
        (
            json!({"type": "leave", "room": "never-joined", "ref": "x6"}),
            "not_member",
        ),
        (
            json!({"type": "sync", "room": "never-joined", "ref": "x7"}),
            "not_member",
        ),
    ];
    for (req, code) in cases {
        let r = req["ref"].clone();
        c.send(req).await;
        let e = c.expect("error").await;
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(e["ref"], r);
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.send_raw("{not json").await;
    let e = c.expect("error").await;
    assert_eq!(e["code"], "bad_json");
    assert!(e.get("ref").is_none());
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(c.expect("error").await["code"], "bad_request");

    // Limits.
    c.join("one").await;
    let big = json!({"type": "state", "room": "one", "state": {"blob": "x".repeat(100)}});
    assert_eq!(c.call(big).await["code"], "state_too_large");
    c.join("two").await;
    assert_eq!(
        c.call(json!({"type": "join", "room": "three"})).await["code"],
        "too_many_rooms"
    );
    let (_b, _) = s.joined("bob", "two").await;
    c.drain().await;
    let mut carol = s.connect("carol").await;
    assert_eq!(
        carol.call(json!({"type": "join", "room": "two"})).await["code"],
        "room_full"
    );
    assert_eq!(
        c.call(json!({"type": "kick", "room": "two", "member": "alice"}))
            .await["code"],
        "bad_request"
    );
    assert_eq!(
        c.call(json!({"type": "kick", "room": "two", "member": "zed"}))
            .await["code"],
        "not_member"
    );

    // Still usable.
    c.send(json!({"type": "ping", "ref": 42})).await;
    assert_eq!(c.recv().await, json!({"type": "pong", "ref": 42}));
    let msgs = c.request(json!({"type": "sync", "room": "two"})).await;
    assert_eq!(msgs[0]["type"], "panel");
    assert_eq!(ids(&msgs[0]), ["alice", "bob"]);
}

/// A message over `max_message_bytes` closes the socket with 1009.
#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let s = start_with(|f| f.max_message_bytes = 1024).await;
    let mut c = s.connect("alice").await;
    c.send_raw(&format!(
        "{{\"type\":\"ping\",\"ref\":\"{}\"}}",
        "x".repeat(2000)
    ))
    .await;
    assert_eq!(c.closed().await, 1009);
}

/// No socket without a valid token: 401 with a JSON body, for every way a token can be wrong.
#[tokio::test]
async fn authentication_happens_before_the_upgrade() {
    let s = start().await;
    let upgrade = |req: reqwest::RequestBuilder| {
        req.header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let expired = {
        let claims = json!({"sub": "alice", "exp": rollcall::auth::unix_now() - 60});
        jsonwebtoken::encode(
            &Default::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let wrong_secret = rollcall::auth::sign_hs256("another-secret-entirely", "alice", None, 60);
    let no_exp = jsonwebtoken::encode(
        &Default::default(),
        &json!({"sub": "alice"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &json!({"sub": "alice", "exp": rollcall::auth::unix_now() + 60}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let cases = [
        (None, "missing_token"),
        (Some("garbage".to_owned()), "invalid_token"),
        (Some(expired), "token_expired"),
        (Some(wrong_secret), "invalid_token"),
        (Some(no_exp), "invalid_token"),
        (Some(hs384), "invalid_token"),
    ];
    for (token, code) in cases {
        let mut req = upgrade(s.http.get(s.ws_url().replace("ws://", "http://")));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{code}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
    }
    // A good token in the header works as well as in the query.
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.ws_url())
            .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.token("alice")).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("header token accepted");
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    let mut c = Client { ws };
    assert_eq!(c.recv().await["type"], "pong");
}

/// A socket whose token expires while open is closed with 4001 (checked on the ping tick).
#[tokio::test]
async fn token_expiry_closes_with_4001() {
    let s = start_with(|f| f.ping_interval_secs = 0.2).await;
    let token = rollcall::auth::sign_hs256(SECRET, "alice", None, 1);
    let mut c = s.connect_token(&token).await;
    let code = tokio::time::timeout(Duration::from_secs(4), c.closed())
        .await
        .expect("closed");
    assert_eq!(code, 4001);
}
