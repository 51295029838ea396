//! rollcall on a 3-master Redis Cluster (`--redis-cluster`, `protocol/cluster.md`, "Redis
//! Cluster"): two nodes given the masters as seeds; rooms whose keys sit on each of the three
//! masters, each room's stream across both nodes, its keys on the master of their slot, a killed
//! node's member leaving with `timeout` (heartbeats, sweep and takeover across slots), and
//! every webhook delivered once through the nodes' outboxes, which end empty; the nodes talk
//! over sharded pub/sub (`SPUBLISH`), never the cluster-wide `PUBLISH`.

use std::time::Duration;

use serde_json::json;

use crate::support::cluster::{fold, lefts_of, node_options, Peer, NODE_TTL_SECS};
use crate::support::process::Rollcall;
use crate::support::redis::RedisCluster;
use crate::support::webhook::{receiver, Answer, HOOK_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_across_nodes_on_a_three_master_redis_cluster() {
    let Some(redis) = RedisCluster::start("cluster::redis_cluster") else {
        return;
    };
    let mut hook = receiver(vec![], Answer::Status(200), 0).await;
    let node = |i: usize| {
        let mut o = node_options(&redis.urls(), i, 0.0).arg("--redis-cluster");
        o.config = Some(format!(
            "[[webhooks]]\nurl = \"{}\"\nsecret = \"{HOOK_SECRET}\"\n\
             backoff_initial_secs = 0.05\nbackoff_max_secs = 0.3\n",
            hook.url()
        ));
        Rollcall::start(o)
    };
    let (n1, mut n2) = (node(1), node(2));
    let ws = |n: &Rollcall| format!("ws://{}/v1/ws", n.addr);
    let bound = Duration::from_secs(5);

    // Rooms until their leases sit on all three masters.
    let mut rooms = Vec::new();
    let mut masters = std::collections::BTreeSet::new();
    for k in 0.. {
        let room = format!("rc-room-{k}");
        masters.insert(redis.master_of(&format!("rc:{{r:{room}}}:lease")).port());
        rooms.push(room);
        if masters.len() == 3 {
            break;
        }
    }
    let mut a = Peer::connect(&ws(&n1), "ann").await;
    let mut b = Peer::connect(&ws(&n2), "bob").await;
    for room in &rooms {
        a.join(room).await;
        b.join(room).await;
        for p in [&a, &b] {
            assert!(
                p.sees(bound, room, &["ann", "bob"]).await,
                "{} in {room}: {:?}\n{}{}",
                p.sub,
                p.msgs(),
                n1.logs(),
                n2.logs()
            );
        }
        // The room's keys live on the master of their slot, as the cluster routes them.
        for key in ["lease", "rec"] {
            let key = format!("rc:{{r:{room}}}:{key}");
            let owner = redis.master_of(&key);
            let present = crate::support::durable::eventually(bound, || {
                std::future::ready(owner.command(&["EXISTS", &key]).trim() == "1")
            })
            .await;
            assert!(
                present,
                "{key} on the master of its slot ({})",
                owner.port()
            );
        }
    }
    let room = &rooms[0];
    b.ok(json!({"type": "state", "room": room, "state": {"on": "cluster"}}))
        .await;
    let seen = a
        .saw(bound, |m| {
            m["type"] == "state" && m["state"]["on"] == "cluster"
        })
        .await;
    assert!(seen, "ann sees bob's state: {:?}", a.msgs());

    // Node 2 dies: bob leaves every room with `timeout`, once, within the bound.
    n2.sigkill();
    let killed = std::time::Instant::now();
    for room in &rooms {
        assert!(
            a.sees(Duration::from_secs(10), room, &["ann"]).await,
            "bob still in {room} 10 s after node 2 died: {:?}\n{}",
            a.msgs(),
            n1.logs()
        );
    }
    tokio::time::sleep(Duration::from_secs(NODE_TTL_SECS)).await;
    for room in &rooms {
        let msgs = a.msgs();
        let lefts = lefts_of(&msgs, room, "bob");
        assert_eq!(lefts.len(), 1, "{room}: one left for bob: {lefts:?}");
        assert_eq!(lefts[0]["reason"], "timeout");
        let v = fold(&msgs, room).expect("a panel");
        assert_eq!(v.members.iter().collect::<Vec<_>>(), ["ann"]);
    }

    // Webhooks: ann and bob joined, bob left, in every room, each delivered once.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    while let Ok(Some(h)) =
        tokio::time::timeout(Duration::from_millis(1500), hook.hits.recv()).await
    {
        let d = &h.json["data"];
        if (200..300).contains(&h.status) && h.event().starts_with("participant_") {
            let key = format!("{} {} {}", d["room_id"], h.event(), d["participant_id"]);
            *seen.entry(key).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), rooms.len() * 3, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "each once: {seen:?}");
    for m in &redis.masters {
        assert_eq!(
            m.command(&["KEYS", "rc:{n:*}:hook*"]).trim(),
            "",
            "outboxes empty"
        );
    }
    // The inboxes are sharded channels: every node-to-node message went by SPUBLISH, none by
    // the cluster-wide PUBLISH.
    let stats: String = redis
        .masters
        .iter()
        .map(|m| m.command(&["INFO", "commandstats"]))
        .collect();
    assert!(
        stats.contains("cmdstat_spublish:"),
        "SPUBLISH used: {stats}"
    );
    assert!(!stats.contains("cmdstat_publish:"), "no PUBLISH: {stats}");
    let metrics = n1.metrics().await;
    let failures = crate::support::sample(&metrics, "rollcall_webhook_outbox_failures_total", "");
    assert!(failures == Some(0.0), "no outbox write failed");
    eprintln!(
        "a_room_across_nodes_on_a_three_master_redis_cluster: {} rooms over {} masters; bob gone {:?} after SIGKILL",
        rooms.len(),
        masters.len(),
        killed.elapsed()
    );
}
