//! Presence across a restart (issue 11), against the real binary: on SIGTERM the sockets get close
//! 1001 and the node checkpoints who is in which room; the next process on the same data dir
//! restores those members in their reconnect grace. Members that reconnect within it cause no
//! `left`/`joined` for watchers; each one that does not leaves exactly once, reason `timeout`.
//! After `kill -9` the last periodic checkpoint is used the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use crate::support::durable::*;
use crate::support::process::{Options, Rollcall, TempDir};
use crate::support::{Client, ADMIN};

const GRACE_SECS: f64 = 5.0;

fn start(keys: &SessionKeys, data: &TempDir) -> Rollcall {
    Rollcall::start(
        Options::config(config(
            keys,
            &format!("grace_secs = {GRACE_SECS}\ncheckpoint_secs = 1\nshutdown_timeout_secs = 3"),
            None,
        ))
        .data_dir(data.path()),
    )
}

/// Connects `members` (id, room) to `p` in parallel, each joining its room; returns the clients
/// and the epochs of the panels they got.
async fn join_all_members(
    ws_url: &str,
    members: &[(String, String)],
) -> (Vec<Client>, Vec<String>) {
    let joins = members.iter().map(|(id, room)| async move {
        let mut c = connect(ws_url, &token(id)).await;
        let panel = c.join(room).await;
        (c, epoch(&panel))
    });
    join_all(joins).await.into_iter().unzip()
}

/// Watches every room on `ws_url` with the operator token; returns each watcher and its panel.
async fn watch_rooms(ws_url: &str, rooms: &[String]) -> Vec<(String, Client, Value)> {
    let mut out = Vec::new();
    for room in rooms {
        let mut w = connect(ws_url, ADMIN).await;
        let panel = w.watch(room).await;
        out.push((room.clone(), w, panel));
    }
    out
}

/// Everything each watcher gets until `until`.
async fn collect(
    watchers: &mut [(String, Client, Value)],
    until: tokio::time::Instant,
) -> BTreeMap<String, Vec<Value>> {
    let reads = watchers.iter_mut().map(|(room, w, _)| async move {
        let mut got = Vec::new();
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(v) = w.try_recv(left).await {
                got.push(v);
            }
        }
        (room.clone(), got)
    });
    join_all(reads).await.into_iter().collect()
}

