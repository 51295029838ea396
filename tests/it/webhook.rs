//! Leave webhooks against a real HTTP receiver (axum on 127.0.0.1:0) started by each test:
//! envelope and signature, retries with the same delivery id after failures and timeouts,
//! per-room order under failures, the event filter, counted drops when an endpoint stays down,
//! and giving up after `max_attempts`.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::webhook::*;
use crate::support::*;
use rollcall::config::WebhookConfig;
use rollcall::ids::MemberId;
use serde_json::{json, Value};

/// Joins and a leave reach the endpoint as signed Digital Samba envelopes, each with its own
/// delivery id; the first join also makes the first host.
#[tokio::test]
async fn joined_and_left_arrive_signed_in_the_envelope() {
    let mut rx = receiver(vec![], Answer::Status(200), 0).await;
    let url = rx.url();
    let s = start_with(move |f| f.webhooks = vec![endpoint(url)]).await;
    let (_alice, _) = s.joined("alice", "wh1").await;
    let (mut bob, _) = s.joined("bob", "wh1").await;
    let msgs = bob.request(json!({"type": "leave", "room": "wh1"})).await;
    assert_eq!(msgs.last().unwrap()["type"], "ack");

    let mut hits = Vec::new();
    for _ in 0..4 {
        hits.push(rx.next().await);
    }
    let events: Vec<&str> = hits.iter().map(Hit::event).collect();
    assert_eq!(
        events,
        [
            "participant_joined",
            "host_changed",
            "participant_joined",
            "participant_left"
        ]
    );
    let mut ids = std::collections::HashSet::new();
    for h in &hits {
        verify(h);
        let obj = h.json.as_object().expect("an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["data", "event", "timestamp"]);
        let ts = chrono::DateTime::parse_from_rfc3339(h.json["timestamp"].as_str().unwrap())
            .expect("RFC 3339 timestamp");
        assert_eq!(
            h.header("x-rollcall-timestamp"),
            ts.timestamp().to_string(),
            "the header repeats the signed timestamp"
        );
        assert_eq!(h.header("x-rollcall-event"), h.event());
        assert_eq!(h.header("x-rollcall-attempt"), "1");
        assert!(h.header("content-type").starts_with("application/json"));
        assert!(h.header("user-agent").starts_with("rollcall/"));
        let id = uuid::Uuid::parse_str(h.header("x-rollcall-delivery")).expect("a uuid");
        assert!(ids.insert(id), "delivery ids are unique");
    }
    let joined = &hits[0].json["data"];
    assert_eq!(joined["room_id"], "wh1");
    assert_eq!(joined["participant_id"], "alice");
    assert_eq!(joined["name"], "alice name");
    assert_eq!(joined["type"], "player");
    assert_eq!(joined["version"], 1);
    assert_eq!(hits[1].json["data"]["host"], "alice");
    assert_eq!(hits[1].json["data"]["previous_host"], Value::Null);
    let left = &hits[3].json["data"];
    assert_eq!(left["participant_id"], "bob");
    assert_eq!(left["name"], "bob name", "remembered from the join");
    assert_eq!(left["type"], "player");
    assert_eq!(left["reason"], "leave");
    assert_eq!(left["by"], Value::Null);
    assert_eq!(left["version"], 3);
    metric_becomes(
        &s,
        "rollcall_webhook_deliveries_total",
        "{endpoint=\"test-hook\"}",
        4.0,
    )
    .await;
    rx.silent(Duration::from_millis(100)).await;
}

/// A 500, then a timeout, then success: three attempts of the same delivery (same id, same
/// signed bytes), counted as two failures and one delivery.
#[tokio::test]
async fn failed_delivery_is_retried_with_the_same_id() {
    let mut rx = receiver(
        vec![Answer::Status(500), Answer::Hang],
        Answer::Status(200),
        0,
    )
    .await;
    let mut ep = endpoint(rx.url());
    ep.events = vec!["participant_joined".into()];
    let s = start_with(move |f| f.webhooks = vec![ep]).await;
    let (_alice, _) = s.joined("alice", "wh2").await;

    let first = rx.next().await;
    let second = rx.next().await;
    let third = rx.next().await;
    assert_eq!((first.status, second.status, third.status), (500, 0, 200));
    for (n, h) in [&first, &second, &third].iter().enumerate() {
        assert_eq!(h.header("x-rollcall-attempt"), (n + 1).to_string());
        assert_eq!(
            h.header("x-rollcall-delivery"),
            first.header("x-rollcall-delivery")
        );
        assert_eq!(h.body, first.body, "byte-identical retries");
        verify(h);
    }
    assert_eq!(first.event(), "participant_joined");
    metric_becomes(
        &s,
        "rollcall_webhook_failures_total",
        "{endpoint=\"test-hook\"}",
        2.0,
    )
    .await;
    metric_becomes(
        &s,
        "rollcall_webhook_deliveries_total",
        "{endpoint=\"test-hook\"}",
        1.0,
    )
    .await;
    rx.silent(Duration::from_millis(150)).await;
}

/// With four lanes and an endpoint failing every third request, each room's events are
/// delivered complete and in the order the room emitted them.
#[tokio::test]
async fn events_of_a_room_stay_in_order_through_failures() {
    let mut rx = receiver(vec![], Answer::Status(200), 3).await;
    let ep = WebhookConfig {
        concurrency: 4,
        ..endpoint(rx.url())
    };
    let s = start_with(move |f| f.webhooks = vec![ep]).await;
    let rooms = ["order-a", "order-b", "order-c"];
    let n = 4;
    let mut clients = Vec::new();
    for i in 0..n {
        for r in rooms {
            let (c, _) = s.joined(&format!("m{i}"), r).await;
            clients.push((r, c));
        }
    }
    // Everyone leaves, in join order: each host leave also hands the host on.
    for (r, c) in &mut clients {
        let msgs = c.request(json!({"type": "leave", "room": *r})).await;
        assert_eq!(msgs.last().unwrap()["type"], "ack");
    }
    // Per room: n joins + 1 first host + n leaves + (n - 1) host hand-overs.
    let expected = rooms.len() * (3 * n);
    let mut per_room: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for _ in 0..expected {
        let h = rx.next_ok().await;
        let d = &h.json["data"];
        let room = d["room_id"].as_str().unwrap().to_owned();
        let who = d["participant_id"]
            .as_str()
            .or(d["host"].as_str())
            .unwrap_or("")
            .to_owned();
        per_room.entry(room).or_default().push((
            d["version"].as_u64().unwrap(),
            format!("{}:{who}", h.event()),
        ));
    }
    for r in rooms {
        let got = &per_room[r];
        let versions: Vec<u64> = got.iter().map(|(v, _)| *v).collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "room {r} out of order: {got:?}"
        );
        let mut want = Vec::new();
        for i in 0..n {
            want.push(format!("participant_joined:m{i}"));
            if i == 0 {
                want.push("host_changed:m0".to_owned());
            }
        }
        for i in 0..n {
            want.push(format!("participant_left:m{i}"));
            if i + 1 < n {
                want.push(format!("host_changed:m{}", i + 1));
            }
        }
        let got_events: Vec<String> = got.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(got_events, want, "room {r}");
    }
    assert!(
        metric(
            &s,
            "rollcall_webhook_failures_total",
            "{endpoint=\"test-hook\"}"
        )
        .await
        .unwrap_or(0.0)
            >= 1.0,
        "the receiver failed some requests"
    );
}

