//! Façade REST calls through any node of a cluster (issue 12, invariant 3): a call naming a
//! room owned by another node is forwarded to it and answered as that node answers; the
//! members it changes are seen from every node. Real processes, a real `redis-server`.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::durable::{self, eventually, Api, SessionKeys};
use crate::support::process::{Options, Rollcall};
use crate::support::redis::RedisServer;

fn node(redis: &RedisServer, keys: &SessionKeys, i: usize) -> Rollcall {
    let mut o = Options::config(durable::config(keys, "", None));
    for a in [
        "--ephemeral",
        "--redis-url",
        &redis.url(),
        "--node-id",
        &format!("f{i}"),
    ] {
        o = o.arg(a);
    }
    Rollcall::start(o.arg("--node-ttl-secs").arg("2"))
}

/// A lobby created on node 1 is joined and kicked from through node 2, and listed with node
/// 2's own lobby on both nodes; a video room created on
/// node 1 gets phone callers through node 2, who leave through node 2, while node 1's snapshot
/// follows every step.
#[tokio::test]
async fn facade_calls_work_through_any_node() {
    let Some(redis) = RedisServer::start("facades") else {
        return;
    };
    let keys = SessionKeys::new();
    let (n1, n2) = (node(&redis, &keys, 1), node(&redis, &keys, 2));
    let a1 = Api::new(format!("http://{}", n1.addr));
    let a2 = Api::new(format!("http://{}", n2.addr));

    // Lobby: created on node 1 (its owner), joined and kicked through node 2.
    let (st, lobby) = a1
        .lobby_create("host", false)
        .await
        .expect("create answers");
    assert_eq!(st, 201, "{lobby}");
    let id = lobby["id"].as_str().unwrap().to_owned();
    let (st, v) = a2.lobby_join(&id, "guest").await.expect("join answers");
    assert_eq!(st, 200, "a join through node 2 is served by the owner: {v}");
    let room = format!("lobby:{id}");
    assert_eq!(
        a1.members(&room).await,
        Some(vec!["guest".into(), "host".into()])
    );
    let (st, v) = a2
        .lobby_remove(&id, "guest", "host", true)
        .await
        .expect("kick answers");
    assert_eq!(st, 200, "a kick through node 2: {v}");
    assert_eq!(
        v["players"],
        json!(["host"]),
        "the whole lobby comes back: {v}"
    );
    assert_eq!(a2.members(&room).await, Some(vec!["host".into()]));

    // The lobby listing is cluster-wide: a lobby created on node 2 and the one of node 1 are
    // both listed, in the same order, whichever node is asked.
    let (st, other) = a2
        .lobby_create("host2", false)
        .await
        .expect("create answers");
    assert_eq!(st, 201, "{other}");
    let mut lists = Vec::new();
    for a in [&a1, &a2] {
        let (st, v) = a
            .lobby(Method::GET, "/lobbies", None)
            .await
            .expect("list answers");
        assert_eq!(st, 200, "{v}");
        let ids: Vec<String> = v
            .as_array()
            .expect("an array of lobbies")
            .iter()
            .map(|l| l["id"].as_str().unwrap_or("").to_owned())
            .collect();
        lists.push(ids);
    }
    assert_eq!(lists[0], lists[1], "the same listing on both nodes");
    let mut want = vec![id.clone(), other["id"].as_str().unwrap().to_owned()];
    want.sort();
    let mut got = lists[0].clone();
    got.sort();
    assert_eq!(got, want, "both lobbies listed once");

    // Video: created on node 1, phones joined and left through node 2.
    let (st, v) = a1
        .video(
            Method::POST,
            "/rooms",
            Some(json!({"friendly_url": "cluster-room"})),
        )
        .await
        .expect("video create answers");
    assert!(st == 200 || st == 201, "{st} {v}");
    let uuid = v["id"].as_str().unwrap().to_owned();
    let room = format!("video:{uuid}");
    let (st, v) = a2
        .video(
            Method::POST,
            &format!("/rooms/{uuid}/phone-participants/joined"),
            Some(json!([{"call_id": "c1", "name": "Caller 1"}, {"call_id": "c2", "name": "Caller 2"}])),
        )
        .await
        .expect("joined answers");
    assert!(st < 300, "phones joined through node 2: {st} {v}");
    assert_eq!(
        a1.members(&room).await,
        Some(vec!["c1".into(), "c2".into()])
    );
    let (st, v) = a2
        .video(
            Method::POST,
            &format!("/rooms/{uuid}/phone-participants/left"),
            Some(json!(["c1"])),
        )
        .await
        .expect("left answers");
    assert!(st < 300, "phones left through node 2: {st} {v}");
    let gone = eventually(Duration::from_secs(5), || async {
        a1.members(&room).await == Some(vec!["c2".into()])
    })
    .await;
    assert!(gone, "node 1 sees c1 gone: {:?}", a1.members(&room).await);
}

