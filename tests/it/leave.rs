//! Every leave path ends in exactly one `left` event seen by every subscriber, in version order:
//! leave message, kick, "left" from a backend, last socket closed (after grace), heartbeat timeout,
//! and batches. Also: multi-socket members, reconnect within grace, host migration, kick bans.

use std::time::Duration;

use crate::support::*;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(300);

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
    assert_eq!(panel["members"][2]["name"], "carol name");
    let v = panel["version"].as_u64().unwrap();
    a.expect("joined").await;
    b.expect("joined").await;
    let mut w = s.connect("watcher").await;
    let wp = w.watch("r1").await;
    assert_eq!(wp["version"], v);
    assert_eq!(
        ids(&wp),
        ["alice", "bob", "carol"],
        "a watcher is not a member"
    );

    let msgs = b.request(json!({"type": "leave", "room": "r1"})).await;
    assert_eq!(
        msgs[0]["type"], "left",
        "the leaver sees its own leave before the ack"
    );
    assert_eq!(msgs[1]["type"], "ack");
    for cl in [&mut a, &mut c, &mut w] {
        let left = cl.expect("left").await;
        assert_eq!(left["members"], json!(["bob"]));
        assert_eq!(left["reason"], "leave");
        assert_eq!(left["version"], v + 1);
        assert!(left.get("host").is_none(), "bob was not host");
        cl.silent(Duration::from_millis(50)).await;
    }
    // The leaver's socket is out of the room: it hears nothing more from it.
    let msgs = c
        .request(json!({"type": "state", "room": "r1", "state": {"hp": 3}}))
        .await;
    assert_eq!(msgs[0]["type"], "state");
    assert_eq!(msgs[0]["version"], v + 2);
    b.silent(QUIET).await;
}

/// When the host leaves, the next member in join order is host, announced in the same event.
#[tokio::test]
async fn host_leaving_migrates_host_in_the_same_event() {
    let s = start().await;
    let (mut a, _) = s.joined("alice", "h").await;
    let (mut b, _) = s.joined("bob", "h").await;
    let (mut c, _) = s.joined("carol", "h").await;
    for cl in [&mut a, &mut b] {
        cl.drain().await;
    }
    a.request(json!({"type": "leave", "room": "h"})).await;
    for cl in [&mut b, &mut c] {
        let left = cl.expect("left").await;
        assert_eq!(left["members"], json!(["alice"]));
        assert_eq!(left["host"], "bob");
    }
}

/// A host kick: others see `left` reason `kick` with `by`; the kicked sockets get `left` then
/// `kicked`; the member cannot rejoin until the ban expires.
#[tokio::test]
async fn kick_sticks_until_the_ban_expires() {
    let s = start_with(|f| f.ban_secs = 0.5).await;
    let (mut host, _) = s.joined("alice", "k").await;
    let (mut bob, _) = s.joined("bob", "k").await;
    let (mut bob2, _) = s.joined("bob", "k").await; // a second socket of the same member
    let (mut carol, _) = s.joined("carol", "k").await;
    for cl in [&mut host, &mut bob, &mut bob2] {
        cl.drain().await;
    }

    let refused = bob
        .call(json!({"type": "kick", "room": "k", "member": "carol"}))
        .await;
    assert_eq!(refused["code"], "not_host");
    let msgs = host
        .request(json!({"type": "kick", "room": "k", "member": "bob"}))
        .await;
    assert_eq!(msgs[0]["type"], "left");
    assert_eq!(msgs[1]["type"], "ack");
    let left = carol.expect("left").await;
    assert_eq!(left["reason"], "kick");
    assert_eq!(left["by"], "alice");
    assert_eq!(left["members"], json!(["bob"]));
    for sock in [&mut bob, &mut bob2] {
        assert_eq!(sock.expect("left").await["reason"], "kick");
        let k = sock.expect("kicked").await;
        assert_eq!(k["by"], "alice");
        assert_eq!(k["room"], "k");
    }
    let again = bob.call(json!({"type": "join", "room": "k"})).await;
    assert_eq!(again["code"], "banned");
    tokio::time::sleep(Duration::from_millis(600)).await;
    bob.join("k").await;
    assert_eq!(carol.expect("joined").await["members"][0]["id"], "bob");
}