/// An endpoint that stays down: the queue holds `max_queue`, the rest is dropped and counted,
/// and the room never waits for it.
#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let mut rx = receiver(vec![], Answer::Status(503), 0).await;
    let ep = WebhookConfig {
        max_queue: 2,
        concurrency: 1,
        backoff_initial_secs: 30.0,
        backoff_max_secs: 30.0,
        ..endpoint(rx.url())
    };
    let s = start_with(move |f| f.webhooks = vec![ep]).await;
    let started = std::time::Instant::now();
    let mut clients = Vec::new();
    for m in ["a", "b", "c", "d"] {
        clients.push(s.joined(m, "down").await.0);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "joins never wait for webhooks"
    );
    // 4 joins + the first host = 5 deliveries: 2 held (one in flight), 3 dropped.
    metric_becomes(
        &s,
        "rollcall_webhook_dropped_total",
        "{endpoint=\"test-hook\",reason=\"queue_full\"}",
        3.0,
    )
    .await;
    metric_becomes(
        &s,
        "rollcall_webhook_queue_depth",
        "{endpoint=\"test-hook\"}",
        2.0,
    )
    .await;
    let first = rx.next().await;
    assert_eq!(first.status, 503);
    assert_eq!(first.event(), "participant_joined");
    rx.silent(Duration::from_millis(200)).await; // the next attempt is 30 s away
    assert_eq!(
        metric(
            &s,
            "rollcall_webhook_deliveries_total",
            "{endpoint=\"test-hook\"}"
        )
        .await,
        Some(0.0)
    );
}

