//! The low findings of the outside attack (issue 9, finding 10): time claims of native tokens
//! read as RFC 7519 says, oversized operator bodies answered 413.

use crate::support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A native HS256 token with exactly `claims`.
fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The status of an upgrade with `token`.
async fn upgrade(s: &TestServer, token: &str) -> u16 {
    let url = format!("{}?token={token}", s.ws_url());
    match tokio::time::timeout(READ_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("answer in time")
    {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

/// `nbf` in the future is refused (as room tokens already did); `exp` and `nbf` may be any JSON
/// number (RFC 7519 NumericDate), fractions included; a past `exp` is still `token_expired`.
#[tokio::test]
async fn native_token_time_claims_follow_rfc_7519() {
    let s = start().await;
    let now = rollcall::auth::unix_now();
    let future_nbf = token(json!({"sub": "a", "exp": now + 600, "nbf": now + 300}));
    assert_eq!(upgrade(&s, &future_nbf).await, 401);
    let fractional = token(json!({"sub": "a", "exp": now as f64 + 600.5, "nbf": now as f64 - 0.5}));
    assert_eq!(upgrade(&s, &fractional).await, 101);
    let expired = token(json!({"sub": "a", "exp": now as f64 - 60.25}));
    assert_eq!(upgrade(&s, &expired).await, 401);
    let no_exp = token(json!({"sub": "a"}));
    assert_eq!(upgrade(&s, &no_exp).await, 401);
    let text_exp = token(json!({"sub": "a", "exp": "tomorrow"}));
    assert_eq!(upgrade(&s, &text_exp).await, 401);
}

/// An operator body over 64 KiB is 413 `payload_too_large`, not 400.
#[tokio::test]
async fn oversized_operator_body_is_413() {
    let s = start().await;
    let mut c = s.connect("a").await;
    c.join("big").await;
    let members: Vec<String> = (0..10_000).map(|i| format!("member-{i:06}")).collect();
    let r = s
        .http
        .post(s.url("/v1/rooms/big/leave"))
        .bearer_auth(ADMIN)
        .json(&json!({ "members": members }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
}

/// A `ref` comes back exactly as sent, whatever JSON it is: a big integer, a float written with
/// trailing zeros, an exponent, nested, and on a request that fails to parse too.
#[tokio::test]
async fn ref_is_echoed_verbatim() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let s = start().await;
    let url = format!("{}?token={}", s.ws_url(), s.token("a"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for (request, reply_ref) in [
        (
            r#"{"type":"ping","ref":123456789012345678901234567890}"#,
            "123456789012345678901234567890",
        ),
        (r#"{"type":"ping","ref":1.50}"#, "1.50"),
        (
            r#"{"type":"ping","ref":{"n":[1e3,-0.0]}}"#,
            r#"{"n":[1e3,-0.0]}"#,
        ),
        (r#"{"type":"ping","ref":"x"}"#, r#""x""#),
        (r#"{"type":"ping","ref":7}"#, "7"),
        (
            r#"{"type":"nope","ref":18446744073709551616}"#,
            "18446744073709551616",
        ),
    ] {
        ws.send(Message::text(request)).await.unwrap();
        let reply = tokio::time::timeout(READ_TIMEOUT, ws.next())
            .await
            .expect("a reply")
            .unwrap()
            .unwrap();
        let text = reply.into_text().unwrap();
        assert!(
            text.contains(&format!(r#""ref":{reply_ref}"#)),
            "{request} → {text}"
        );
    }
}

/// The close code a raw frame `f` earns: the server answers with a close frame and its code.
async fn close_code_after(
    s: &TestServer,
    f: tokio_tungstenite::tungstenite::protocol::frame::Frame,
) -> u16 {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("{}?token={}", s.ws_url(), s.token("a"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Frame(f)).await.unwrap();
    loop {
        let msg = tokio::time::timeout(READ_TIMEOUT, ws.next())
            .await
            .expect("an answer");
        match msg {
            Some(Ok(Message::Close(Some(c)))) => return u16::from(c.code),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// A text message that is not UTF-8 closes with 1007; a protocol violation (a reserved bit set)
/// closes with 1002 — a close frame with the documented code, not a dropped connection.
#[tokio::test]
async fn bad_utf8_and_protocol_violations_get_their_close_codes() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let s = start().await;
    let bad_utf8 = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
    assert_eq!(close_code_after(&s, bad_utf8).await, 1007);
    let mut rsv = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    rsv.header_mut().rsv1 = true;
    assert_eq!(close_code_after(&s, rsv).await, 1002);
}

/// A token with a `gameId` claim is a PLYR session token, never a native one, even when a native
/// key signed it; and PLYR's session key listed among the native `jwt_keys` is refused at start
/// (fresh-eyes review finding: it made every session token native).
#[tokio::test]
async fn plyr_session_tokens_are_never_native() {
    let s = start().await;
    let now = rollcall::auth::unix_now();
    let forged = token(json!({"sub": "a", "plyrId": "a", "gameId": "devgame", "exp": now + 60}));
    assert_eq!(upgrade(&s, &forged).await, 401);

    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/facade/game/dev-keys/session-public.pem");
    let mut f = rollcall::config::FileConfig {
        data_dir: rollcall::config::EPHEMERAL.into(),
        jwt_secret: Some(SECRET.into()),
        jwt_keys: vec![rollcall::config::JwtKeyConfig {
            alg: "ES256".into(),
            public_key_file: key.clone(),
        }],
        ..Default::default()
    };
    f.game.session_public_key_file = Some(key);
    let settings = rollcall::config::Settings::from_file(f).unwrap();
    let e = rollcall::app::App::new(settings).unwrap_err().to_string();
    assert!(e.contains("jwt_keys") && e.contains("session"), "{e}");
}
