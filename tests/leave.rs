//! Every leave path ends in exactly one `left` event seen by every subscriber, in version order.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// The new-user scenario: three members and a watcher; one leaves; the others and the watcher
/// each receive `left` naming it, one version above what they last saw.
#[tokio::test]
async fn leave_is_seen_by_every_member_and_watcher() {
    let s = start().await;
    let (mut a, _) = s.joined("alice", "r1").await;
    let (mut b, _) = s.joined("bob", "r1").await;
    a.expect("joined").await;
    let (mut c, panel) = s.joined("carol", "r1").await;
    assert_eq!(ids(&panel), ["alice", "bob", "carol"]);
    assert_eq!(panel["host"], "alice");
    let v = panel["version"].as_u64().unwrap();
    a.expect("joined").await;
    b.expect("joined").await;
    let mut w = s.connect("watcher").await;
    let wp = w.watch("r1").await;
    assert_eq!(wp["version"], v);

    let msgs = b.request(json!({"type": "leave", "room": "r1"})).await;
    assert_eq!(msgs[0]["type"], "left");
    assert_eq!(msgs[1]["type"], "ack");
    for cl in [&mut a, &mut c, &mut w] {
        let left = cl.expect("left").await;
        assert_eq!(left["members"], json!(["bob"]));
        assert_eq!(left["reason"], "leave");
        assert_eq!(left["version"], v + 1);
        assert!(left.get("host").is_none(), "bob was not host");
    }
    // The leaver's socket is out of the room: it hears nothing more from it.
    let msgs = c
        .request(json!({"type": "state", "room": "r1", "state": {"hp": 3}}))
        .await;
    assert_eq!(msgs[0]["type"], "state");
    b.silent(Duration::from_millis(200)).await;
}
