//! Pipelined requests: a client may send requests without waiting for replies. Replies come in
//! request order, each after the events its request caused, and the result is what one request
//! at a time would have given.

use serde_json::{json, Value};

/// Sends every request at once (no waiting), then reads until the reply to the last one.
async fn burst(c: &mut crate::support::Client, reqs: &[Value]) -> Vec<Value> {
    for r in reqs {
        c.send(r.clone()).await;
    }
    let last = reqs.last().expect("requests")["ref"].clone();
    let mut out = Vec::new();
    loop {
        let v = c.recv().await;
        let done = v["ref"] == last && v["type"] != "state";
        out.push(v);
        if done {
            return out;
        }
    }
}

fn position(msgs: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    msgs.iter()
        .position(f)
        .unwrap_or_else(|| panic!("not found in {msgs:#?}"))
}

fn reply_of(msgs: &[Value], r: &str) -> usize {
    position(msgs, |m| {
        m["ref"] == json!(r) && matches!(m["type"].as_str(), Some("ack" | "error" | "pong"))
    })
}

#[tokio::test]
async fn pipelined_requests_answer_in_order_after_their_effects() {
    let srv = crate::support::start().await;
    let (mut alice, _) = srv.joined("alice", "pipe").await;
    let mut watcher = srv.connect("watcher").await;
    let panel = watcher.watch("pipe").await;
    let v0 = panel["version"].as_u64().unwrap();

    let reqs = [
        json!({"type": "state", "room": "pipe", "state": {"n": 1}, "ref": "s1"}),
        json!({"type": "ping", "ref": "p1"}),
        json!({"type": "state", "room": "pipe", "state": {"n": 2}, "ref": "s2"}),
        json!({"type": "state", "room": "elsewhere", "state": {}, "ref": "x1"}),
        json!({"type": "sync", "room": "pipe", "ref": "y1"}),
        json!({"type": "leave", "room": "pipe", "ref": "l1"}),
        json!({"type": "state", "room": "pipe", "state": {"n": 3}, "ref": "s3"}),
        json!({"type": "join", "room": "pipe", "ref": "j1"}),
        json!({"type": "state", "room": "pipe", "state": {"n": 4}, "ref": "s4"}),
    ];
    let msgs = burst(&mut alice, &reqs).await;

    // Replies in request order.
    let order: Vec<usize> = ["s1", "p1", "s2", "x1", "y1", "l1", "s3", "j1", "s4"]
        .iter()
        .map(|r| reply_of(&msgs, r))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "replies out of order: {order:?} in {msgs:#?}"
    );
    let kind = |r: &str| msgs[reply_of(&msgs, r)]["type"].clone();
    for r in ["s1", "s2", "y1", "l1", "j1", "s4"] {
        assert_eq!(kind(r), "ack", "{r}: {msgs:#?}");
    }
    assert_eq!(kind("p1"), "pong");
    assert_eq!(msgs[reply_of(&msgs, "x1")]["code"], "not_member");
    // Sent after the leave, handled after it: alice was no longer a member.
    assert_eq!(msgs[reply_of(&msgs, "s3")]["code"], "not_member");

    // Each request's effects come before its reply (a later request's effects may come before an
    // earlier reply: the replies wait for the room, the events do not wait for the replies).
    let state = |n: u64| position(&msgs, |m| m["type"] == "state" && m["state"]["n"] == n);
    assert!(state(1) < reply_of(&msgs, "s1"));
    assert!(state(2) < reply_of(&msgs, "s2"));
    let resync = position(&msgs, |m| m["type"] == "panel");
    assert!(state(2) < resync && resync < reply_of(&msgs, "y1"));
    let left = position(&msgs, |m| m["type"] == "left");
    assert!(resync < left && left < reply_of(&msgs, "l1"));
    let rejoined = msgs
        .iter()
        .rposition(|m| m["type"] == "panel")
        .expect("the rejoin's panel");
    // A join runs alone: after every earlier reply.
    assert!(reply_of(&msgs, "s3") < rejoined && rejoined < reply_of(&msgs, "j1"));
    assert!(state(4) < reply_of(&msgs, "s4"));

    // The watcher saw one event per change, in version order, and nothing for the refusals.
    let seen: Vec<Value> = watcher.drain().await;
    let kinds: Vec<&str> = seen.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["state", "state", "left", "joined", "state"],
        "{seen:#?}"
    );
    let versions: Vec<u64> = seen.iter().filter_map(|m| m["version"].as_u64()).collect();
    assert_eq!(versions, (v0 + 1..=v0 + 5).collect::<Vec<_>>());
}

#[tokio::test]
async fn many_requests_in_flight_lose_nothing() {
    let srv = crate::support::start().await;
    let (mut alice, _) = srv.joined("alice", "many").await;
    // Far more than a socket may have in flight: the server stops reading while its replies are
    // pending, and nothing is dropped or reordered.
    let n = 300;
    let reqs: Vec<Value> = (0..n)
        .map(|i| {
            if i % 3 == 0 {
                json!({"type": "ping", "ref": i})
            } else {
                json!({"type": "state", "room": "many", "state": {"i": i}, "ref": i})
            }
        })
        .collect();
    let msgs = burst(&mut alice, &reqs).await;
    let replies: Vec<u64> = msgs
        .iter()
        .filter(|m| matches!(m["type"].as_str(), Some("ack" | "pong")))
        .filter_map(|m| m["ref"].as_u64())
        .collect();
    assert_eq!(replies, (0..n as u64).collect::<Vec<_>>());
    let states: Vec<u64> = msgs
        .iter()
        .filter(|m| m["type"] == "state")
        .filter_map(|m| m["version"].as_u64())
        .collect();
    assert_eq!(states.len(), 200);
    assert!(states.windows(2).all(|w| w[1] == w[0] + 1), "{states:?}");
}
