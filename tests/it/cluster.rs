//! Several `rollcall` processes on one Redis (issue 12, `protocol/cluster.md`), as real
//! processes with real sockets: one ordered stream per room whichever node a socket is on, kicks
//! and bans across nodes, a SIGKILLed node's members leaving with `timeout` (once each, within
//! 10 s, whether the node held members or owned the room), and in the submodules: a join storm
//! of 1,000 sockets over three nodes (`storm`), a drained node, a member hopping nodes in its
//! grace, one member on two nodes (`handover`), room limits and atomic batches (`rules`), the
//! façades through any node (`facades`) and their indexes (`indexes`: names, listings, invite
//! codes, caps), webhooks once per cluster (`webhooks`), a paused node
//! fencing itself (`pause`), Redis going away and coming back (`faults`), and a 3-master Redis
//! Cluster (`redis_cluster`). Every wait is bounded; each test stays under 30 s. Without
//! `redis-server` each test prints `SKIPPED:` (a failure under `ROLLCALL_REQUIRE_REDIS=1`).

mod facades;
mod faults;
mod handover;
mod indexes;
mod pause;
mod redis_cluster;
mod rules;
mod storm;
mod webhooks;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::cluster::{fold, lefts_of, versioned, Cluster, Peer, NODE_TTL_SECS};

/// The bound on a dead node's members leaving (`protocol/cluster.md`, "Node death").
const DEATH_BOUND: Duration = Duration::from_secs(10);
/// How long an event may take to reach every socket of the cluster.
const FANOUT: Duration = Duration::from_secs(5);

/// A room's `(epoch, version)`.
type Key = (String, u64);
/// A panel as one socket received it: the node that served it, the socket's member, the raw text.
type Served = (usize, String, String);

/// A socket's versioned messages of `room` after its first panel: `(epoch, version, type,
/// payload)` for each event.
fn events_after_panel(p: &Peer, room: &str) -> Vec<(String, u64, String, Value)> {
    let msgs = p.msgs();
    versioned(&msgs, room)
        .into_iter()
        .skip_while(|m| m["type"] != "panel")
        .filter(|m| m["type"] != "panel")
        .map(|m| {
            (
                m["epoch"].as_str().unwrap_or("").to_owned(),
                m["version"].as_u64().unwrap_or(0),
                m["type"].as_str().unwrap_or("").to_owned(),
                m.clone(),
            )
        })
        .collect()
}