/// PLYR game rooms through three nodes: rooms created on two nodes get distinct numbers; players
/// join a room through a node that does not own it and leave through a third; an async task
/// created on one node is polled on another.
#[tokio::test]
async fn game_calls_work_through_any_node() {
    let Some(redis) = RedisServer::start("game-facade") else {
        return;
    };
    let keys = SessionKeys::new();
    let nodes: Vec<Rollcall> = (1..=3).map(|i| node(&redis, &keys, i)).collect();
    let api: Vec<Api> = nodes
        .iter()
        .map(|n| Api::new(format!("http://{}", n.addr)))
        .collect();
    let create = |a: &Api| {
        let a = a.clone();
        async move {
            let (st, v) = a
                .game("/game/create", json!({"sync": true}))
                .await
                .expect("create answers");
            assert_eq!((st, &v["status"]), (200, &json!("SUCCESS")), "{v}");
            v["roomId"].as_str().unwrap().to_owned()
        }
    };
    let (r1, r2) = (create(&api[0]).await, create(&api[1]).await);
    assert_ne!(r1, r2, "room numbers are allocated cluster-wide");

    let jwts: Vec<String> = ["p1", "p2"].iter().map(|p| keys.session(p)).collect();
    let (st, v) = api[1]
        .game(
            "/game/join",
            json!({"roomId": r1, "sessionJwts": jwts, "sync": true}),
        )
        .await
        .expect("join answers");
    assert_eq!(
        (st, &v["status"]),
        (200, &json!("SUCCESS")),
        "join via node 2: {v}"
    );
    let room = format!("game:{}:{r1}", durable::GAME);
    assert_eq!(
        api[0].members(&room).await,
        Some(vec!["p1".into(), "p2".into()])
    );

    // An async leave through node 3, polled on node 1.
    let (st, v) = api[2]
        .game(
            "/game/leave",
            json!({"roomId": r1, "sessionJwts": [keys.session("p1")]}),
        )
        .await
        .expect("leave answers");
    assert_eq!(st, 200, "{v}");
    let task = v["task"]["id"].as_str().expect("a task id").to_owned();
    let done = eventually(Duration::from_secs(5), || async {
        let a = api[0].game_get(&format!("/task/status/{task}")).await;
        matches!(a, Some((200, v)) if v["status"] == "SUCCESS")
    })
    .await;
    assert!(
        done,
        "the task is polled on node 1: {:?}",
        api[0].game_get(&format!("/task/status/{task}")).await
    );
    assert_eq!(api[1].members(&room).await, Some(vec!["p2".into()]));

    // The node that ran the task dies: its result is still polled, the same, on the others.
    let path = format!("/task/status/{task}");
    let before = api[0].game_get(&path).await.expect("a poll answers").1;
    let mut nodes = nodes;
    nodes[2].sigkill();
    for (i, a) in api.iter().enumerate().take(2) {
        let after = a.game_get(&path).await;
        assert_eq!(
            after,
            Some((200, before.clone())),
            "node {} serves the dead node's task result",
            i + 1
        );
    }

    // A task whose node dies before it is done polls FAILED on the others (as after a
    // restart: its change may or may not have happened), not NOT_FOUND: each task leaves that
    // answer in Redis when it is created, served once its node is dead and nothing better is.
    let lost = redis.command(&["GET", &format!("rc:task:{{{task}}}:lost")]);
    assert!(
        lost.contains(r#""FAILED""#),
        "the task's lost answer: {lost}"
    );
    let cut = "1-7"; // a task of dead node 3 that never finished
    redis.command(&["SET", &format!("rc:task:{{{cut}}}"), "f3"]);
    redis.command(&[
        "SET",
        &format!("rc:task:{{{cut}}}:lost"),
        &lost.replace(&task, cut),
    ]);
    // (503 while node 3's heartbeat key has not expired: it might still answer.)
    let path = format!("/task/status/{cut}");
    let failed = eventually(Duration::from_secs(5), || async {
        matches!(api[0].game_get(&path).await, Some((200, v)) if v["status"] == "FAILED")
    })
    .await;
    let (st, v) = api[0].game_get(&path).await.expect("a poll answers");
    assert!(failed, "{st} {v}");
    assert_eq!(v["taskId"], cut);
    assert!(
        v["errorMessage"].as_str().unwrap_or("").contains("stopped"),
        "{v}"
    );
}
