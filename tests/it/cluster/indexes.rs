//! The façades' indexes across nodes (issue 12, invariant 3): a video room's `friendly_url` is
//! unique in its team on every node and names the room from any node; a team's room listing
//! a lobby's invite code and its event stream work from any node, and a player is in one lobby
//! at a time whichever nodes own them; the per-tenant caps count every node's rooms.
//! Real processes, a real `redis-server`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::durable::{self, Api, SessionKeys};
use crate::support::process::{Options, Rollcall};
use crate::support::redis::RedisServer;

/// Node `x<i>` with at most 2 video rooms per team and 2 lobbies per key.
fn node(redis: &RedisServer, keys: &SessionKeys, i: usize) -> Rollcall {
    let config = durable::config(keys, "", None).replace(
        "[limits]\n",
        "[limits]\nmax_video_rooms_per_team = 2\nmax_lobbies_per_key = 2\n",
    );
    let mut o = Options::config(config);
    for a in [
        "--ephemeral",
        "--redis-url",
        &redis.url(),
        "--node-id",
        &format!("x{i}"),
        "--node-ttl-secs",
        "2",
    ] {
        o = o.arg(a);
    }
    Rollcall::start(o)
}

/// The ids a video listing answered, and its `total_count`.
async fn listed(a: &Api) -> (Vec<String>, Value) {
    let (st, v) = a
        .video(Method::GET, "/rooms", None)
        .await
        .expect("list answers");
    assert_eq!(st, 200, "{v}");
    let ids = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_owned())
        .collect();
    (ids, v["total_count"].clone())
}