/// Asserts that every message in the tapes of `peers` whose `(epoch, version)` is shared is the
/// same event, and that panels of the same `(epoch, version)` are byte-identical text; returns
/// how many `(epoch, version)` keys had panels from more than one node (`nodes[i]` is the node of
/// `peers[i]`).
fn same_stream(room: &str, peers: &[&Peer], nodes: &[usize]) -> usize {
    let mut events: BTreeMap<Key, (Value, String)> = BTreeMap::new();
    let mut panels: BTreeMap<Key, Vec<Served>> = BTreeMap::new();
    for (p, &node) in peers.iter().zip(nodes) {
        let tape = p.tape();
        for (raw, m) in tape.raw.iter().zip(&tape.msgs) {
            if m["room"] != room || !crate::support::durable::is_versioned(m) {
                continue;
            }
            let key = (
                crate::support::durable::epoch(m),
                m["version"].as_u64().expect("a version"),
            );
            if m["type"] == "panel" {
                panels
                    .entry(key)
                    .or_default()
                    .push((node, p.sub.clone(), raw.clone()));
                continue;
            }
            match events.get(&key) {
                Some((seen, by)) => assert_eq!(
                    &m.clone(),
                    seen,
                    "{}'s event at {key:?} differs from {by}'s",
                    p.sub
                ),
                None => {
                    events.insert(key, (m.clone(), p.sub.clone()));
                }
            }
        }
    }
    let mut across = 0;
    for (key, group) in &panels {
        let (_, first_sub, first) = &group[0];
        for (node, sub, raw) in group {
            assert_eq!(
                raw, first,
                "panels of {key:?} differ: {sub} (node {node}) vs {first_sub}"
            );
        }
        if group.iter().any(|g| g.0 != group[0].0) {
            across += 1;
        }
    }
    across
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_across_nodes() {
    let Some(c) = Cluster::start("cluster::one_stream_across_nodes", 2) else {
        return;
    };
    let room = "stream-room";
    let mut a = c.peer(1, "ann").await;
    a.join(room).await;
    let mut b = c.peer(2, "bob").await;
    b.join(room).await;
    let mut w = c.peer(1, "wes").await; // a watcher on node 1
    w.watch(room).await;
    let mut x = c.peer(2, "xia").await; // a watcher on node 2
    x.watch(room).await;
    b.ok(json!({"type": "state", "room": room, "state": {"mood": "ok", "n": 1.5}}))
        .await;
    a.ok(json!({"type": "leave", "room": room})).await;
    for p in [&a, &b, &w, &x] {
        let seen = p
            .saw(FANOUT, |m| {
                m["type"] == "left" && m["room"] == room && m["members"] == json!(["ann"])
            })
            .await;
        assert!(
            seen,
            "{} never saw ann leave: {:?}\n{}",
            p.sub,
            p.msgs(),
            c.logs()
        );
    }
    // Fresh panels of the final version from both nodes: they must be the same bytes.
    w.ok(json!({"type": "sync", "room": room})).await;
    x.ok(json!({"type": "sync", "room": room})).await;

    // The whole stream, as ann saw it from her join: bob joined, bob's state, ann left.
    let seq = events_after_panel(&a, room);
    let kinds: Vec<&str> = seq.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(kinds, ["joined", "state", "left"], "{seq:?}");
    assert_eq!(seq[0].3["members"][0]["id"], "bob");
    assert_eq!(seq[1].3["member"], "bob");
    assert_eq!(seq[1].3["state"], json!({"mood": "ok", "n": 1.5}));
    assert_eq!(seq[2].3["reason"], "leave");
    assert!(
        seq.iter().all(|e| e.0 == seq[0].0),
        "one epoch throughout: {seq:?}"
    );
    // Every other socket saw a suffix of it (from its own panel on), in order.
    for p in [&b, &w, &x] {
        let mine = events_after_panel(p, room);
        assert!(!mine.is_empty(), "{} saw no event", p.sub);
        assert!(
            seq.ends_with(&mine),
            "{}'s stream {mine:?} is not a suffix of ann's {seq:?}",
            p.sub
        );
    }
    // Versions contiguous after each panel, and the final views agree (ann's ends with her
    // own leave; she is detached afterwards).
    for p in [&b, &w, &x] {
        let v = fold(&p.msgs(), room).expect("a panel");
        assert_eq!(v.version, seq[2].1, "{} ends at the last version", p.sub);
        assert_eq!(v.members.iter().collect::<Vec<_>>(), ["bob"], "{}", p.sub);
    }
    fold(&a.msgs(), room).expect("a panel");
    let across = same_stream(room, &[&a, &b, &w, &x], &[1, 2, 1, 2]);
    assert!(
        across >= 1,
        "no (epoch, version) was served as a panel by both nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_across_nodes() {
    let Some(c) = Cluster::start("cluster::kick_across_nodes", 2) else {
        return;
    };
    let room = "kick-room";
    let mut host = c.peer(1, "hal").await;
    host.join(room).await;
    let mut mia = c.peer(2, "mia").await;
    mia.join(room).await;
    assert!(
        host.sees(FANOUT, room, &["hal", "mia"]).await,
        "{}",
        c.logs()
    );
    host.ok(json!({"type": "kick", "room": room, "member": "mia"}))
        .await;

    let kicked = |m: &Value| m["type"] == "kicked" && m["room"] == room;
    assert!(mia.saw(FANOUT, kicked).await, "mia: {:?}", mia.msgs());
    for p in [&host, &mia] {
        let is_left =
            |m: &Value| m["type"] == "left" && m["room"] == room && m["members"] == json!(["mia"]);
        assert!(p.saw(FANOUT, is_left).await, "{}: {:?}", p.sub, p.msgs());
        let msgs = p.msgs();
        let lefts = lefts_of(&msgs, room, "mia");
        assert_eq!(lefts.len(), 1, "{}: {lefts:?}", p.sub);
        assert_eq!(lefts[0]["reason"], "kick", "{}", lefts[0]);
        assert_eq!(lefts[0]["by"], "hal", "{}", lefts[0]);
    }
    // On mia's socket: her `left`, then `kicked` (by hal).
    let msgs = mia.msgs();
    let l = msgs.iter().position(|m| m["type"] == "left").unwrap();
    let k = msgs.iter().position(kicked).unwrap();
    assert!(l < k, "left before kicked: {msgs:?}");
    assert_eq!(msgs[k]["by"], "hal");
    assert!(host.sees(FANOUT, room, &["hal"]).await);

    // The ban holds on node 2, on her old socket and on a new one (and on node 1).
    let again = json!({"type": "join", "room": room});
    let r = mia.request(again.clone()).await;
    assert_eq!(r["code"], "banned", "{r}");
    for node in [2, 1] {
        let mut fresh = c.peer(node, "mia").await;
        let r = fresh.request(again.clone()).await;
        assert_eq!(r["code"], "banned", "node {node}: {r}");
    }
    assert!(host.sees(FANOUT, room, &["hal"]).await);
}

/// Waits until each of `peers` sees exactly `members` in `room`.
async fn all_see(c: &Cluster, peers: &[&Peer], room: &str, members: &[&str]) {
    for p in peers {
        assert!(
            p.sees(FANOUT, room, members).await,
            "{} does not see {members:?}: {:?}\n{}",
            p.sub,
            p.msgs(),
            c.logs()
        );
    }
}

/// A causal barrier on `room`: `by` sets a state and every one of `peers` sees it.
async fn barrier(room: &str, by: &mut Peer, peers: &[&Peer], mark: &str) {
    by.ok(json!({"type": "state", "room": room, "state": {"mark": mark}}))
        .await;
    for p in peers.iter().copied().chain([&*by]) {
        let seen = p
            .saw(FANOUT, |m| {
                m["type"] == "state" && m["room"] == room && m["state"]["mark"] == mark
            })
            .await;
        assert!(seen, "{} never saw {mark} in {room}: {:?}", p.sub, p.msgs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_node_leaves_with_timeout() {
    let Some(mut c) = Cluster::start("cluster::a_killed_member_node_leaves_with_timeout", 3) else {
        return;
    };
    let room = "member-death";
    let mut p1 = c.peer(1, "one").await;
    p1.join(room).await;
    let mut p2 = c.peer(2, "two").await;
    p2.join(room).await;
    let mut p3 = c.peer(3, "three").await;
    p3.join(room).await;
    all_see(&c, &[&p1, &p2, &p3], room, &["one", "two", "three"]).await;

    let killed = std::time::Instant::now();
    c.kill(3);
    for p in [&p1, &p2] {
        let gone = |m: &Value| {
            m["type"] == "left"
                && m["room"] == room
                && m["members"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|id| id == "three"))
        };
        assert!(
            p.saw(DEATH_BOUND.saturating_sub(killed.elapsed()), gone)
                .await,
            "{} did not see three leave within {DEATH_BOUND:?}: {:?}\n{}",
            p.sub,
            p.msgs(),
            c.logs()
        );
    }
    let took = killed.elapsed();
    // Past one more TTL a second sweeper would have acted too; then a barrier orders everything
    // emitted before it ahead of the mark.
    tokio::time::sleep(Duration::from_secs(NODE_TTL_SECS)).await;
    barrier(room, &mut p1, &[&p2], "after-death").await;
    for p in [&p1, &p2] {
        let msgs = p.msgs();
        let lefts: Vec<&Value> = msgs
            .iter()
            .filter(|m| m["type"] == "left" && m["room"] == room)
            .collect();
        assert_eq!(lefts.len(), 1, "{}: exactly one left: {lefts:?}", p.sub);
        assert_eq!(lefts[0]["members"], json!(["three"]), "{}", lefts[0]);
        assert_eq!(lefts[0]["reason"], "timeout", "{}", lefts[0]);
        let v = fold(&msgs, room).expect("a panel");
        assert_eq!(v.members.iter().collect::<Vec<_>>(), ["one", "two"]);
    }
    eprintln!("a_killed_member_node_leaves_with_timeout: left seen {took:?} after SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_node() {
    let Some(mut c) = Cluster::start("cluster::a_killed_owner_node", 3) else {
        return;
    };
    let room = "owner-death";
    let mut p1 = c.peer(1, "own").await; // first join: node 1 owns the room
    p1.join(room).await;
    let mut p2 = c.peer(2, "pat").await;
    p2.join(room).await;
    let mut p3 = c.peer(3, "quin").await;
    p3.join(room).await;
    all_see(&c, &[&p1, &p2, &p3], room, &["own", "pat", "quin"]).await;
    // The room's lease (`protocol/cluster.md`, "Keys": `<node>:<fence>`, or the bare node id)
    // names node 1.
    let lease_key = format!("rc:{{r:{room}}}:lease");
    let holder = |lease: &str| lease.split(':').next().unwrap_or("").to_owned();
    let lease = c.redis.command(&["GET", &lease_key]);
    assert_eq!(
        holder(&lease),
        "n1",
        "node 1 owns {room}: {lease_key} = {lease}"
    );

    let killed = std::time::Instant::now();
    c.kill(1);
    // Either a `left` (timeout) under the old epoch or a new epoch's panel without "own": the
    // fold takes both; what matters is the final view.
    for p in [&p2, &p3] {
        assert!(
            p.sees(
                DEATH_BOUND.saturating_sub(killed.elapsed()),
                room,
                &["pat", "quin"]
            )
            .await,
            "{} still sees the dead owner's member after {DEATH_BOUND:?}: {:?}\n{}",
            p.sub,
            p.msgs(),
            c.logs()
        );
        let msgs = p.msgs();
        for l in lefts_of(&msgs, room, "own") {
            assert_eq!(l["reason"], "timeout", "{}: {l}", p.sub);
        }
        assert!(
            lefts_of(&msgs, room, "own").len() <= 1,
            "{}: at most one left for own",
            p.sub
        );
    }
    let took = killed.elapsed();

    // The room lives on under its new owner: a state change on node 2 reaches node 3 (the
    // first attempt may race the takeover; retried within the bound).
    let mut acked = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while acked.is_none() && std::time::Instant::now() < deadline {
        let req = json!({"type": "state", "room": room, "state": {"after": "failover"}});
        match p2.try_request(req, Duration::from_secs(3)).await {
            Some(r) if r["type"] == "ack" => acked = Some(r),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(
        acked.is_some(),
        "pat's state is never acknowledged: {:?}",
        p2.msgs()
    );
    for p in [&p2, &p3] {
        let seen = p
            .saw(FANOUT, |m| {
                m["type"] == "state" && m["member"] == "pat" && m["state"]["after"] == "failover"
            })
            .await;
        assert!(seen, "{} never saw pat's state: {:?}", p.sub, p.msgs());
        let v = fold(&p.msgs(), room).expect("a panel");
        assert_eq!(v.members.iter().collect::<Vec<_>>(), ["pat", "quin"]);
    }
    let lease = c.redis.command(&["GET", &lease_key]);
    assert!(
        ["n2", "n3"].contains(&holder(&lease).as_str()),
        "a live node owns {room} now: {lease_key} = {lease}"
    );
    let (e2, e3) = (fold(&p2.msgs(), room), fold(&p3.msgs(), room));
    assert_eq!(
        e2.map(|v| (v.epoch, v.version)),
        e3.map(|v| (v.epoch, v.version)),
        "both end at the same (epoch, version)"
    );
    eprintln!("a_killed_owner_node: the owner's member gone {took:?} after SIGKILL");
}
