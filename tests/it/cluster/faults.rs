//! Redis going away under two nodes and coming back empty (`protocol/cluster.md`, "Redis
//! unreachable, Redis restarted"): while it is down a node says so (a socket `join` answers an
//! `error`, or `/healthz` reports `"cluster": {"redis": false}`); once it is back, joins work
//! across nodes again and the room's keys are in the new Redis. And the Redis harness itself.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::cluster::{Cluster, Peer};
use crate::support::redis::{command, RedisServer};

/// One attempt at a room joined from both nodes: `x` (node 1) and `y` (node 2) join `room`, and
/// each sees both within `bound`.
async fn joined_across(x: &mut Peer, y: &mut Peer, room: &str, bound: Duration) -> bool {
    for p in [&mut *x, &mut *y] {
        match p
            .try_request(json!({"type": "join", "room": room}), bound)
            .await
        {
            Some(r) if r["type"] == "ack" => {}
            _ => return false,
        }
    }
    let both = [x.sub.as_str(), y.sub.as_str()];
    x.sees(bound, room, &both).await && y.sees(bound, room, &both).await
}

/// What a node said while Redis was down.
#[derive(Debug, Default)]
struct Down {
    /// The first `error` a join got (node, message).
    error: Option<(usize, Value)>,
    /// The first `/healthz` with `cluster.redis == false` (node, body).
    health: Option<(usize, Value)>,
    /// Joins that got no reply within their bound.
    silent_joins: usize,
    /// Joins acknowledged anyway.
    acked_joins: usize,
    /// Sockets refused (or not upgraded in time).
    refused_sockets: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_clear_errors() {
    let Some(mut c) = Cluster::start("cluster::redis_down_gives_clear_errors", 2) else {
        return;
    };
    let (mut x, mut y) = (c.peer(1, "xavi").await, c.peer(2, "yuki").await);
    assert!(
        joined_across(&mut x, &mut y, "before", Duration::from_secs(5)).await,
        "a room across nodes works before the fault: {:?} {:?}\n{}",
        x.msgs(),
        y.msgs(),
        c.logs()
    );

    c.redis.kill();
    let killed = Instant::now();
    let mut down = Down::default();
    let mut n = 0;
    while killed.elapsed() < Duration::from_secs(10) {
        for node in [1, 2] {
            if let Some((_, v)) = c.get(node, "/healthz").await {
                if v["cluster"]["redis"] == false && down.health.is_none() {
                    down.health = Some((node, v));
                }
            }
        }
        // A fresh socket and a fresh room each time (one socket may be in 32 rooms at most).
        n += 1;
        let node = 1 + n % 2;
        let Some(mut probe) = Peer::try_connect(&c.ws(node), &format!("probe{n}")).await else {
            down.refused_sockets += 1;
            continue;
        };
        let join = json!({"type": "join", "room": format!("down-{n}")});
        match probe.try_request(join, Duration::from_secs(2)).await {
            Some(r) if r["type"] == "error" => {
                down.error.get_or_insert((node, r));
            }
            Some(_) => down.acked_joins += 1,
            None => down.silent_joins += 1,
        }
        if down.error.is_some() || down.health.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let noticed = killed.elapsed();
    assert!(
        down.error.is_some() || down.health.is_some(),
        "10 s without Redis and neither a join error nor /healthz cluster.redis=false: {down:?}\n{}",
        c.logs()
    );

    c.redis.restart();
    let back = Instant::now();
    let mut k = 0;
    let mut room = String::new();
    let mut ok = false;
    while !ok && back.elapsed() < Duration::from_secs(15) {
        k += 1;
        room = format!("after-{k}");
        ok = joined_across(&mut x, &mut y, &room, Duration::from_secs(3)).await;
        if !ok {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        ok,
        "15 s after Redis came back, joins across nodes still fail: {:?} {:?}\n{}",
        x.msgs(),
        y.msgs(),
        c.logs()
    );
    let recovered = back.elapsed();
    // The room lives in the new Redis under its hash tag (`protocol/cluster.md`, "Keys").
    let keys = c.redis.command(&["KEYS", "rc:*"]);
    assert!(
        keys.lines()
            .any(|key| key.contains(&format!("{{r:{room}}}"))),
        "no rc:{{r:{room}}}:* key in the restarted Redis: {keys}"
    );
    // The room that lived through the outage is whole again: its owner took its lease again
    // and rewrote its record in the new Redis, and a change in it reaches both nodes, whose
    // views hold its two members exactly once (no ghost, no double count).
    for key in ["lease", "rec"] {
        let present = crate::support::durable::eventually(Duration::from_secs(5), || {
            let k = c
                .redis
                .command(&["EXISTS", &format!("rc:{{r:before}}:{key}")]);
            std::future::ready(k.trim() == "1")
        })
        .await;
        assert!(
            present,
            "rc:{{r:before}}:{key} is back in the restarted Redis"
        );
    }
    x.ok(json!({"type": "state", "room": "before", "state": {"after": "outage"}}))
        .await;
    for p in [&x, &y] {
        let seen = p
            .saw(Duration::from_secs(5), |m| {
                m["type"] == "state" && m["room"] == "before" && m["state"]["after"] == "outage"
            })
            .await;
        assert!(
            seen,
            "{}: the surviving room still delivers: {:?}",
            p.sub,
            p.msgs()
        );
        let v = crate::support::cluster::fold(&p.msgs(), "before").expect("a panel");
        assert_eq!(
            v.members.iter().collect::<Vec<_>>(),
            ["xavi", "yuki"],
            "{}'s view of the surviving room",
            p.sub
        );
    }
    // And /healthz says Redis is back, where it reports the cluster at all.
    for node in [1, 2] {
        let healthy = crate::support::durable::eventually(Duration::from_secs(5), || async {
            match c.get(node, "/healthz").await {
                Some((_, v)) => v.get("cluster").is_none() || v["cluster"]["redis"] == true,
                None => false,
            }
        })
        .await;
        assert!(healthy, "node {node}: /healthz does not report Redis back");
    }
    eprintln!(
        "redis_down_gives_clear_errors: noticed in {noticed:?} ({down:?}); \
         joins across nodes again {recovered:?} after the restart ({k} attempts)"
    );
}

/// The harness itself: Redis answers RESP, forgets everything across a kill and restart on the
/// same port, and is refused while killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_harness_restarts_empty() {
    let Some(mut redis) = RedisServer::start("cluster::the_redis_harness_restarts_empty") else {
        return;
    };
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(redis.command(&["SET", "rc:probe", "a b\r\nc"]), "OK");
    assert_eq!(redis.command(&["GET", "rc:probe"]), "a b\r\nc");
    assert_eq!(redis.command(&["GET", "rc:none"]), "(nil)");
    assert_eq!(redis.command(&["RPUSH", "rc:list", "x", "y"]), "2");
    assert_eq!(redis.command(&["LRANGE", "rc:list", "0", "-1"]), "x\ny");
    assert_eq!(redis.command(&["DBSIZE"]), "2");
    assert!(redis.command(&["NOSUCHCOMMAND"]).starts_with("-ERR"));
    assert!(redis
        .command(&["INFO", "commandstats"])
        .contains("cmdstat_set:calls=1"));
    redis.kill();
    assert!(command(port, &["PING"]).is_err(), "refused while killed");
    redis.restart();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.command(&["DBSIZE"]), "0", "fresh and empty");
}

/// A lease left naming a live node that runs no actor for the room (what a release that failed
/// leaves behind) does not wedge the room: the node resolves it when a call reaches it (the
/// room closed: the lease goes back), so a join through the other node succeeds.
#[tokio::test]
async fn a_lease_left_behind_does_not_wedge_its_room() {
    let Some(cl) = Cluster::start("cluster::stuck-lease", 2) else {
        return;
    };
    cl.redis.command(&["SET", "rc:{r:stuck}:lease", "n1"]);
    let mut bob = cl.peer(2, "bob").await;
    join_served(&cl, &mut bob, "stuck").await;
    assert!(bob.sees(Duration::from_secs(5), "stuck", &["bob"]).await);
    let lease = cl.redis.command(&["GET", "rc:{r:stuck}:lease"]);
    assert_eq!(lease, "n2", "node 2 owns the room now");
}

/// The same with a record: the room is resumed from it where the lease says (node 1), and a
/// join through node 2 is served there.
#[tokio::test]
async fn a_lease_left_behind_with_a_record_resumes_its_room_where_it_is() {
    let Some(cl) = Cluster::start("cluster::stuck-lease-rec", 2) else {
        return;
    };
    let mut ann = cl.peer(2, "ann").await;
    ann.join("orig").await;
    let rec = crate::support::durable::eventually(Duration::from_secs(5), || {
        let rec = cl.redis.command(&["GET", "rc:{r:orig}:rec"]);
        std::future::ready(rec.contains("ann"))
    })
    .await;
    assert!(rec, "the record holds ann");
    // A room of node 1 whose actor is gone without its lease going back: its record (a copy of
    // `orig`'s under another id) and a lease naming node 1.
    let rec = cl.redis.command(&["GET", "rc:{r:orig}:rec"]);
    let version = serde_json::from_str::<Value>(&rec).expect("a record")["version"]
        .as_u64()
        .expect("a version");
    cl.redis.command(&[
        "SET",
        "rc:{r:ghost}:rec",
        &rec.replace(r#""id":"orig""#, r#""id":"ghost""#),
    ]);
    cl.redis.command(&["SET", "rc:{r:ghost}:lease", "n1"]);
    let mut bob = cl.peer(2, "bob").await;
    join_served(&cl, &mut bob, "ghost").await;
    assert!(
        bob.sees(Duration::from_secs(5), "ghost", &["bob"]).await
            || bob
                .sees(Duration::from_secs(1), "ghost", &["ann", "bob"])
                .await
    );
    let resumed = bob.msgs().iter().any(|m| {
        m["room"] == "ghost" && m["type"] == "panel" && m["version"].as_u64() > Some(version)
    });
    assert!(
        resumed,
        "resumed from the record (its versions go on): {:?}",
        bob.msgs()
    );
    let lease = cl.redis.command(&["GET", "rc:{r:ghost}:lease"]);
    assert_eq!(lease, "n1", "resumed where the lease was");
}

/// `bob` joins `room` (through node 2): acknowledged within 10 s.
async fn join_served(cl: &Cluster, bob: &mut Peer, room: &str) {
    let r = bob
        .try_request(
            json!({"type": "join", "room": room}),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        r.as_ref().map(|r| r["type"].clone()),
        Some(json!("ack")),
        "the join through node 2 is served: {r:?}\n{}",
        cl.logs()
    );
}