/// Checks what the watchers of the new process saw: no `joined` at all, no `left` for a member
/// that came back, exactly one `left` `timeout` for each one that did not, every versioned message
/// in the panel's epoch and in version order.
fn check_watchers(
    panels: &BTreeMap<String, Value>,
    seen: &BTreeMap<String, Vec<Value>>,
    back: &BTreeSet<String>,
    gone: &BTreeSet<String>,
) {
    let mut left_count: BTreeMap<String, usize> = BTreeMap::new();
    for (room, msgs) in seen {
        let panel = &panels[room];
        let ep = epoch(panel);
        let mut version = panel["version"].as_u64().unwrap();
        for m in msgs {
            if is_versioned(m) {
                assert_eq!(epoch(m), ep, "{room}: one epoch within a process: {m}");
                let v = m["version"].as_u64().unwrap();
                assert_eq!(v, version + 1, "{room}: versions in order: {m}");
                version = v;
            }
            match m["type"].as_str() {
                Some("joined") => panic!("{room}: a watcher saw a joined after the restart: {m}"),
                Some("left") => {
                    assert_eq!(m["reason"], "timeout", "{room}: {m}");
                    for id in m["members"].as_array().unwrap() {
                        let id = id.as_str().unwrap().to_owned();
                        assert!(
                            !back.contains(&id),
                            "{room}: {id} reconnected within the grace but left: {m}"
                        );
                        *left_count.entry(id).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }
    for id in gone {
        assert_eq!(
            left_count.get(id).copied().unwrap_or(0),
            1,
            "{id} did not reconnect: exactly one left timeout"
        );
    }
    assert_eq!(
        left_count.keys().cloned().collect::<BTreeSet<_>>(),
        *gone,
        "only those that did not reconnect left"
    );
}

/// 200 sockets in five rooms; SIGTERM (close 1001 for every socket); the new process restores
/// all 200 in their grace; 180 reconnect to it: its watchers see nothing for them, and each of
/// the other 20 leaves exactly once with reason `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_members_who_reconnect_within_the_grace() {
    let keys = SessionKeys::new();
    let data = TempDir::new("restart");
    let rooms: Vec<String> = (0..5).map(|r| format!("rs-{r}")).collect();
    let members: Vec<(String, String)> = (0..200)
        .map(|i| (format!("m{i:03}"), rooms[i % 5].clone()))
        .collect();

    let mut first = start(&keys, &data);
    let (clients, epochs) = join_all_members(&first.ws_url(), &members).await;
    let old_epochs: BTreeSet<String> = epochs.into_iter().collect();
    // Every join is in; then a graceful stop.
    for room in &rooms {
        let n = Api::new(first.base()).members(room).await.unwrap().len();
        assert_eq!(n, 40, "{room} before the restart");
    }
    first.sigterm();
    let codes = join_all(
        clients
            .into_iter()
            .map(|mut c| async move { c.closed().await }),
    )
    .await;
    assert!(
        codes.iter().all(|&c| c == 1001),
        "every socket gets close 1001: {codes:?}"
    );
    let status = first
        .wait_exit(Duration::from_secs(10))
        .expect("exits within its shutdown bound");
    assert!(status.success(), "clean exit: {status}");

    let second = start(&keys, &data);
    let started = tokio::time::Instant::now();
    let ws = second.ws_url();
    let mut watchers = watch_rooms(&ws, &rooms).await;
    let mut panels = BTreeMap::new();
    for (room, _, panel) in &watchers {
        let mut want: Vec<String> = members
            .iter()
            .filter(|(_, r)| r == room)
            .map(|(id, _)| id.clone())
            .collect();
        want.sort();
        let mut got = crate::support::ids(panel);
        got.sort();
        assert_eq!(got, want, "{room}: every member restored in its grace");
        assert!(
            !old_epochs.contains(&epoch(panel)),
            "{room}: a restored room has a new epoch ({} was in use before)",
            epoch(panel)
        );
        panels.insert(room.clone(), panel.clone());
    }
    let back_list = &members[..180];
    let (_rejoined, _) = join_all_members(&ws, back_list).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs_f64(GRACE_SECS),
        "the test reconnected within the grace ({took:?})"
    );
    let seen = collect(
        &mut watchers,
        started + Duration::from_secs_f64(GRACE_SECS + 3.0),
    )
    .await;
    let back: BTreeSet<String> = back_list.iter().map(|(id, _)| id.clone()).collect();
    let gone: BTreeSet<String> = members[180..].iter().map(|(id, _)| id.clone()).collect();
    check_watchers(&panels, &seen, &back, &gone);
    for room in &rooms {
        let now = Api::new(second.base()).members(room).await.unwrap();
        assert_eq!(now.len(), 36, "{room} after the grace: {now:?}");
    }
}

/// `kill -9`: the last periodic checkpoint (every second here) restores the members in their
/// grace; those that reconnect cause no event, the others leave once with `timeout`, and no ghost
/// outlives the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restores_the_last_checkpoint_and_leaves_no_ghost() {
    let keys = SessionKeys::new();
    let data = TempDir::new("crash-presence");
    let rooms: Vec<String> = (0..2).map(|r| format!("ck-{r}")).collect();
    let members: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i:02}"), rooms[i % 2].clone()))
        .collect();
    let mut first = start(&keys, &data);
    let (clients, _) = join_all_members(&first.ws_url(), &members).await;
    // Past two checkpoint periods (1 s), so the last checkpoint holds everyone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.sigkill();
    drop(clients);

    let second = start(&keys, &data);
    let started = tokio::time::Instant::now();
    let ws = second.ws_url();
    let mut watchers = watch_rooms(&ws, &rooms).await;
    let mut panels = BTreeMap::new();
    for (room, _, panel) in &watchers {
        assert_eq!(
            crate::support::ids(panel).len(),
            10,
            "{room}: the checkpoint's members restored in their grace: {panel}"
        );
        panels.insert(room.clone(), panel.clone());
    }
    let (_rejoined, _) = join_all_members(&ws, &members[..10]).await;
    let seen = collect(
        &mut watchers,
        started + Duration::from_secs_f64(GRACE_SECS + 3.0),
    )
    .await;
    let back: BTreeSet<String> = members[..10].iter().map(|(id, _)| id.clone()).collect();
    let gone: BTreeSet<String> = members[10..].iter().map(|(id, _)| id.clone()).collect();
    check_watchers(&panels, &seen, &back, &gone);
    for room in &rooms {
        let now = Api::new(second.base()).members(room).await.unwrap();
        assert_eq!(now.len(), 5, "{room}: no ghost outlives the grace: {now:?}");
    }
}