/// After `max_attempts` failures a delivery is given up, counted, and the next one goes out.
#[tokio::test]
async fn deliveries_are_given_up_after_max_attempts() {
    let mut rx = receiver(
        vec![Answer::Status(500), Answer::Status(500)],
        Answer::Status(200),
        0,
    )
    .await;
    let ep = WebhookConfig {
        max_attempts: 2,
        concurrency: 1,
        events: vec!["participant_joined".into()],
        ..endpoint(rx.url())
    };
    let s = start_with(move |f| f.webhooks = vec![ep]).await;
    let (_a, _) = s.joined("a", "giveup").await;
    let (_b, _) = s.joined("b", "giveup").await;
    let one = rx.next().await;
    let two = rx.next().await;
    let three = rx.next().await;
    assert_eq!(one.json["data"]["participant_id"], "a");
    assert_eq!(two.json["data"]["participant_id"], "a");
    assert_eq!((one.status, two.status), (500, 500));
    assert_eq!(three.json["data"]["participant_id"], "b");
    assert_eq!(three.status, 200);
    metric_becomes(
        &s,
        "rollcall_webhook_dropped_total",
        "{endpoint=\"test-hook\",reason=\"gave_up\"}",
        1.0,
    )
    .await;
}

/// The new-user story: phone callers in a video room; the backend removes one (`left`): the
/// filtered endpoint gets exactly one `participant_left` naming the caller, and `/metrics`
/// counts one `left` event with reason `left`.
#[tokio::test]
async fn phone_left_reaches_a_filtered_endpoint() {
    let mut rx = receiver(vec![], Answer::Status(200), 0).await;
    let mut ep = endpoint(rx.url());
    ep.events = vec!["participant_left".into()];
    let s = start_with(move |f| f.webhooks = vec![ep]).await;
    let (room, _h) =
        video_room_with_phones(&s, &[("call-1", "+1 555 0101"), ("call-2", "Reception")]).await;
    let mut watcher = s.connect_token(ADMIN).await;
    watcher.watch(room.as_str()).await;
    let path = format!("/v1/rooms/{}/leave", room.as_str().replace(':', "%3A"));
    let (st, body) = s.admin_post(&path, json!({"members": ["call-1"]})).await;
    assert_eq!(st, 200, "{body}");
    let ev = watcher.expect("left").await;
    assert_eq!(ev["reason"], "left");

    let h = rx.next().await;
    verify(&h);
    assert_eq!(h.event(), "participant_left");
    let d = &h.json["data"];
    assert_eq!(d["room_id"], room.as_str());
    assert_eq!(d["participant_id"], "call-1");
    assert_eq!(d["call_id"], "call-1");
    assert_eq!(d["name"], "+1 555 0101");
    assert_eq!(d["type"], "phone");
    assert_eq!(d["reason"], "left");
    rx.silent(Duration::from_millis(150)).await;
    assert_eq!(
        metric(
            &s,
            "rollcall_events_total",
            "{type=\"left\",reason=\"left\"}"
        )
        .await,
        Some(1.0)
    );
}

/// A host leaving hands the host on (`host_changed` after the `participant_left`), and a room
/// closing with people in it announces `room_closed` listing them.
#[tokio::test]
async fn host_changes_and_room_close_are_announced() {
    let mut rx = receiver(vec![], Answer::Status(200), 0).await;
    let mut ep = endpoint(rx.url());
    ep.events = vec![
        "participant_left".into(),
        "host_changed".into(),
        "room_closed".into(),
    ];
    let s = start_with(move |f| f.webhooks = vec![ep]).await;
    let (room, h) =
        video_room_with_phones(&s, &[("p1", "One"), ("p2", "Two"), ("p3", "Three")]).await;
    assert_eq!(rx.next().await.event(), "host_changed"); // p1, the first member
    let r = h
        .remove(
            vec![MemberId::from("p1")],
            rollcall::protocol::LeaveReason::Left,
            None,
            true,
        )
        .await
        .expect("removed");
    assert_eq!(r.removed.len(), 1);
    let left = rx.next().await;
    assert_eq!(left.event(), "participant_left");
    assert_eq!(left.json["data"]["participant_id"], "p1");
    let host = rx.next().await;
    assert_eq!(host.event(), "host_changed");
    assert_eq!(host.json["data"]["host"], "p2");
    assert_eq!(host.json["data"]["previous_host"], "p1");
    assert_eq!(host.json["data"]["version"], left.json["data"]["version"]);
    h.close("ended").await.expect("closed");
    let closed = rx.next().await;
    assert_eq!(closed.event(), "room_closed");
    assert_eq!(closed.json["data"]["room_id"], room.as_str());
    assert_eq!(closed.json["data"]["reason"], "ended");
    assert_eq!(closed.json["data"]["participants"], json!(["p2", "p3"]));
}
