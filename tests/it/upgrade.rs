//! The socket endpoint's own handshake: a valid token on a request that is not a WebSocket
//! upgrade gets a JSON error naming what is missing, and a real client still upgrades.

use crate::support::*;

/// A plain GET with a valid token is 400 `bad_upgrade` with a JSON body; a real WebSocket
/// client gets its socket.
#[tokio::test]
async fn a_request_that_is_not_an_upgrade_gets_a_json_error() {
    let s = start().await;
    let url = format!("{}?token={}", s.url("/v1/ws"), s.token("alice"));
    let r = s.http.get(&url).send().await.expect("request");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert_eq!(body["error"], "bad_upgrade");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("Upgrade")),
        "{body}"
    );

    let mut c = s.connect("alice").await;
    assert_eq!(c.join("handshake").await["members"][0]["id"], "alice");
}
