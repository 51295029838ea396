//! Webhooks once per cluster (issue 12, invariant 4): two nodes with the same `[[webhooks]]`
//! endpoint; a room with members on both nodes; every event reaches the receiver once, not once
//! per node, in version order; and a dead node's room that no other node watches still announces
//! its members leaving.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::support::durable::{self, SessionKeys};
use crate::support::process::{Options, Rollcall};
use crate::support::redis::RedisServer;
use crate::support::webhook::{receiver, Answer};

/// Reads until the request's `ack` (an `error` fails the test).
async fn acked(c: &mut crate::support::Client) {
    loop {
        let v = c.recv().await;
        match v["type"].as_str() {
            Some("ack") => return,
            Some("error") => panic!("refused: {v}"),
            _ => {}
        }
    }
}

/// An ephemeral node `id` on `redis` (no reconnect grace) whose `[[webhooks]]` endpoint is
/// `hook`, with `extra` arguments.
fn hooked_node(
    redis: &RedisServer,
    keys: &SessionKeys,
    hook: &str,
    id: &str,
    extra: &[&str],
) -> Rollcall {
    let o = Options::config(durable::config(keys, "", Some(hook)));
    let args = ["--ephemeral", "--redis-url", &redis.url(), "--node-id", id];
    let o = args
        .iter()
        .chain(extra)
        .chain(&["--grace-secs", "0"])
        .fold(o, |o, a| o.arg(*a));
    Rollcall::start(o)
}

#[tokio::test]
async fn each_event_is_delivered_once_per_cluster() {
    let Some(redis) = RedisServer::start("webhooks") else {
        return;
    };
    let mut hook = receiver(vec![], Answer::Status(200), 0).await;
    let keys = SessionKeys::new();
    let node = |i: usize| hooked_node(&redis, &keys, &hook.url(), &format!("w{i}"), &[]);
    let (n1, n2) = (node(1), node(2));
    let ws = |n: &Rollcall| format!("ws://{}/v1/ws", n.addr);
    let mut a = durable::connect(&ws(&n1), &durable::token("wa")).await;
    a.send(json!({"type": "join", "room": "hooked", "ref": 1}))
        .await;
    acked(&mut a).await;
    let mut b = durable::connect(&ws(&n2), &durable::token("wb")).await;
    b.send(json!({"type": "join", "room": "hooked", "ref": 2}))
        .await;
    acked(&mut b).await;
    b.send(json!({"type": "leave", "room": "hooked", "ref": 3}))
        .await;
    acked(&mut b).await;
    let mut c = durable::connect(&ws(&n2), &durable::token("wc")).await;
    c.send(json!({"type": "join", "room": "hooked", "ref": 4}))
        .await;
    acked(&mut c).await;
    drop(c); // leaves with `disconnect` (no grace)

    // wa, wb, wc joined; wb left; wc disconnected; wa became host: six events, each once.
    let mut seen: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
    let mut versions = Vec::new();
    while let Ok(Some(h)) =
        tokio::time::timeout(Duration::from_millis(1500), hook.hits.recv()).await
    {
        if !(200..300).contains(&h.status) {
            continue;
        }
        let d = &h.json["data"];
        let key = (
            h.event().to_owned(),
            d["participant_id"].as_str().unwrap_or("").to_owned(),
            d["version"].as_u64().unwrap_or(0),
        );
        versions.push(key.2);
        *seen.entry(key).or_default() += 1;
    }
    let events: Vec<_> = seen.keys().map(|(e, p, _)| format!("{e}:{p}")).collect();
    assert_eq!(
        events,
        [
            "host_changed:",
            "participant_joined:wa",
            "participant_joined:wb",
            "participant_joined:wc",
            "participant_left:wb",
            "participant_left:wc"
        ],
        "{seen:?}"
    );
    assert!(seen.values().all(|n| *n == 1), "each once: {seen:?}");
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(versions, sorted, "in version order");
}

/// A room whose members and owner were all on a node that dies, which no other node's socket
/// watches: a survivor takes it over from the dead node's room list, and its member leaves
/// with `timeout` within the bound, once, as the webhook receiver sees.
#[tokio::test]
async fn a_dead_nodes_unwatched_room_still_announces_its_members_leaving() {
    let Some(redis) = RedisServer::start("webhooks-unwatched") else {
        return;
    };
    let mut hook = receiver(vec![], Answer::Status(200), 0).await;
    let keys = SessionKeys::new();
    let ttl = crate::support::cluster::NODE_TTL_SECS.to_string();
    let node = |i: usize| {
        let extra = ["--node-ttl-secs", ttl.as_str()];
        hooked_node(&redis, &keys, &hook.url(), &format!("u{i}"), &extra)
    };
    let (n1, mut n2) = (node(1), node(2));
    let mut solo =
        durable::connect(&format!("ws://{}/v1/ws", n2.addr), &durable::token("solo")).await;
    solo.send(json!({"type": "join", "room": "unwatched", "ref": 1}))
        .await;
    acked(&mut solo).await;
    let lease = redis.command(&["GET", "rc:{r:unwatched}:lease"]);
    assert!(lease.starts_with("u2"), "node 2 owns the room: {lease}");
    // The join is in the room's record (written through right after it, asynchronously): what
    // a new owner resumes from. A kill before that write is the documented crash window.
    let recorded = durable::eventually(Duration::from_secs(5), || {
        let rec = redis.command(&["GET", "rc:{r:unwatched}:rec"]);
        std::future::ready(rec.contains("solo"))
    })
    .await;
    assert!(recorded, "the room's record holds solo");

    n2.sigkill();
    let killed = std::time::Instant::now();
    let mut lefts = Vec::new();
    while killed.elapsed() < Duration::from_secs(12) {
        let Ok(Some(h)) = tokio::time::timeout(Duration::from_millis(500), hook.hits.recv()).await
        else {
            if !lefts.is_empty() {
                break; // and nothing more came
            }
            continue;
        };
        if (200..300).contains(&h.status)
            && h.event() == "participant_left"
            && h.json["data"]["participant_id"] == "solo"
        {
            lefts.push((killed.elapsed(), h.json["data"].clone()));
        }
    }
    assert_eq!(
        lefts.len(),
        1,
        "solo leaves once: {lefts:?}\n{}{}",
        n1.logs(),
        n1.stderr()
    );
    let (took, data) = &lefts[0];
    assert_eq!(data["reason"], "timeout", "{data}");
    assert!(
        *took <= Duration::from_secs(10),
        "within the bound: {took:?}"
    );
    let lease = redis.command(&["GET", "rc:{r:unwatched}:lease"]);
    assert!(
        !lease.starts_with("u2"),
        "the dead node holds the room no more: {lease}"
    );
    eprintln!("a_dead_nodes_unwatched_room_still_announces_its_members_leaving: left {took:?} after SIGKILL");
}
