//! A node that stops answering for longer than its TTL (SIGSTOP: a long GC-like pause, or a
//! partition) is declared dead by the others, who take its rooms over; when it runs again it
//! must not act as an owner any more: it fences itself, closes its sockets with 1012, writes no
//! record, and its clients join again through the new owner.

use std::time::Duration;

use serde_json::json;

use crate::support::cluster::{fold, lefts_of, Cluster};
use crate::support::durable::eventually;

#[tokio::test]
async fn a_paused_owner_fences_itself_when_it_wakes() {
    let Some(mut cl) = Cluster::start("pause", 3) else {
        return;
    };
    let room = "paused";
    let join = json!({"type": "join", "room": room});
    let mut p1 = cl.peer(1, "p1").await;
    assert_eq!(p1.request(join.clone()).await["type"], "ack");
    let mut p2 = cl.peer(2, "p2").await;
    assert_eq!(p2.request(join.clone()).await["type"], "ack");
    let mut p3 = cl.peer(3, "p3").await;
    assert_eq!(p3.request(join.clone()).await["type"], "ack");

    cl.signal(1, "STOP");
    let view = |p: &crate::support::cluster::Peer| fold(&p.msgs(), room).map(|v| v.members);
    let want = |names: &[&str]| {
        Some(
            names
                .iter()
                .map(|s| s.to_string())
                .collect::<std::collections::BTreeSet<_>>(),
        )
    };
    let moved = eventually(Duration::from_secs(10), || async {
        view(&p2) == want(&["p2", "p3"]) && view(&p3) == want(&["p2", "p3"])
    })
    .await;
    cl.signal(1, "CONT");
    assert!(
        moved,
        "p1 is gone on nodes 2 and 3 while node 1 is stopped: {:?} {:?}\n{}",
        view(&p2),
        view(&p3),
        cl.logs()
    );

    let fenced = eventually(Duration::from_secs(5), || async {
        p1.tape().close.is_some()
    })
    .await;
    assert!(fenced, "node 1 closes its sockets when it wakes");
    assert_eq!(
        p1.tape().close,
        Some(1012),
        "close code 1012 (service restart)"
    );

    // The room goes on under its new owner; p1 comes back through node 1 and is one member again.
    let st = p2
        .request(json!({"type": "state", "room": room, "state": {"after": 1}}))
        .await;
    assert_eq!(st["type"], "ack", "{st}");
    let mut again = cl.peer(1, "p1").await;
    let r = again.request(join.clone()).await;
    assert_eq!(r["type"], "ack", "p1 joins again through node 1: {r}");
    let back = eventually(Duration::from_secs(5), || async {
        view(&p2) == want(&["p2", "p3", "p1"]) && view(&p3) == want(&["p2", "p3", "p1"])
    })
    .await;
    assert!(back, "{:?} {:?}\n{}", view(&p2), view(&p3), cl.logs());
    for p in [&p2, &p3] {
        let msgs = p.msgs();
        let lefts = lefts_of(&msgs, room, "p1");
        assert_eq!(lefts.len(), 1, "one left for p1: {lefts:?}");
        assert_eq!(lefts[0]["reason"], "timeout");
    }
    cl.kill(1);
}