/// With grace 0, closing the last socket is a `disconnect` leave at once; closing one of two
/// sockets of a member is no event at all.
#[tokio::test]
async fn last_socket_closed_is_a_disconnect() {
    let s = start().await;
    let (mut a, _) = s.joined("alice", "d").await;
    let (b1, _) = s.joined("bob", "d").await;
    let (b2, _) = s.joined("bob", "d").await;
    a.expect("joined").await;
    b1.abort();
    a.silent(QUIET).await;
    b2.abort();
    let left = a.expect("left").await;
    assert_eq!(left["reason"], "disconnect");
    assert_eq!(left["members"], json!(["bob"]));
}

/// Within the grace period a member may reconnect with no event at all; after it, `disconnect`.
#[tokio::test]
async fn reconnect_within_grace_is_silent() {
    let s = start_with(|f| f.grace_secs = 0.4).await;
    let (mut a, _) = s.joined("alice", "g").await;
    let (b, _) = s.joined("bob", "g").await;
    a.expect("joined").await;
    b.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (b, panel) = s.joined("bob", "g").await;
    assert_eq!(ids(&panel), ["alice", "bob"]);
    a.silent(Duration::from_millis(500)).await;
    b.abort();
    a.silent(Duration::from_millis(200)).await;
    let left = a.expect("left").await;
    assert_eq!(left["reason"], "disconnect");
}

/// A peer that stops answering pings is dropped within the configured bound: `timeout`.
#[tokio::test]
async fn dead_peer_times_out() {
    // Bounds with room for a loaded machine: `a` is not read while `b` joins, and must not be
    // the one that times out; `left` still comes well within the read timeout.
    let s = start_with(|f| {
        f.ping_interval_secs = 0.1;
        f.heartbeat_timeout_secs = 1.0;
    })
    .await;
    let (mut a, _) = s.joined("alice", "t").await;
    let (_b_never_read_again, _) = s.joined("bob", "t").await;
    a.expect("joined").await;
    // `a` keeps reading (so it answers pings); `b` is never polled again, so it never pongs.
    let left = a.expect("left").await;
    assert_eq!(left["reason"], "timeout");
    assert_eq!(left["members"], json!(["bob"]));
}

/// A backend removes several members at once: one `left` event, reason `left`, one version.
#[tokio::test]
async fn backend_batch_is_one_event() {
    let s = start().await;
    let (mut w, _) = s.joined("watcher-member", "b").await;
    let (_a, _) = s.joined("a", "b").await;
    let (_c, p) = s.joined("c", "b").await;
    w.expect("joined").await;
    w.expect("joined").await;
    let v = p["version"].as_u64().unwrap();
    let (status, body) = s
        .admin_post(
            "/v1/rooms/b/leave",
            json!({"members": ["a", "c", "nobody"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], json!(["a", "c"]));
    let left = w.expect("left").await;
    assert_eq!(left["members"], json!(["a", "c"]));
    assert_eq!(left["reason"], "left");
    assert_eq!(left["version"], v + 1);
    w.silent(Duration::from_millis(100)).await;

    // All-or-nothing: a missing member fails the batch and nobody leaves.
    let (status, body) = s
        .admin_post(
            "/v1/rooms/b/leave",
            json!({"members": ["watcher-member", "ghost"], "atomic": true}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["members"], json!(["ghost"]));
    w.silent(Duration::from_millis(100)).await;
}

/// An operator kick has reason `kick` and no `by`.
#[tokio::test]
async fn operator_kick() {
    let s = start().await;
    let (mut a, _) = s.joined("alice", "o").await;
    let (mut b, _) = s.joined("bob", "o").await;
    a.expect("joined").await;
    let (status, panel) = s
        .admin_post("/v1/rooms/o/kick", json!({"member": "alice"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&panel), ["bob"]);
    let left = b.expect("left").await;
    assert_eq!(left["reason"], "kick");
    assert!(left.get("by").is_none());
    assert_eq!(left["host"], "bob");
    a.expect("left").await;
    assert!(a.expect("kicked").await.get("by").is_none());
}

/// Versions grow by exactly one per event, for every subscriber, across event kinds.
#[tokio::test]
async fn versions_are_gapless_and_ordered() {
    let s = start().await;
    let mut w = s.connect("w").await;
    let p = w.watch("v").await;
    let mut expect = p["version"].as_u64().unwrap() + 1;
    let (mut a, _) = s.joined("a", "v").await;
    let (b, _) = s.joined("b", "v").await;
    for i in 0..20 {
        a.request(json!({"type": "state", "room": "v", "state": {"i": i}}))
            .await;
    }
    b.abort();
    for _ in 0..23 {
        let ev = w.recv().await;
        assert_eq!(ev["version"], expect, "{ev}");
        expect += 1;
    }
}
