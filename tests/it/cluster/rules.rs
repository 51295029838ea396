//! Room rules across nodes (issue 12, invariant 2): a room limit counts the members of every
//! node, and an operator's atomic batch sent through a node that does not own the room is all
//! or nothing and, when it applies, one `left` event everywhere.

use serde_json::{json, Value};

use super::FANOUT;
use crate::support::cluster::{fold, Cluster, Peer};
use crate::support::ADMIN;

/// `POST <path>` with the operator token on `base`; (status, body).
async fn admin_post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .timeout(FANOUT)
        .send()
        .await
        .expect("the node answers");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// The `left` events of `room` in `p`'s tape.
fn lefts(p: &Peer, room: &str) -> Vec<Value> {
    p.msgs()
        .into_iter()
        .filter(|m| m["type"] == "left" && m["room"] == room)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_limits_and_atomic_batches_hold_across_nodes() {
    let Some(c) = Cluster::start_with(
        "cluster::room_limits_and_atomic_batches",
        2,
        0.0,
        &["--max-members-per-room", "3"],
    ) else {
        return;
    };
    let room = "rules";
    let mut ann = c.peer(1, "ann").await; // node 1 owns the room
    ann.join(room).await;
    let mut bob = c.peer(2, "bob").await;
    bob.join(room).await;
    let mut cai = c.peer(2, "cai").await;
    cai.join(room).await;
    for p in [&ann, &bob, &cai] {
        assert!(
            p.sees(FANOUT, room, &["ann", "bob", "cai"]).await,
            "{}: {:?}",
            p.sub,
            p.msgs()
        );
    }
    // Full at 3, counted over both nodes: a fourth is refused on either.
    for node in [1, 2] {
        let mut dee = c.peer(node, &format!("dee{node}")).await;
        let r = dee.request(json!({"type": "join", "room": room})).await;
        assert_eq!(
            r["code"], "room_full",
            "a fourth member through node {node}: {r}"
        );
    }

    // An atomic batch through node 2 naming a non-member: nothing happens.
    let (st, body) = admin_post(
        &c.http(2),
        &format!("/v1/rooms/{room}/leave"),
        json!({"members": ["bob", "ghost"], "atomic": true}),
    )
    .await;
    assert_eq!(st, 404, "{body}");
    assert_eq!(body["members"], json!(["ghost"]), "{body}");
    // Then the whole batch: one `left` naming both, the same event on both nodes.
    let (st, body) = admin_post(
        &c.http(2),
        &format!("/v1/rooms/{room}/leave"),
        json!({"members": ["bob", "cai"], "atomic": true}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["removed"], json!(["bob", "cai"]), "{body}");
    for p in [&ann, &bob] {
        let seen = p
            .saw(FANOUT, |m| m["type"] == "left" && m["room"] == room)
            .await;
        assert!(seen, "{} sees the batch: {:?}", p.sub, p.msgs());
    }
    let (a, b) = (lefts(&ann, room), lefts(&bob, room));
    assert_eq!(a.len(), 1, "one left event, not one per member: {a:?}");
    assert_eq!(a[0]["members"], json!(["bob", "cai"]));
    assert_eq!(a, b, "the same event on both nodes");
    let v = fold(&ann.msgs(), room).expect("a panel");
    assert_eq!(v.members.iter().collect::<Vec<_>>(), ["ann"]);

    // Room again: a join through node 2 is accepted.
    let mut eve = c.peer(2, "eve").await;
    eve.join(room).await;
    assert!(
        ann.sees(FANOUT, room, &["ann", "eve"]).await,
        "{:?}",
        ann.msgs()
    );
}
