//! Operator REST, slow consumers and shutdown, against a real server.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

/// Snapshot and list need the admin token; the snapshot is the room's `panel`.
#[tokio::test]
async fn operator_snapshot_and_list() {
    let s = start().await;
    let (mut a, _) = s.joined("alice", "ops").await;
    let (_b, _) = s.joined("bob", "ops").await;
    let mut w = s.connect("w").await;
    w.watch("ops").await;
    let sync = a.request(json!({"type": "sync", "room": "ops"})).await;
    let panel = sync.into_iter().find(|m| m["type"] == "panel").unwrap();
    let (status, snap) = s.admin_get("/v1/rooms/ops").await;
    assert_eq!(status, 200);
    assert_eq!(snap, panel, "REST snapshot equals the socket panel");

    let (status, list) = s.admin_get("/v1/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(
        list["rooms"],
        json!([{"room": "ops", "kind": "native", "version": 2, "members": 2, "subscribers": 3}])
    );

    assert_eq!(s.admin_get("/v1/rooms/nope").await.0, 404);
    let r = s.http.get(s.url("/v1/rooms")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(s.url("/v1/rooms"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let (status, body) = s
        .admin_post("/v1/rooms/ops/leave", json!({"members": []}))
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, _) = s
        .admin_post("/v1/rooms/ops/leave", json!({"nope": 1}))
        .await;
    assert_eq!(status, 400);

    let health: serde_json::Value = s
        .http
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["sockets"], 3);
}

/// A client that never reads does not delay anyone else: the others get every event at once,
/// and the stuck socket is closed with 4008 once it has lagged for `slow_consumer_secs`.
#[tokio::test]
async fn a_client_that_never_reads_delays_nobody() {
    let s = start_with(|f| {
        f.outbox_capacity = 8;
        f.slow_consumer_secs = 0.3;
        f.max_state_bytes = 64 * 1024;
    })
    .await;
    let (mut fast, _) = s.joined("fast", "slow").await;
    let (_stuck, _) = s.joined("stuck", "slow").await; // never read again
    let mut w = s.connect("watcher").await;
    w.watch("slow").await;
    fast.drain().await;
    let blob = "x".repeat(32 * 1024);
    let started = Instant::now();
    // ~32 MiB of events: far beyond what the kernel buffers for the stuck socket.
    let mut stuck_left = false;
    for i in 0..1000u32 {
        fast.request(json!({"type": "state", "room": "slow", "state": {"i": i, "blob": blob}}))
            .await;
        let mut ev = w.recv().await;
        if ev["type"] == "left" {
            // The stuck socket lagged past the bound during the burst and was dropped.
            assert_eq!(ev["members"], json!(["stuck"]));
            stuck_left = true;
            ev = w.recv().await;
        }
        assert_eq!(
            ev["state"]["i"], i,
            "the watcher gets every event, in order"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // The stuck socket is dropped with 4008 (the server counts it).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, snap) = s.admin_get("/v1/rooms/slow").await;
        let app = &s.running.as_ref().unwrap().app;
        if app.stats.slow_closes() >= 1 && !ids(&snap).contains(&"stuck".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "stuck socket not closed: {snap}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !stuck_left {
        let ev = w.recv().await;
        assert_eq!(ev["type"], "left");
        assert_eq!(ev["members"], json!(["stuck"]));
        assert_eq!(ev["reason"], "disconnect");
    }
}

/// A socket that falls behind and then catches up is resynced with a fresh `panel`: it skipped
/// stale diffs but its view ends up true, and the version jump is announced by the snapshot.
#[tokio::test]
async fn a_lagging_socket_is_resynced_with_a_panel() {
    let s = start_with(|f| {
        f.outbox_capacity = 8;
        f.slow_consumer_secs = 30.0;
        f.max_state_bytes = 64 * 1024;
    })
    .await;
    let (mut fast, _) = s.joined("fast", "lag").await;
    let (mut lagger, panel) = s.joined("lagger", "lag").await;
    fast.drain().await;
    let blob = "y".repeat(32 * 1024);
    for i in 0..600u32 {
        fast.request(json!({"type": "state", "room": "lag", "state": {"i": i, "blob": blob}}))
            .await;
    }
    let last = fast.request(json!({"type": "sync", "room": "lag"})).await[0]["version"]
        .as_u64()
        .unwrap();
    // Now read everything the lagger was sent.
    let mut prev = panel["version"].as_u64().unwrap();
    let mut saw_panel = false;
    loop {
        let m = lagger.recv().await;
        let v = m["version"].as_u64().unwrap();
        if m["type"] == "panel" {
            saw_panel = true;
            assert!(v >= prev);
        } else {
            assert_eq!(v, prev + 1, "diffs are gapless between snapshots");
        }
        prev = v;
        if v == last {
            break;
        }
    }
    assert!(saw_panel, "the lagger was resynced with a panel");
    let app = &s.running.as_ref().unwrap().app;
    assert!(app.stats.resyncs() >= 1);
}

/// SIGTERM-style shutdown: every socket gets close 1001 and the server stops within its bound.
#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let mut s = start_with(|f| f.shutdown_timeout_secs = 2.0).await;
    let (mut a, _) = s.joined("alice", "bye").await;
    let mut w = s.connect("w").await;
    w.watch("bye").await;
    a.drain().await;
    let t = Instant::now();
    let stop = s.stop();
    let (code_a, code_w, ()) = tokio::join!(a.closed(), w.closed(), stop);
    assert_eq!((code_a, code_w), (1001, 1001));
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// Over the connection cap a new connection is refused with 503 and a JSON body, while the
/// existing sockets keep working; a freed slot is usable again.
#[tokio::test]
async fn over_capacity_is_refused_cleanly() {
    let s = start_with(|f| f.max_connections = 2).await;
    let (mut a, _) = s.joined("alice", "cap").await;
    let (b, _) = s.joined("bob", "cap").await;
    a.drain().await;
    let url = format!("{}?token={}", s.ws_url(), s.token("carol"));
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"], "at_capacity");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(
        a.call(json!({"type": "ping"})).await["type"],
        "pong",
        "existing sockets keep working"
    );
    b.abort();
    a.expect("left").await;
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a freed slot is usable");
    drop(ws);
}
