//! Members moving between nodes without anybody seeing them go (`protocol/cluster.md`, "Graceful
//! drain", "Reconnect grace across nodes", "One member, several nodes"): a drained node's
//! sockets get 1001 and rejoin through other nodes within the grace; a member reconnecting to
//! another node within its grace causes no event; a member with sockets on two nodes is one
//! presence, and the host passes to the next member across nodes in the `left` event itself.

use std::time::Duration;

use serde_json::{json, Value};

use super::{barrier, FANOUT};
use crate::support::cluster::{fold, lefts_of, Cluster, Peer};

/// The reconnect grace of these tests' nodes.
const GRACE: Duration = Duration::from_secs(3);
/// The `type`s of the membership events (`joined`, `left`) of `room` in `p`'s tape that name
/// `member`.
fn moves_of(p: &Peer, room: &str, member: &str) -> Vec<String> {
    p.msgs()
        .iter()
        .filter(|m| m["room"] == room && (m["type"] == "joined" || m["type"] == "left"))
        .filter(|m| {
            let names = |v: &Value| {
                v.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == member || x["id"] == member))
            };
            names(&m["members"])
        })
        .map(|m| m["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Asserts that `p`'s view of `room` is exactly `members`.
fn view_is(p: &Peer, room: &str, members: &[&str]) {
    let v = fold(&p.msgs(), room).unwrap_or_else(|| panic!("{}: no panel of {room}", p.sub));
    assert_eq!(
        v.members.iter().map(String::as_str).collect::<Vec<_>>(),
        members,
        "{}'s view of {room}",
        p.sub
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_hands_its_sockets_over_silently() {
    let Some(mut c) = Cluster::start_with_grace(
        "cluster::a_drained_node_hands_its_sockets_over_silently",
        3,
        GRACE.as_secs_f64(),
    ) else {
        return;
    };
    // `owned`: node 1 owns it (its first join), its member `dan` is on node 1.
    // `remote`: node 2 owns it, its member `dora` is on node 1.
    let (owned, remote) = ("drain-owned", "drain-remote");
    let mut dan = c.peer(1, "dan").await;
    dan.join(owned).await;
    let mut pia = c.peer(2, "pia").await;
    pia.join(remote).await;
    pia.join(owned).await;
    let mut dora = c.peer(1, "dora").await;
    dora.join(remote).await;
    let mut quin = c.peer(3, "quin").await;
    quin.join(owned).await;
    quin.join(remote).await;
    // `lonely`: node 1 owns it and holds its only member, who never comes back.
    let lonely = "drain-lonely";
    let mut lou = c.peer(1, "lou").await;
    lou.join(lonely).await;
    for (room, members) in [
        (owned, ["dan", "pia", "quin"]),
        (remote, ["dora", "pia", "quin"]),
    ] {
        for p in [&pia, &quin] {
            assert!(
                p.sees(FANOUT, room, &members).await,
                "{}: {room} before the drain: {:?}\n{}",
                p.sub,
                p.msgs(),
                c.logs()
            );
        }
    }

    let drained = std::time::Instant::now();
    c.signal(1, "TERM");
    for p in [&dan, &dora] {
        assert_eq!(
            p.closed_with(FANOUT).await,
            Some(1001),
            "{}: the drained node says going away",
            p.sub
        );
    }
    // They come back through the other nodes, within the grace.
    let mut dan = c.peer(2, "dan").await;
    let mut dora = c.peer(3, "dora").await;
    for (p, room) in [(&mut dan, owned), (&mut dora, remote)] {
        let mut acked = false;
        while !acked && drained.elapsed() < GRACE {
            let join = json!({"type": "join", "room": room});
            acked = p
                .try_request(join, Duration::from_secs(2))
                .await
                .is_some_and(|r| r["type"] == "ack");
        }
        assert!(
            acked,
            "{} rejoined {room} within the grace\n{}",
            p.sub,
            c.logs()
        );
    }
    let rejoined = drained.elapsed();
    let status = c.wait_exit(1, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the drained node exits cleanly: {status:?}"
    );
    // Past the grace, nothing can still be pending: then a barrier orders everything before it.
    tokio::time::sleep(GRACE).await;
    barrier(owned, &mut pia, &[&quin, &dan], "after-drain").await;
    barrier(remote, &mut pia, &[&quin, &dora], "after-drain").await;
    for p in [&pia, &quin] {
        for (room, who) in [(owned, "dan"), (remote, "dora")] {
            assert!(
                lefts_of(&p.msgs(), room, who).is_empty(),
                "{} saw {who} leave {room}: {:?}",
                p.sub,
                p.msgs()
            );
        }
        view_is(p, owned, &["dan", "pia", "quin"]);
        view_is(p, remote, &["dora", "pia", "quin"]);
    }
    view_is(&dan, owned, &["dan", "pia", "quin"]);
    view_is(&dora, remote, &["dora", "pia", "quin"]);
    // The drained node's rooms have a live owner, the one nobody came back to included
    // (adopted from the drained node's room list): its member left once the grace ran out.
    for room in [owned, lonely] {
        let lease = c.redis.command(&["GET", &format!("rc:{{r:{room}}}:lease")]);
        let lonely_closed = room == lonely && lease == "(nil)";
        assert!(
            lease.starts_with("n2") || lease.starts_with("n3") || lonely_closed,
            "{room} is owned by a live node (or, empty, closed): {lease}"
        );
    }
    // Read in Redis, so that nothing here touches the room: its record loses lou (or goes,
    // with the room) only if a survivor took it over on its own.
    let rec_key = format!("rc:{{r:{lonely}}}:rec");
    let gone = crate::support::durable::eventually(Duration::from_secs(8), || {
        std::future::ready(!c.redis.command(&["GET", &rec_key]).contains("lou"))
    })
    .await;
    assert!(
        gone,
        "lou left the room nobody came back to: {}\n{}",
        c.redis.command(&["GET", &rec_key]),
        c.logs()
    );
    eprintln!(
        "a_drained_node_hands_its_sockets_over_silently: both rejoined {rejoined:?} after SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reconnecting_to_another_node_in_its_grace_causes_no_event() {
    let Some(c) = Cluster::start_with_grace(
        "cluster::a_member_reconnecting_to_another_node_in_its_grace_causes_no_event",
        3,
        GRACE.as_secs_f64(),
    ) else {
        return;
    };
    let room = "grace-hop";
    let mut own = c.peer(1, "own").await; // node 1 owns the room
    own.join(room).await;
    let mut mo = c.peer(2, "mo").await;
    mo.join(room).await;
    let mut wes = c.peer(3, "wes").await;
    wes.watch(room).await;
    for p in [&own, &wes] {
        assert!(
            p.sees(FANOUT, room, &["mo", "own"]).await,
            "{}: {:?}",
            p.sub,
            p.msgs()
        );
    }
    let before: Vec<Vec<String>> = [&own, &wes]
        .iter()
        .map(|p| moves_of(p, room, "mo"))
        .collect();

    // mo's socket on node 2 goes; mo comes back on node 3 within the grace.
    mo.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut mo = c.peer(3, "mo").await;
    let ack = mo.join(room).await;
    assert_eq!(ack["type"], "ack");
    tokio::time::sleep(GRACE + Duration::from_secs(1)).await;
    barrier(room, &mut own, &[&wes, &mo], "after-hop").await;
    for (p, before) in [&own, &wes].iter().zip(&before) {
        assert_eq!(
            &moves_of(p, room, "mo"),
            before,
            "{}: mo's hop between nodes is no event: {:?}",
            p.sub,
            p.msgs()
        );
        view_is(p, room, &["mo", "own"]);
    }
    view_is(&mo, room, &["mo", "own"]);

    // Gone for good: one `left`, `disconnect`, once the grace has run out.
    let closed = std::time::Instant::now();
    mo.close().await;
    for p in [&own, &wes] {
        let left = p
            .saw(GRACE + FANOUT, |m| {
                m["type"] == "left" && m["room"] == room && m["members"] == json!(["mo"])
            })
            .await;
        assert!(left, "{}: mo leaves after the grace: {:?}", p.sub, p.msgs());
    }
    let took = closed.elapsed();
    assert!(took >= GRACE, "not before the grace ran out: {took:?}");
    barrier(room, &mut own, &[&wes], "after-leave").await;
    for p in [&own, &wes] {
        let lefts = lefts_of(&p.msgs(), room, "mo")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(lefts.len(), 1, "{}: one left: {lefts:?}", p.sub);
        assert_eq!(lefts[0]["reason"], "disconnect");
        view_is(p, room, &["own"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_on_two_nodes_is_one_presence_and_the_host_passes_across_nodes() {
    let Some(c) = Cluster::start("cluster::one_member_on_two_nodes_is_one_presence", 3) else {
        return;
    };
    let room = "two-homes";
    let mut hal = c.peer(1, "hal").await; // the first member: owner node 1, and host
    hal.join(room).await;
    let mut wes = c.peer(1, "wes").await;
    wes.watch(room).await;
    let mut mia2 = c.peer(2, "mia").await;
    mia2.join(room).await;
    let mut mia3 = c.peer(3, "mia").await;
    mia3.join(room).await; // a second socket of the same member, on another node
    barrier(room, &mut hal, &[&wes, &mia2, &mia3], "both-sockets").await;
    for p in [&hal, &wes, &mia2, &mia3] {
        view_is(p, room, &["hal", "mia"]);
    }
    for p in [&hal, &wes] {
        assert_eq!(
            moves_of(p, room, "mia"),
            ["joined"],
            "{}: one joined for mia",
            p.sub
        );
    }

    // The host leaves: the same `left` names the next member, whose sockets are elsewhere.
    hal.ok(json!({"type": "leave", "room": room})).await;
    for p in [&wes, &mia2, &mia3] {
        let passed = p
            .saw(FANOUT, |m| {
                m["type"] == "left"
                    && m["room"] == room
                    && m["members"] == json!(["hal"])
                    && m["host"] == "mia"
            })
            .await;
        assert!(
            passed,
            "{}: hal's left names mia host: {:?}",
            p.sub,
            p.msgs()
        );
    }

    // One of mia's sockets closes: no event; the other still acts as the member.
    mia2.close().await;
    barrier(room, &mut mia3, &[&wes], "one-socket-left").await;
    assert_eq!(moves_of(&wes, room, "mia"), ["joined"], "{:?}", wes.msgs());
    view_is(&wes, room, &["mia"]);
    // The last one closes: mia leaves (no grace here), once.
    mia3.close().await;
    let left = wes
        .saw(FANOUT, |m| {
            m["type"] == "left" && m["room"] == room && m["members"] == json!(["mia"])
        })
        .await;
    assert!(left, "mia leaves with her last socket: {:?}", wes.msgs());
    assert_eq!(
        lefts_of(&wes.msgs(), room, "mia")[0]["reason"],
        "disconnect"
    );
    view_is(&wes, room, &[]);
}
