//! Webhooks once per cluster (issue 12, invariant 4): two nodes with the same `[[webhooks]]`
//! endpoint; a room with members on both nodes; every event reaches the receiver once, not once
//! per node, in version order; a dead node's room that no other node watches still announces
//! its members leaving; and what a node could not deliver before it died goes out from the
//! survivor that takes its room (or from the node itself, restarted under its id), and what a
//! drained node could not deliver goes out from a survivor too.

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
    hooked_node_with(redis, keys, "", hook, id, extra)
}

/// [`hooked_node`] with `top` at the top of its configuration.
fn hooked_node_with(
    redis: &RedisServer,
    keys: &SessionKeys,
    top: &str,
    hook: &str,
    id: &str,
    extra: &[&str],
) -> Rollcall {
    let o = Options::config(durable::config(keys, top, Some(hook)));
    let args = ["--ephemeral", "--redis-url", &redis.url(), "--node-id", id];
    let o = args
        .iter()
        .chain(extra)
        .chain(&["--grace-secs", "0"])
        .fold(o, |o, a| o.arg(*a));
    Rollcall::start(o)
}

/// Whether `node`'s outbox in Redis holds at least `n` deliveries for `room` within 5 s.
async fn outbox_holds(redis: &RedisServer, node: &str, room: &str, n: u32) -> bool {
    let key = format!("rc:{{n:{node}}}:hooks:{room}");
    durable::eventually(Duration::from_secs(5), || {
        let held = redis.command(&["HLEN", &key]).parse::<u32>().unwrap_or(0);
        std::future::ready(held >= n)
    })
    .await
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
    // Delivered: nothing left in either node's outbox in Redis.
    let drained = durable::eventually(Duration::from_secs(5), || {
        std::future::ready(redis.command(&["KEYS", "rc:{n:*}:hook*"]).trim().is_empty())
    })
    .await;
    assert!(drained, "{}", redis.command(&["KEYS", "rc:{n:*}:hook*"]));
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

/// A node dies with webhooks it could not deliver yet (its endpoint was refusing them): the
/// survivor that takes the room over delivers that backlog first, then the dead member's
/// `timeout` leave, each once and in version order, and the dead node's outbox in Redis is
/// empty afterwards (at least once across a node that never comes back).
#[tokio::test]
async fn a_dead_nodes_undelivered_webhooks_go_out_from_a_survivor_first() {
    let Some(redis) = RedisServer::start("webhooks-backlog") else {
        return;
    };
    let mut hook = receiver(vec![], Answer::Status(200), 0).await;
    hook.refuse(true);
    let keys = SessionKeys::new();
    let ttl = crate::support::cluster::NODE_TTL_SECS.to_string();
    let node = |i: usize| {
        let extra = ["--node-ttl-secs", ttl.as_str()];
        hooked_node(&redis, &keys, &hook.url(), &format!("b{i}"), &extra)
    };
    let (n1, mut n2) = (node(1), node(2));
    let ws = |n: &Rollcall| format!("ws://{}/v1/ws", n.addr);
    let mut early = durable::connect(&ws(&n2), &durable::token("early")).await;
    early
        .send(json!({"type": "join", "room": "backlog", "ref": 1}))
        .await;
    acked(&mut early).await;
    let mut late = durable::connect(&ws(&n1), &durable::token("late")).await;
    late.send(json!({"type": "join", "room": "backlog", "ref": 2}))
        .await;
    acked(&mut late).await;
    // Node 2 owns the room: its events (early joined, host, late joined) wait in its outbox
    // while the endpoint refuses them.
    let recorded = durable::eventually(Duration::from_secs(5), || {
        let rec = redis.command(&["GET", "rc:{r:backlog}:rec"]);
        std::future::ready(rec.contains("late"))
    })
    .await;
    assert!(recorded, "the room's record holds late");
    let kept = outbox_holds(&redis, "b2", "backlog", 3).await;
    assert!(kept, "node 2's outbox holds the room's three events");
    while let Ok(Some(h)) = tokio::time::timeout(Duration::from_millis(300), hook.hits.recv()).await
    {
        assert_eq!(h.status, 503, "refused while node 2 lives: {}", h.json);
    }

    n2.sigkill();
    hook.refuse(false);
    let killed = std::time::Instant::now();
    let mut ok = Vec::new();
    while killed.elapsed() < Duration::from_secs(12) {
        let Ok(Some(h)) = tokio::time::timeout(Duration::from_millis(1500), hook.hits.recv()).await
        else {
            if ok
                .iter()
                .any(|(e, p, _): &(String, String, u64)| e == "participant_left" && p == "early")
            {
                break; // the leave came and nothing more after it
            }
            continue;
        };
        if (200..300).contains(&h.status) {
            let d = &h.json["data"];
            if h.event() == "participant_left" {
                assert_eq!(d["reason"], "timeout", "{d}");
            }
            let who = d["participant_id"].as_str().unwrap_or("").to_owned();
            ok.push((
                h.event().to_owned(),
                who,
                d["version"].as_u64().unwrap_or(0),
            ));
        }
    }
    let logs = || format!("{}{}", n1.logs(), n1.stderr());
    let events: Vec<String> = ok.iter().map(|(e, p, _)| format!("{e}:{p}")).collect();
    let joined = |p: &str| {
        events
            .iter()
            .position(|e| *e == format!("participant_joined:{p}"))
    };
    let left = events.iter().position(|e| e == "participant_left:early");
    assert!(
        joined("early").is_some() && joined("late").is_some() && left.is_some(),
        "the backlog and the leave were delivered: {events:?}\n{}",
        logs()
    );
    assert!(
        joined("early") < left && joined("late") < left,
        "the backlog first: {events:?}"
    );
    let mut unique = ok.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ok.len(), "each once: {ok:?}");
    let versions: Vec<u64> = ok.iter().map(|(_, _, v)| *v).collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "in version order: {ok:?}"
    );
    let drained = durable::eventually(Duration::from_secs(5), || {
        let keys = redis.command(&["KEYS", "rc:{n:*}:hook*"]);
        std::future::ready(keys.trim().is_empty())
    })
    .await;
    assert!(
        drained,
        "no outbox left: {}",
        redis.command(&["KEYS", "rc:{n:*}:hook*"])
    );
    let metrics = n1.metrics().await;
    let adopted =
        crate::support::sample(&metrics, "rollcall_webhook_adopted_total", "").unwrap_or(0.0);
    assert!(
        adopted >= 3.0,
        "node 1 adopted the three: {}",
        metrics
            .lines()
            .filter(|l| l.contains("adopted"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(late);
}

/// An ephemeral node killed with deliveries its endpoint refused and started again under the
/// same id (before anyone declared it dead) sends them from its outbox in Redis: its store kept
/// nothing, Redis did.
#[tokio::test]
async fn a_node_restarted_under_its_id_sends_what_its_outbox_kept() {
    let Some(redis) = RedisServer::start("webhooks-restart") else {
        return;
    };
    let mut hook = receiver(vec![], Answer::Status(200), 0).await;
    hook.refuse(true);
    let keys = SessionKeys::new();
    let mut n = hooked_node(&redis, &keys, &hook.url(), "r1", &[]);
    let mut solo =
        durable::connect(&format!("ws://{}/v1/ws", n.addr), &durable::token("solo")).await;
    solo.send(json!({"type": "join", "room": "kept", "ref": 1}))
        .await;
    acked(&mut solo).await;
    assert!(
        outbox_holds(&redis, "r1", "kept", 1).await,
        "the join waits in the outbox"
    );
    n.sigkill();
    drop(solo);
    hook.refuse(false);
    let n = hooked_node(&redis, &keys, &hook.url(), "r1", &[]);
    let mut joined = 0;
    while let Ok(Some(h)) = tokio::time::timeout(Duration::from_secs(3), hook.hits.recv()).await {
        if (200..300).contains(&h.status)
            && h.event() == "participant_joined"
            && h.json["data"]["participant_id"] == "solo"
        {
            joined += 1;
        }
    }
    assert_eq!(joined, 1, "sent once after the restart\n{}", n.logs());
    assert_eq!(
        redis.command(&["EXISTS", "rc:{n:r1}:hooks:kept"]),
        "0",
        "and taken off the outbox"
    );
}

/// A node drained (SIGTERM) while its endpoint refuses keeps what it could not deliver in its
/// outbox when it exits; a survivor sends it, once, and the node is forgotten (6 TTLs after it
/// left) only with its outbox empty.
#[tokio::test]
async fn a_drained_nodes_undelivered_webhooks_go_out_from_a_survivor() {
    let Some(redis) = RedisServer::start("webhooks-drained") else {
        return;
    };
    let mut hook = receiver(vec![], Answer::Status(200), 0).await;
    hook.refuse(true);
    let keys = SessionKeys::new();
    let ttl = crate::support::cluster::NODE_TTL_SECS.to_string();
    let node = |i: usize| {
        let top = "shutdown_timeout_secs = 1.0";
        let extra = ["--node-ttl-secs", ttl.as_str()];
        hooked_node_with(&redis, &keys, top, &hook.url(), &format!("d{i}"), &extra)
    };
    let (n1, mut n2) = (node(1), node(2));
    let mut solo =
        durable::connect(&format!("ws://{}/v1/ws", n2.addr), &durable::token("solo")).await;
    solo.send(json!({"type": "join", "room": "drained", "ref": 1}))
        .await;
    acked(&mut solo).await;
    assert!(
        outbox_holds(&redis, "d2", "drained", 1).await,
        "node 2's outbox holds the join"
    );
    n2.sigterm();
    assert!(
        n2.wait_exit(Duration::from_secs(10)).is_some(),
        "node 2 exits"
    );
    drop(solo);
    hook.refuse(false);
    let left = std::time::Instant::now();
    let mut joined = 0;
    while left.elapsed() < Duration::from_secs(25) && joined == 0 {
        let Ok(Some(h)) = tokio::time::timeout(Duration::from_secs(1), hook.hits.recv()).await
        else {
            continue;
        };
        if (200..300).contains(&h.status)
            && h.event() == "participant_joined"
            && h.json["data"]["participant_id"] == "solo"
        {
            joined += 1;
        }
    }
    assert_eq!(
        joined,
        1,
        "the drained node's backlog went out\n{}",
        n1.logs()
    );
    let sent = left.elapsed();
    let gone = durable::eventually(Duration::from_secs(20), || {
        let keys = redis.command(&["KEYS", "rc:{n:d2}:hook*"]);
        let nodes = redis.command(&["SMEMBERS", "rc:nodes"]);
        std::future::ready(keys.trim().is_empty() && !nodes.contains("d2"))
    })
    .await;
    assert!(gone, "node 2's outbox is empty and the node forgotten");
    eprintln!(
        "a_drained_nodes_undelivered_webhooks_go_out_from_a_survivor: sent {sent:?}, node forgotten {:?} after the exit",
        left.elapsed()
    );
}
