//! A join storm spread over three nodes: 50 rooms of 20 members, each room's members on all
//! three nodes (1,000 sockets, about 333 a node), all joining at once; every socket's view of its room (its
//! panel plus the events it applied) ends with exactly the room's 20 members, and every node's
//! operator snapshot agrees.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::cluster::{fold, Cluster};
use crate::support::durable::{self, eventually, record, send_quiet, Api, Recording};
use crate::support::Client;

const ROOMS: usize = 50;
const PER_ROOM: usize = 20;
const NODES: usize = 3;

fn member(room: usize, k: usize) -> String {
    format!("s{room:02}m{k:02}")
}

/// A socket for `sub` on `ws_url` (owned arguments, for a batch of futures).
async fn connect_as(ws_url: String, sub: String) -> Client {
    durable::connect(&ws_url, &durable::token(&sub)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_joins_spread_over_three_nodes() {
    let Some(c) = Cluster::start("cluster::many_joins_spread_over_three_nodes", NODES) else {
        return;
    };
    let started = Instant::now();
    // Connect every socket first (bounded each), then send every join at once.
    let mut plan = Vec::new();
    for r in 0..ROOMS {
        for k in 0..PER_ROOM {
            let node = (r * PER_ROOM + k) % NODES + 1; // each room on every node, about 333 a node
            plan.push((r, k, node));
        }
    }
    let clients = futures::future::join_all(
        plan.iter()
            .map(|&(r, k, node)| connect_as(c.ws(node), member(r, k))),
    )
    .await;
    let mut tapes: Vec<(usize, usize, Arc<Mutex<Recording>>)> = Vec::new();
    let mut joins = Vec::new();
    for (&(r, k, node), mut client) in plan.iter().zip(clients) {
        let room = format!("storm-{r:02}");
        joins.push(async move {
            let ok = send_quiet(
                &mut client,
                json!({"type": "join", "room": room, "ref": format!("j{r}-{k}")}),
            )
            .await;
            assert!(ok, "join sent");
            (r, node, record(client))
        });
    }
    for (r, node, rec) in futures::future::join_all(joins).await {
        tapes.push((r, node, rec));
    }

    // Every socket: its join acknowledged, and its view of the room is all the room's members.
    let want = |r: usize| -> BTreeSet<String> { (0..PER_ROOM).map(|k| member(r, k)).collect() };
    let done = eventually(Duration::from_secs(20), || {
        let all = tapes.iter().all(|(r, _, rec)| {
            let rec = rec.lock().unwrap();
            let acked = rec.messages.iter().any(|m| m["type"] == "ack");
            let room = format!("storm-{r:02}");
            acked && fold(&rec.messages, &room).is_some_and(|v| v.members == want(*r))
        });
        std::future::ready(all)
    })
    .await;
    if !done {
        let bad: Vec<String> = tapes
            .iter()
            .filter_map(|(r, node, rec)| {
                let rec = rec.lock().unwrap();
                let room = format!("storm-{r:02}");
                let view = fold(&rec.messages, &room);
                let ok = view.as_ref().is_some_and(|v| v.members == want(*r));
                (!ok).then(|| {
                    format!(
                        "{room} on n{node}: {} members, errors {:?}, close {:?}",
                        view.map_or(0, |v| v.members.len()),
                        rec.messages
                            .iter()
                            .filter(|m| m["type"] == "error")
                            .collect::<Vec<_>>(),
                        rec.close
                    )
                })
            })
            .take(10)
            .collect();
        panic!(
            "not every socket sees its room's {PER_ROOM} members in 20 s; first ones: {bad:#?}\n{}",
            c.logs()
        );
    }
    for (r, _, rec) in &tapes {
        let rec = rec.lock().unwrap();
        assert!(
            !rec.messages.iter().any(|m| m["type"] == "error"),
            "storm-{r:02}: {:?}",
            rec.messages
        );
        assert_eq!(rec.close, None, "storm-{r:02}: the socket stays open");
    }
    // The operator snapshot of every room agrees on every node.
    for node in 1..=NODES {
        let api = Api::new(c.http(node));
        for r in 0..ROOMS {
            let got = api.members(&format!("storm-{r:02}")).await;
            let want: Vec<String> = want(r).into_iter().collect();
            assert_eq!(got, Some(want), "storm-{r:02} on n{node}");
        }
    }
    // Calls that met a node still taking (or giving back) a room's lease were sent again.
    let mut refused = 0.0;
    for node in 1..=NODES {
        let text = reqwest::get(format!("{}/metrics", c.http(node)))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        refused += crate::support::sample(&text, "rollcall_cluster_calls_refused_total", "")
            .expect("the refused-calls counter is exposed");
    }
    eprintln!(
        "many_joins_spread_over_three_nodes: {} sockets settled in {:?}; {refused} calls sent again",
        ROOMS * PER_ROOM,
        started.elapsed()
    );
}
