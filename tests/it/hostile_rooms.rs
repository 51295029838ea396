//! Room-creation limits (issue #9 item 4): sockets creating native rooms fast are refused with
//! `rate_limited` (per token, then per address), the global room cap answers `server_full`, and
//! every refusal is counted in `/metrics`.

use crate::support::*;
use serde_json::{json, Value};

/// `join` then `leave` of `room`: the join's reply (the leave keeps the socket under its room cap).
async fn create(c: &mut Client, room: &str) -> Value {
    let reply = c
        .request(json!({"type": "join", "room": room}))
        .await
        .pop()
        .expect("a reply");
    if reply["type"] == "ack" {
        let left = c.request(json!({"type": "leave", "room": room})).await;
        assert_eq!(left.last().unwrap()["type"], "ack", "{left:?}");
    }
    reply
}

/// One token creating fresh rooms gets `rate_limited` (with `retryAfter`) after its burst;
/// joining a room that exists is not limited; another token from the same address is refused
/// once the address's burst is spent; both refusals are counted by limit.
#[tokio::test]
async fn fast_room_creation_is_rate_limited_per_token_then_per_address() {
    let s = start_with(|f| {
        f.limits.identity_room_burst = 5;
        f.limits.identity_rooms_per_sec = 0.5;
        f.limits.address_room_burst = 8;
        f.limits.address_rooms_per_sec = 0.5;
    })
    .await;
    let mut a = s.connect("alice").await;
    for i in 0..5 {
        assert_eq!(create(&mut a, &format!("fresh-{i}")).await["type"], "ack");
    }
    let refused = create(&mut a, "fresh-5").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let wait = refused["retryAfter"].as_f64().expect("retryAfter");
    assert!(wait > 0.0 && wait <= 2.0, "{refused}");
    // An existing room is joined without a token from the bucket.
    let (_keep, _) = s.joined("bob", "existing").await;
    assert_eq!(create(&mut a, "existing").await["type"], "ack");
    // Another token from the same address: 3 more rooms fill the address's burst of 8.
    let mut c = s.connect("carol").await;
    for i in 0..2 {
        assert_eq!(create(&mut c, &format!("more-{i}")).await["type"], "ack");
    }
    let refused = create(&mut c, "more-2").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let text = s.metrics().await;
    assert!(
        text.contains("rollcall_limit_refusals_total{limit=\"identity_rate\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rollcall_limit_refusals_total{limit=\"address_rate\"} 1"),
        "{text}"
    );
}

/// At `max_rooms` live rooms a new room is refused with `server_full` (counted); existing rooms
/// still admit joins and watches.
#[tokio::test]
async fn global_room_cap_answers_server_full() {
    let s = start_with(|f| f.limits.max_rooms = 2).await;
    let (_a, _) = s.joined("a", "one").await;
    let (_b, _) = s.joined("b", "two").await;
    let mut c = s.connect("c").await;
    let refused = create(&mut c, "three").await;
    assert_eq!(refused["code"], "server_full", "{refused}");
    assert!(refused.get("retryAfter").is_none(), "{refused}");
    c.watch("one").await;
    let text = s.metrics().await;
    assert!(
        text.contains("rollcall_limit_refusals_total{limit=\"max_rooms\"} 1"),
        "{text}"
    );
}