#[tokio::test]
async fn video_names_listings_codes_and_caps_hold_across_nodes() {
    let Some(redis) = RedisServer::start("indexes") else {
        return;
    };
    let keys = SessionKeys::new();
    let (n1, n2) = (node(&redis, &keys, 1), node(&redis, &keys, 2));
    let a1 = Api::new(format!("http://{}", n1.addr));
    let a2 = Api::new(format!("http://{}", n2.addr));
    let create = |a: &Api, name: &str| {
        let body = json!({"friendly_url": name});
        let a = a.clone();
        async move {
            a.video(Method::POST, "/rooms", Some(body))
                .await
                .expect("create answers")
        }
    };

    // Two rooms of the team gone without leaving its set (their node died before their first
    // record): the cap (2) does not count them once it is reached.
    let set = format!("rc:ix:{{vr/{}}}", durable::TEAM);
    for ghost in [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
    ] {
        redis.command(&["ZADD", &set, "1", &format!("video:{ghost}")]);
    }

    // A friendly URL taken on node 1 is taken on node 2, and names the room there.
    let (st, first) = create(&a1, "standup").await;
    assert_eq!(st, 200, "{first}");
    let (st, v) = create(&a2, "standup").await;
    assert_eq!(st, 422, "the name is taken cluster-wide: {v}");
    let (st, v) = a2.video(Method::GET, "/rooms/standup", None).await.unwrap();
    assert_eq!(
        (st, &v["id"]),
        (200, &first["id"]),
        "node 2 finds it by name: {v}"
    );

    // Renamed through node 2 by its name: the new name works everywhere, the old one is free.
    let (st, v) = a2
        .video(
            Method::PATCH,
            "/rooms/standup",
            Some(json!({"friendly_url": "retro"})),
        )
        .await
        .unwrap();
    assert_eq!(st, 200, "{v}");
    let (st, v) = a1.video(Method::GET, "/rooms/retro", None).await.unwrap();
    assert_eq!((st, &v["id"]), (200, &first["id"]), "{v}");
    let (st, second) = create(&a2, "standup").await;
    assert_eq!(st, 200, "the old name is free again: {second}");

    // The team's listing is the same from both nodes; the cap counts both nodes' rooms.
    let want = vec![
        first["id"].as_str().unwrap().to_owned(),
        second["id"].as_str().unwrap().to_owned(),
    ];
    for a in [&a1, &a2] {
        let (mut ids, total) = listed(a).await;
        ids.sort();
        let mut w = want.clone();
        w.sort();
        assert_eq!(
            (ids, total),
            (w, json!("2")),
            "both rooms, from either node"
        );
    }
    let (st, v) = create(&a1, "third").await;
    assert_eq!(st, 429, "two rooms per team, counted over the cluster: {v}");

    // Deleted through node 1 by its name: gone from every node, and the cap has room again.
    let (st, v) = a1
        .video(Method::DELETE, "/rooms/retro", None)
        .await
        .unwrap();
    assert_eq!(st, 204, "{v}");
    let (st, _) = a2.video(Method::GET, "/rooms/retro", None).await.unwrap();
    assert_eq!(st, 404, "the name names nothing now");
    let (ids, total) = listed(&a2).await;
    assert_eq!((ids, total), (vec![want[1].clone()], json!("1")));
    let (st, v) = create(&a2, "third").await;
    assert_eq!(st, 200, "{v}");

    // The team's last room, asked for on both nodes at once, goes to exactly one of them (the
    // cap is checked as the room joins the set, in one step).
    for round in 0..3 {
        let (st, _) = a1
            .video(Method::DELETE, "/rooms/third", None)
            .await
            .unwrap();
        assert_eq!(st, 204);
        let (x, y) = tokio::join!(create(&a1, "third"), create(&a2, "third-too"));
        let mut statuses = [x.0, y.0];
        statuses.sort();
        assert_eq!(statuses, [200, 429], "round {round}: {x:?} {y:?}");
        if x.0 != 200 {
            // Keep the name the next round deletes.
            let (st, _) = a2
                .video(Method::DELETE, "/rooms/third-too", None)
                .await
                .unwrap();
            assert_eq!(st, 204);
            let (st, v) = create(&a1, "third").await;
            assert_eq!(st, 200, "{v}");
        }
    }

    // A lobby's invite code works through the other node.
    let (st, lobby) = a1.lobby_create("host", true).await.expect("create answers");
    assert_eq!(st, 201, "{lobby}");
    let code = lobby["inviteCode"]
        .as_str()
        .expect("an invite code")
        .to_owned();
    let body = json!({"playerId": "guest", "metadata": {"displayName": "guest"}});
    let (st, v) = a2
        .lobby(
            Method::POST,
            &format!("/lobbies/code/{code}/players"),
            Some(body),
        )
        .await
        .unwrap();
    assert_eq!(st, 200, "joined by code through node 2: {v}");
    let id = lobby["id"].as_str().unwrap();
    assert_eq!(
        a1.members(&format!("lobby:{id}")).await,
        Some(vec!["guest".into(), "host".into()])
    );

    // A player is in one lobby at a time over the cluster: guest, in node 1's lobby, cannot
    // join node 2's (until kicked from the first, below).
    let (st, second) = a2.lobby_create("host2", false).await.unwrap();
    assert_eq!(st, 201, "{second}");
    let id2 = second["id"].as_str().unwrap().to_owned();
    let (st, v) = a2.lobby_join(&id2, "guest").await.unwrap();
    assert_eq!(st, 400, "guest is in a lobby of node 1: {v}");
    assert!(v.to_string().contains("already in a lobby"), "{v}");

    // The lobby's event stream, opened through node 2, relays what happens on node 1.
    let url = format!(
        "http://{}/lobbies-sse/{id}/events?player-id=host&lobby-config=default",
        n2.addr
    );
    let mut sse = reqwest::Client::new()
        .get(url)
        .header("api-key", durable::LOBBY_KEY)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("the stream answers");
    assert_eq!(sse.status(), 200);
    let (st, v) = a1.lobby_remove(id, "guest", "host", true).await.unwrap();
    assert_eq!(st, 200, "{v}");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !(text.contains("event: connected") && text.contains("event: lobby:updated")) {
        let chunk = tokio::time::timeout_at(deadline, sse.chunk())
            .await
            .expect("the stream's events in time")
            .expect("the stream reads");
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("the stream stays open"),
        ));
    }
    assert!(
        text.contains(r#"["host"]"#),
        "the kick is in the update: {text}"
    );

    let (st, v) = a2.lobby_join(&id2, "guest").await.unwrap();
    assert_eq!(
        st, 200,
        "kicked from the first, guest joins the second: {v}"
    );

    // Two lobbies per key over the cluster.
    let (st, v) = a1.lobby_create("host3", false).await.unwrap();
    assert_eq!(
        st, 429,
        "the key's third lobby, counted over both nodes: {v}"
    );
}
