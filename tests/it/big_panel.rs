//! Panels far larger than a socket's write buffer (a full room, or members with the largest
//! state) reach the socket whole, on join, watch, sync and a lag resync, instead of the socket
//! being dropped without a close frame.

use std::time::Duration;

use crate::support::video::{api, create, now, room_token, KEY, TEAM};
use crate::support::*;
use serde_json::{json, Value};

/// A state blob that keeps the state JSON just under `max_state_bytes` (4 KiB).
fn blob(i: usize) -> String {
    format!("{i:04}{}", "x".repeat(4_000))
}

/// One metric's value in a scrape (0 if absent).
async fn metric(s: &TestServer, name: &str) -> f64 {
    s.metric(name, "").await.unwrap_or(0.0)
}

/// Asserts `panel` lists `members` members and that every `m{i}` carries its whole state.
fn assert_whole(panel: &Value, members: usize) {
    assert_eq!(panel["type"], "panel");
    let rows = panel["members"].as_array().expect("members");
    assert_eq!(rows.len(), members);
    for row in rows {
        let id = row["id"].as_str().expect("id");
        if let Some(i) = id.strip_prefix('m').and_then(|n| n.parse::<usize>().ok()) {
            assert_eq!(row["state"]["blob"], blob(i), "{id}'s state, whole");
        }
    }
}

/// The panel among `msgs`.
fn panel_of(msgs: &[Value]) -> &Value {
    msgs.iter().find(|m| m["type"] == "panel").expect("a panel")
}

/// 80 members with ~4 KiB of state each make a ~330 KB panel (over the old 256 KiB write-buffer
/// cap, which dropped the socket): a watcher, a late joiner and a `sync` each get it whole, and a
/// watcher that fell behind gets it whole as its resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_members_with_full_state_can_be_watched_joined_synced_and_resynced() {
    let s = start_with(|f| {
        f.grace_secs = 600.0; // members stay after their setup sockets close
        f.outbox_capacity = 8; // a flooded watcher lags soon
        f.slow_consumer_secs = 600.0;
    })
    .await;
    for i in 0..80 {
        let (mut c, _) = s.joined(&format!("m{i}"), "big").await;
        let msgs = c
            .request(json!({"type": "state", "room": "big", "state": {"blob": blob(i)}}))
            .await;
        assert_eq!(msgs.last().unwrap()["type"], "ack", "{msgs:?}");
        c.abort();
    }

    let mut w = s.connect("watcher").await;
    assert_whole(&w.watch("big").await, 80);

    let (mut late, panel) = s.joined("late", "big").await;
    assert_whole(&panel, 81);

    let msgs = late.request(json!({"type": "sync", "room": "big"})).await;
    assert_whole(panel_of(&msgs), 81);

    // The watcher stops reading while `late` publishes, until its outbox is full (lagging).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while metric(&s, "rollcall_lagging_subscribers").await < 1.0 {
        for _ in 0..20 {
            let msgs = late
                .request(
                    json!({"type": "state", "room": "big", "state": {"n": n, "blob": blob(n)}}),
                )
                .await;
            assert_eq!(msgs.last().unwrap()["type"], "ack");
            n += 1;
        }
        assert!(tokio::time::Instant::now() < deadline, "never lagged");
    }
    // Reading again, it gets the stale backlog, then a fresh panel.
    let resync = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let v = w.recv().await;
            if v["type"] == "panel" {
                return v;
            }
        }
    })
    .await
    .expect("a resync panel in time");
    assert_eq!(resync["members"].as_array().map(Vec::len), Some(81));
    assert!(metric(&s, "rollcall_resyncs_total").await >= 1.0);
}

/// A video room at the 10,000-member cap (9,999 phone callers and one web participant): the web
/// participant joins with the whole ~1.5 MB panel, a watcher gets it, and so does a `sync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_of_ten_thousand_can_be_joined_watched_and_synced() {
    let s = crate::support::video::server().await;
    let room = create(
        &s,
        json!({"friendly_url": "huge", "max_participants": 10_000}),
    )
    .await;
    let id = room["id"].as_str().expect("id").to_owned();
    let name = "n".repeat(60);
    let mut next = 0;
    while next < 9_999 {
        let end = (next + 500).min(9_999);
        let callers: Vec<Value> = (next..end)
            .map(|i| json!({"call_id": format!("call-{i}"), "name": name}))
            .collect();
        let path = format!("/api/v1/rooms/{id}/phone-participants/joined");
        let r = api(&s, "POST", &path, Some(Value::Array(callers))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        next = end;
    }

    let token = room_token(
        KEY,
        json!({"td": TEAM, "rd": id, "ud": "web-1", "u": "Web", "exp": now() + 600}),
    );
    let mut web = s.connect_token(&token).await;
    let panel = web.join(&format!("video:{id}")).await;
    assert_eq!(ids(&panel).len(), 10_000);

    // A video room admits its own room tokens and the operator's: the watcher is the operator.
    let mut w = s.connect_token(ADMIN).await;
    let panel = w.watch(&format!("video:{id}")).await;
    assert_eq!(ids(&panel).len(), 10_000);
    assert!(panel.to_string().len() > 1_000_000, "a panel of megabytes");

    let msgs = w
        .request(json!({"type": "sync", "room": format!("video:{id}")}))
        .await;
    assert_eq!(ids(panel_of(&msgs)).len(), 10_000);
}
