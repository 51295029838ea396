//! `kill -9` mid-traffic (issue 11), against the real binary and a real database file: REST writes
//! of the three façades and socket churn run concurrently, the process is killed, and a new one
//! starts on the same data dir. Every record and ban whose write was answered 2xx before the kill
//! is there (a write in flight at the kill may have landed or not: both outcomes are accepted);
//! every webhook event of an answered REST call reaches a receiver that stayed up (duplicates
//! share a delivery id, order per room kept); no `(epoch, version)` of a room is ever seen with two
//! different memberships.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

mod traffic;

use traffic::*;

use crate::support::durable::*;
use crate::support::process::{Options, Rollcall, TempDir};
use crate::support::ADMIN;

/// Records a failed check instead of panicking, so one run lists every difference.
macro_rules! check {
    ($p:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            $p.push(format!($($fmt)+));
        }
    };
}

/// [`check!`] for equality.
macro_rules! check_eq {
    ($p:expr, $a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            $p.push(format!("{}: {:?}, expected {:?}", format!($($fmt)+), a, b));
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Versions: what a watcher learns about (room, epoch, version) → membership.

/// The membership (sorted ids, host) at each (epoch, version) of a room, and every epoch seen.
#[derive(Default, Debug)]
struct Versions {
    at: BTreeMap<(String, String, u64), (Vec<String>, Value)>,
    epochs: BTreeMap<String, BTreeSet<String>>,
}

impl Versions {
    /// Folds one watcher's messages of `room` in; a conflict with what was seen before is a
    /// problem.
    fn fold(&mut self, room: &str, msgs: &[Value], problems: &mut Vec<String>) {
        let mut cur: Option<(String, u64, BTreeSet<String>, Value)> = None;
        for m in msgs.iter().filter(|m| is_versioned(m)) {
            assert_eq!(m["room"], room, "{m}");
            let ep = epoch(m);
            let v = m["version"].as_u64().expect("a version");
            self.epochs
                .entry(room.to_owned())
                .or_default()
                .insert(ep.clone());
            if m["type"] == "panel" {
                let ids: BTreeSet<String> = crate::support::ids(m).into_iter().collect();
                cur = Some((ep, v, ids, m["host"].clone()));
            } else {
                let Some((cep, cv, ids, host)) = cur.as_mut() else {
                    continue;
                };
                if *cep != ep || *cv + 1 != v {
                    cur = None; // a gap: unknown until the next panel
                    continue;
                }
                *cv = v;
                match m["type"].as_str().unwrap() {
                    "joined" => {
                        for row in m["members"].as_array().unwrap() {
                            ids.insert(row["id"].as_str().unwrap().to_owned());
                        }
                        if !m["host"].is_null() {
                            *host = m["host"].clone();
                        }
                    }
                    "left" => {
                        for id in m["members"].as_array().unwrap() {
                            ids.remove(id.as_str().unwrap());
                        }
                        if m.get("host").is_some() {
                            *host = m["host"].clone();
                        }
                        if ids.is_empty() {
                            *host = Value::Null;
                        }
                    }
                    "host" => *host = m["host"].clone(),
                    _ => {}
                }
            }
            let (cep, cv, ids, host) = cur.as_ref().unwrap();
            let key = (room.to_owned(), cep.clone(), *cv);
            let content = (ids.iter().cloned().collect::<Vec<_>>(), host.clone());
            if let Some(before) = self.at.get(&key) {
                check_eq!(
                    problems,
                    content.0,
                    before.0,
                    "{room} epoch {cep} version {cv}: two memberships under one (epoch, version)"
                );
            } else {
                self.at.insert(key, content);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn start(keys: &SessionKeys, data: &TempDir, hook: &str) -> Rollcall {
    Rollcall::start(
        Options::config(config(
            keys,
            "grace_secs = 2\nban_secs = 600\ncheckpoint_secs = 1\nshutdown_timeout_secs = 2",
            Some(hook),
        ))
        .data_dir(data.path()),
    )
}

/// Watches `room` with the operator token and records what arrives.
async fn watch(ws: &str, room: &str) -> Arc<Mutex<Recording>> {
    let mut w = connect(ws, ADMIN).await;
    w.watch(room).await;
    // The panel came before the ack: `watch` consumed it; ask again so the recording starts with
    // a snapshot.
    send_quiet(&mut w, json!({"type": "sync", "room": room})).await;
    record(w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_traffic_loses_nothing_acknowledged() {
    let keys = Arc::new(SessionKeys::new());
    let data = TempDir::new("crash");
    let (hook, hook_url) = start_hook().await;
    let mut first = start(&keys, &data, &hook_url);
    let api = Api::new(first.base());
    let ws = first.ws_url();

    // Setup: a kick over a lobby socket and in a native room (bans), a fixed room of each façade
    // for the watchers.
    let (st, lobby) = api.lobby_create("sockhost", false).await.unwrap();
    assert_eq!(st, 201, "{lobby}");
    let sock_lobby = lobby["id"].as_str().unwrap().to_owned();
    let (st, v) = api.lobby_join(&sock_lobby, "sockvictim").await.unwrap();
    assert_eq!(st, 200, "{v}");
    let mut lhost = connect(&ws, &token("sockhost")).await;
    lhost.join(&format!("lobby:{sock_lobby}")).await;
    let r = lhost
        .request(
            json!({"type": "kick", "room": format!("lobby:{sock_lobby}"), "member": "sockvictim"}),
        )
        .await;
    assert_eq!(r.last().unwrap()["type"], "ack", "{r:?}");
    let mut nhost = connect(&ws, &token("nathost")).await;
    nhost.join("bans-native").await;
    let mut victim = connect(&ws, &token("natvictim")).await;
    victim.join("bans-native").await;
    nhost.drain().await;
    let msgs = nhost
        .request(json!({"type": "kick", "room": "bans-native", "member": "natvictim"}))
        .await;
    assert_eq!(msgs.last().unwrap()["type"], "ack", "{msgs:?}");
    drop(victim);

    let mut watched = vec!["churn-0".to_owned(), "churn-1".to_owned()];
    let (_, fixed_video) = api
        .video(
            Method::POST,
            "/rooms",
            Some(json!({"friendly_url": "fixed-video"})),
        )
        .await
        .unwrap();
    watched.push(format!("video:{}", fixed_video["id"].as_str().unwrap()));
    watched.push(format!("lobby:{sock_lobby}"));
    let mut recordings = Vec::new();
    for room in &watched {
        // A native room is created by its watcher and lives while watched.
        recordings.push((room.clone(), watch(&ws, room).await));
    }

    // Traffic, then kill -9 with webhooks failing for the last part (a backlog at the kill).
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(video_writer(
        api.clone(),
        stop.clone(),
        ledger.clone(),
    )));
    tasks.push(tokio::spawn(lobby_writer(
        api.clone(),
        stop.clone(),
        ledger.clone(),
    )));
    tasks.push(tokio::spawn(game_writer(
        api.clone(),
        keys.clone(),
        stop.clone(),
        ledger.clone(),
    )));
    for t in 0..6 {
        tasks.push(tokio::spawn(churn(ws.clone(), t, stop.clone())));
    }
    // Fixed video room: phones join one by one while the rest runs.
    let fixed_id = fixed_video["id"].as_str().unwrap().to_owned();
    {
        let (api, stop, l) = (api.clone(), stop.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let call = format!("fx{n}");
                let a = api
                    .video(
                        Method::POST,
                        &format!("/rooms/{fixed_id}/phone-participants/joined"),
                        Some(json!([{"call_id": call, "name": "Fixed"}])),
                    )
                    .await;
                match outcome(&l, "fixed phones joined", &a) {
                    Some(true) => {
                        event(&l, format!("video:{fixed_id}"), "participant_joined", &call)
                    }
                    _ => return,
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hook.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    first.sigkill();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .expect("writers stop once the server is gone")
            .expect("writer task");
    }
    drop((lhost, nhost));
    let pre: Vec<(String, Vec<Value>)> = recordings
        .iter()
        .map(|(room, r)| (room.clone(), r.lock().unwrap().messages.clone()))
        .collect();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        ledger.failures.is_empty(),
        "writes refused before the kill: {:#?}",
        ledger.failures
    );
    assert!(
        ledger.videos.len() >= 2 && ledger.lobbies.len() >= 2 && ledger.games.len() >= 2,
        "traffic ran: {} video rooms, {} lobbies, {} game rooms",
        ledger.videos.len(),
        ledger.lobbies.len(),
        ledger.games.len()
    );
    println!(
        "before the kill: {} video rooms, {} lobbies, {} game rooms, {} tasks, {} webhook events",
        ledger.videos.len(),
        ledger.lobbies.len(),
        ledger.games.len(),
        ledger.tasks.len(),
        ledger.webhook_events.len()
    );

    // Restart on the same data dir; the receiver is back.
    let hits_before_restart = hook.hits.lock().unwrap().len();
    hook.down.store(false, Ordering::SeqCst);
    let second = start(&keys, &data, &hook_url);
    let api = Api::new(second.base());
    let ws = second.ws_url();

    let mut problems: Vec<String> = Vec::new();

    // 1. Records.
    for (id, e) in &ledger.videos {
        let (st, v) = api
            .video(Method::GET, &format!("/rooms/{id}"), None)
            .await
            .expect("answers");
        let got: VideoState = match st {
            404 => None,
            200 => {
                let phones = api
                    .members(&format!("video:{id}"))
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                Some((phones, v["description"].as_str().unwrap_or("").to_owned()))
            }
            _ => panic!("{}: {st} {v}", e.what),
        };
        check!(
            problems,
            e.states.contains(&got),
            "{}: after the restart {got:?}, expected one of {:?}",
            e.what,
            e.states
        );
    }
    for (id, e) in &ledger.lobbies {
        let (st, v) = api
            .lobby(Method::GET, &format!("/lobbies/{id}"), None)
            .await
            .expect("answers");
        let got: LobbyState = match st {
            404 => None,
            200 => Some((
                v["players"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_owned())
                    .collect(),
                v["host"].as_str().unwrap_or("").to_owned(),
                v["inviteCode"].as_str().unwrap_or("").to_owned(),
            )),
            _ => panic!("{}: {st} {v}", e.what),
        };
        check!(
            problems,
            e.states.contains(&got),
            "{}: after the restart {got:?}, expected one of {:?}",
            e.what,
            e.states
        );
    }
    for (id, e) in &ledger.games {
        let got: GameState = api
            .members(&format!("game:{GAME}:{id}"))
            .await
            .map(|m| m.into_iter().collect());
        check!(
            problems,
            e.states.contains(&got),
            "{}: after the restart {got:?}, expected one of {:?}",
            e.what,
            e.states
        );
    }
    for (id, before) in &ledger.tasks {
        let (st, v) = api
            .game_get(&format!("/task/status/{id}"))
            .await
            .expect("answers");
        check_eq!(problems, st, 200, "task {id}");
        check_eq!(
            problems,
            v["status"],
            "SUCCESS",
            "task {id} after the restart: {v}"
        );
        check_eq!(
            problems,
            v["completedAt"],
            before["completedAt"],
            "task {id}: completedAt after the restart"
        );
        check_eq!(
            problems,
            v["taskData"],
            before["taskData"],
            "task {id}: taskData after the restart"
        );
    }

    // 2. Bans: REST kicks, a lobby socket kick, a native socket kick.
    for (lobby, player) in &ledger.lobby_bans {
        let (st, v) = api.lobby_join(lobby, player).await.expect("answers");
        let may_be_gone = ledger
            .lobbies
            .iter()
            .any(|(id, e)| id == lobby && e.states.contains(&None));
        if st == 404 && may_be_gone {
            continue; // its delete was in flight at the kill, and landed
        }
        check_eq!(
            problems,
            st,
            403,
            "{player} was kicked from lobby {lobby}: {v}"
        );
    }
    let (st, v) = api.lobby_join(&sock_lobby, "sockvictim").await.unwrap();
    check_eq!(
        problems,
        st,
        403,
        "kicked by a lobby socket before the kill: {v}"
    );
    let mut victim = connect(&ws, &token("natvictim")).await;
    let r = victim
        .request(json!({"type": "join", "room": "bans-native"}))
        .await;
    let reply = r.last().unwrap();
    check_eq!(
        problems,
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("banned")),
        "kicked from a native room by a socket before the kill: {r:?}"
    );

    // 3. Webhooks: every event of an acknowledged REST call arrives (2xx), duplicates share a
    // delivery id, each room's events arrive in version order.
    let key = |h: &Hit| {
        let d = &h.json["data"];
        (
            d["room_id"].as_str().unwrap_or("").to_owned(),
            h.json["event"].as_str().unwrap_or("").to_owned(),
            d["participant_id"].as_str().unwrap_or("").to_owned(),
        )
    };
    let arrived = eventually(Duration::from_secs(20), || {
        let hits = hook.hits.lock().unwrap().clone();
        let got: BTreeSet<_> = hits.iter().filter(|h| h.ok).map(key).collect();
        let done = ledger.webhook_events.is_subset(&got);
        async move { done }
    })
    .await;
    let hits = hook.hits.lock().unwrap().clone();
    let redelivered: BTreeSet<&str> = hits[hits_before_restart..]
        .iter()
        .filter(|h| h.ok && ledger.webhook_events.contains(&key(h)))
        .map(|h| h.delivery.as_str())
        .collect();
    println!(
        "webhooks: {} requests before the restart, {} events of acknowledged calls delivered after it",
        hits_before_restart,
        redelivered.len()
    );
    let got: BTreeSet<_> = hits.iter().filter(|h| h.ok).map(key).collect();
    let missing: Vec<_> = ledger.webhook_events.difference(&got).collect();
    check!(
        problems,
        arrived,
        "{} of {} webhook events of acknowledged REST calls never arrived, e.g. {:?}",
        missing.len(),
        ledger.webhook_events.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    let mut by_key: HashMap<(String, String, String), BTreeSet<String>> = HashMap::new();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for h in &hits {
        check!(
            problems,
            !h.delivery.is_empty(),
            "a delivery id: {}",
            h.json
        );
        if let Some(before) = by_id.get(&h.delivery) {
            check_eq!(
                problems,
                before["data"],
                h.json["data"],
                "one delivery id, one event: {}",
                h.delivery
            );
        } else {
            by_id.insert(h.delivery.clone(), h.json.clone());
        }
        let k = key(h);
        if ledger.webhook_events.contains(&k) {
            by_key.entry(k).or_default().insert(h.delivery.clone());
        }
    }
    for (k, ids) in &by_key {
        check_eq!(
            problems,
            ids.len(),
            1,
            "{k:?} delivered under several delivery ids: {ids:?}"
        );
    }
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut first_ok = BTreeSet::new();
    for h in hits.iter().filter(|h| h.ok) {
        if !ledger.webhook_events.contains(&key(h)) || !first_ok.insert(h.delivery.clone()) {
            continue;
        }
        if let Some(v) = h.json["data"]["version"].as_u64() {
            order.entry(key(h).0).or_default().push(v);
        }
    }
    for (room, versions) in &order {
        check!(
            problems,
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{room}: webhook events out of order: {versions:?}"
        );
    }

    // 4. Versions: no (epoch, version) reused with another membership; restored rooms have a new
    // epoch.
    let mut versions = Versions::default();
    for (room, msgs) in &pre {
        versions.fold(room, msgs, &mut problems);
    }
    let old_epochs = versions.epochs.clone();
    let mut post = Vec::new();
    for room in &watched {
        let (st, panel) = api
            .admin_get(&format!("/v1/rooms/{room}"))
            .await
            .expect("answers");
        if st == 404 && room.starts_with("churn-") {
            continue; // a native room nobody is in any more
        }
        check_eq!(problems, st, 200, "{room}: {panel}");
        let ep = epoch(&panel);
        check!(
            problems,
            !old_epochs.get(room).is_some_and(|e| e.contains(&ep)),
            "{room}: restored under an epoch of the previous process ({ep})"
        );
        post.push((room.clone(), watch(&ws, room).await));
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // past the grace: timeouts happen
    for (room, r) in &post {
        let msgs = r.lock().unwrap().messages.clone();
        versions.fold(room, &msgs, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "{} problems after the restart:\n{}",
        problems.len(),
        problems.join("\n")
    );
    drop(second);
}

/// Reads `c` for `wait` without panicking on a closed or broken socket.
async fn read_quietly(c: &mut crate::support::Client, wait: Duration) {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, c.ws.next()).await {}
}
