//! The traffic of the `kill -9` test: a webhook receiver that outlives the server, the ledger of
//! what was answered, and the writers of the three façades and the socket churn.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};

use super::read_quietly;
use crate::support::durable::*;

// ---------------------------------------------------------------------------------------------
// A webhook receiver that stays up across the kill and can be switched to failing.

#[derive(Clone, Debug)]
pub(super) struct Hit {
    pub(super) delivery: String,
    pub(super) json: Value,
    pub(super) ok: bool,
}

#[derive(Clone, Default)]
pub(super) struct Hook {
    pub(super) down: Arc<AtomicBool>,
    pub(super) hits: Arc<Mutex<Vec<Hit>>>,
}

pub(super) async fn hook(State(h): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let down = h.down.load(Ordering::SeqCst);
    let delivery = headers
        .get("x-rollcall-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    h.hits.lock().unwrap().push(Hit {
        delivery,
        json,
        ok: !down,
    });
    if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

pub(super) async fn start_hook() -> (Hook, String) {
    let h = Hook::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(h.clone());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", tcp.local_addr().unwrap());
    tokio::spawn(async move {
        // Ends with the test's runtime.
        let _ = axum::serve(tcp, app).await;
    });
    (h, url)
}

// ---------------------------------------------------------------------------------------------
// Records and what the writers know of them.

/// What a record may be after the restart: the state after the last acknowledged write, or (when
/// a write was in flight at the kill) the state after that write too.
#[derive(Debug, Clone)]
pub(super) struct Expect<S> {
    pub(super) what: String,
    pub(super) states: Vec<S>,
}

/// A video room: `None` once deleted; else its phones and description.
pub(super) type VideoState = Option<(BTreeSet<String>, String)>;
/// A lobby: `None` once deleted; else (players, host, invite code).
pub(super) type LobbyState = Option<(BTreeSet<String>, String, String)>;
/// A game room: `None` once ended; else its players.
pub(super) type GameState = Option<BTreeSet<String>>;

/// Everything the writers learnt before the kill.
#[derive(Default)]
pub(super) struct Ledger {
    pub(super) videos: Vec<(String, Expect<VideoState>)>,
    pub(super) lobbies: Vec<(String, Expect<LobbyState>)>,
    pub(super) games: Vec<(String, Expect<GameState>)>,
    /// Task id → the SUCCESS body seen before the kill.
    pub(super) tasks: Vec<(String, Value)>,
    /// (lobby id, player) kicked over REST, acknowledged, lobby not deleted after.
    pub(super) lobby_bans: Vec<(String, String)>,
    /// (room, event, participant) of every acknowledged REST change.
    pub(super) webhook_events: BTreeSet<(String, String, String)>,
    /// Answers that were neither 2xx nor missing: a bug before the kill.
    pub(super) failures: Vec<String>,
}

pub(super) fn set<S: AsRef<str>>(ids: &[S]) -> BTreeSet<String> {
    ids.iter().map(|s| s.as_ref().to_owned()).collect()
}

pub(super) fn ok(a: &Answer) -> bool {
    matches!(a, Some((st, _)) if (200..300).contains(st))
}

/// Records an answer: `Some(true)` acknowledged, `Some(false)` refused (a failure), `None` no
/// answer (the kill).
pub(super) fn outcome(ledger: &Mutex<Ledger>, what: &str, a: &Answer) -> Option<bool> {
    match a {
        None => None,
        Some(_) if ok(a) => Some(true),
        Some((st, v)) => {
            ledger
                .lock()
                .unwrap()
                .failures
                .push(format!("{what}: {st} {v}"));
            Some(false)
        }
    }
}

/// Applies one write to a record: acknowledged → the new state; no answer → both; refused →
/// unchanged. Returns false when the writer should stop (no answer, or refused).
pub(super) fn apply<S: Clone>(e: &mut Expect<S>, next: S, out: Option<bool>) -> bool {
    match out {
        Some(true) => {
            e.states = vec![next];
            true
        }
        None => {
            e.states.push(next);
            false
        }
        Some(false) => false,
    }
}

pub(super) fn event(l: &Mutex<Ledger>, room: String, ev: &str, who: &str) {
    l.lock()
        .unwrap()
        .webhook_events
        .insert((room, ev.into(), who.into()));
}

/// Video rooms: create, two phones join, one leaves, a description, every fourth deleted.
pub(super) async fn video_writer(api: Api, stop: Arc<AtomicBool>, l: Arc<Mutex<Ledger>>) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let a = api
            .video(
                Method::POST,
                "/rooms",
                Some(json!({"friendly_url": format!("crash-{i}")})),
            )
            .await;
        if outcome(&l, "video create", &a) != Some(true) {
            return; // an unanswered create leaves no id to check
        }
        let id = a.unwrap().1["id"].as_str().unwrap().to_owned();
        let room = format!("video:{id}");
        let idx = {
            let mut g = l.lock().unwrap();
            g.videos.push((
                id.clone(),
                Expect {
                    what: format!("video room {id}"),
                    states: vec![Some((BTreeSet::new(), String::new()))],
                },
            ));
            g.videos.len() - 1
        };
        let (pa, pb) = (format!("va{i}"), format!("vb{i}"));
        let steps: Vec<(&str, Method, String, Option<Value>, VideoState)> = vec![
            (
                "phones joined",
                Method::POST,
                format!("/rooms/{id}/phone-participants/joined"),
                Some(
                    json!([{"call_id": pa, "name": "Caller A"}, {"call_id": pb, "name": "Caller B"}]),
                ),
                Some((set(&[&pa, &pb]), String::new())),
            ),
            (
                "phones left",
                Method::POST,
                format!("/rooms/{id}/phone-participants/left"),
                Some(json!([pb])),
                Some((set(&[&pa]), String::new())),
            ),
            (
                "video update",
                Method::PATCH,
                format!("/rooms/{id}"),
                Some(json!({"description": format!("description {i}")})),
                Some((set(&[&pa]), format!("description {i}"))),
            ),
        ];
        for (what, m, path, body, next) in steps {
            let a = api.video(m, &path, body).await;
            let out = outcome(&l, what, &a);
            if out == Some(true) {
                match what {
                    "phones joined" => {
                        event(&l, room.clone(), "participant_joined", &pa);
                        event(&l, room.clone(), "participant_joined", &pb);
                    }
                    "phones left" => event(&l, room.clone(), "participant_left", &pb),
                    _ => {}
                }
            }
            if !apply(&mut l.lock().unwrap().videos[idx].1, next, out) {
                return;
            }
        }
        if i % 4 == 3 {
            let a = api
                .video(Method::DELETE, &format!("/rooms/{id}"), None)
                .await;
            let out = outcome(&l, "video delete", &a);
            if !apply(&mut l.lock().unwrap().videos[idx].1, None, out) {
                return;
            }
        }
    }
}

/// Lobbies: create (invite code), three join, one kicked (a ban), one leaves, a settings update,
/// every fifth deleted.
pub(super) async fn lobby_writer(api: Api, stop: Arc<AtomicBool>, l: Arc<Mutex<Ledger>>) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let host = format!("lh{i}");
        let a = api.lobby_create(&host, true).await;
        if outcome(&l, "lobby create", &a) != Some(true) {
            return;
        }
        let lobby = a.unwrap().1;
        let id = lobby["id"].as_str().unwrap().to_owned();
        let code = lobby["inviteCode"].as_str().unwrap_or("").to_owned();
        let room = format!("lobby:{id}");
        event(&l, room.clone(), "participant_joined", &host);
        let idx = {
            let mut g = l.lock().unwrap();
            g.lobbies.push((
                id.clone(),
                Expect {
                    what: format!("lobby {id}"),
                    states: vec![Some((set(&[&host]), host.clone(), code.clone()))],
                },
            ));
            g.lobbies.len() - 1
        };
        let (pa, pb, pc) = (format!("la{i}"), format!("lb{i}"), format!("lc{i}"));
        let mut players = set(&[&host]);
        for p in [&pa, &pb, &pc] {
            let a = api.lobby_join(&id, p).await;
            let out = outcome(&l, "lobby join", &a);
            players.insert(p.clone());
            if out == Some(true) {
                event(&l, room.clone(), "participant_joined", p);
            }
            let next = Some((players.clone(), host.clone(), code.clone()));
            if !apply(&mut l.lock().unwrap().lobbies[idx].1, next, out) {
                return;
            }
        }
        // The host kicks `pb` (a ban); `pa` leaves on its own.
        for (target, requester, kick) in [(&pb, &host, true), (&pa, &pa, false)] {
            let a = api.lobby_remove(&id, target, requester, kick).await;
            let out = outcome(&l, "lobby remove", &a);
            players.remove(target);
            if out == Some(true) {
                event(&l, room.clone(), "participant_left", target);
                if kick {
                    l.lock()
                        .unwrap()
                        .lobby_bans
                        .push((id.clone(), target.clone()));
                }
            }
            let next = Some((players.clone(), host.clone(), code.clone()));
            if !apply(&mut l.lock().unwrap().lobbies[idx].1, next, out) {
                return;
            }
        }
        let body = json!({"requesterId": host, "settings": {"settings": {"round": i}}});
        let a = api
            .lobby(Method::PUT, &format!("/lobbies/{id}"), Some(body))
            .await;
        let out = outcome(&l, "lobby update", &a);
        let next = Some((players.clone(), host.clone(), code.clone()));
        if !apply(&mut l.lock().unwrap().lobbies[idx].1, next, out) {
            return;
        }
        if i % 5 == 4 {
            let a = api
                .lobby(
                    Method::DELETE,
                    &format!("/lobbies/{id}"),
                    Some(json!({"playerId": host})),
                )
                .await;
            let out = outcome(&l, "lobby delete", &a);
            if out == Some(true) {
                l.lock().unwrap().lobby_bans.retain(|(lid, _)| lid != &id);
            }
            if !apply(&mut l.lock().unwrap().lobbies[idx].1, None, out) {
                return;
            }
        }
    }
}

/// Records a synchronous game answer's task (SUCCESS bodies are checked by id after the restart).
pub(super) fn game_task(l: &Mutex<Ledger>, a: &Answer) {
    if let Some((200, v)) = a {
        if v["status"] == "SUCCESS" {
            if let Some(id) = v["taskId"].as_str() {
                l.lock().unwrap().tasks.push((id.to_owned(), v.clone()));
            }
        }
    }
}

/// Game rooms: create, three join, one leaves (sync), one joins asynchronously (its task polled to
/// SUCCESS), every third ended.
pub(super) async fn game_writer(
    api: Api,
    keys: Arc<SessionKeys>,
    stop: Arc<AtomicBool>,
    l: Arc<Mutex<Ledger>>,
) {
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let a = api.game("/game/create", json!({"sync": true})).await;
        if outcome(&l, "game create", &a) != Some(true) {
            return;
        }
        game_task(&l, &a);
        let id = a.unwrap().1["roomId"].as_str().unwrap().to_owned();
        let room = format!("game:{GAME}:{id}");
        let idx = {
            let mut g = l.lock().unwrap();
            g.games.push((
                id.clone(),
                Expect {
                    what: format!("game room {id}"),
                    states: vec![Some(BTreeSet::new())],
                },
            ));
            g.games.len() - 1
        };
        let (pa, pb, pc, pd) = (
            format!("ga{i}"),
            format!("gb{i}"),
            format!("gc{i}"),
            format!("gd{i}"),
        );
        let jwts: Vec<String> = [&pa, &pb, &pc].iter().map(|p| keys.session(p)).collect();
        let a = api
            .game(
                "/game/join",
                json!({"roomId": id, "sessionJwts": jwts, "sync": true}),
            )
            .await;
        let out = outcome(&l, "game join", &a);
        if out == Some(true) {
            game_task(&l, &a);
            for p in [&pa, &pb, &pc] {
                event(&l, room.clone(), "participant_joined", p);
            }
        }
        if !apply(
            &mut l.lock().unwrap().games[idx].1,
            Some(set(&[&pa, &pb, &pc])),
            out,
        ) {
            return;
        }
        let a = api
            .game(
                "/game/leave",
                json!({"roomId": id, "sessionJwts": [keys.session(&pb)], "sync": true}),
            )
            .await;
        let out = outcome(&l, "game leave", &a);
        if out == Some(true) {
            game_task(&l, &a);
            event(&l, room.clone(), "participant_left", &pb);
        }
        if !apply(
            &mut l.lock().unwrap().games[idx].1,
            Some(set(&[&pa, &pc])),
            out,
        ) {
            return;
        }
        // An asynchronous join: acknowledged with a task id; the room holds the player only once
        // the task has run, so the state is settled by polling.
        let a = api
            .game(
                "/game/join",
                json!({"roomId": id, "sessionJwts": [keys.session(&pd)]}),
            )
            .await;
        let out = outcome(&l, "game async join", &a);
        let after = Some(set(&[&pa, &pc, &pd]));
        if out != Some(true) {
            apply(&mut l.lock().unwrap().games[idx].1, after, out);
            return;
        }
        let task = a.unwrap().1["task"]["id"].as_str().unwrap().to_owned();
        // Until the poll says SUCCESS the join may or may not have run.
        l.lock().unwrap().games[idx].1.states.push(after.clone());
        let mut done = false;
        for _ in 0..100 {
            match api.game_get(&format!("/task/status/{task}")).await {
                Some((200, v)) if v["status"] == "SUCCESS" => {
                    l.lock().unwrap().tasks.push((task.clone(), v));
                    done = true;
                    break;
                }
                Some((200, v)) if v["status"] == "PENDING" => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Some((st, v)) => {
                    l.lock()
                        .unwrap()
                        .failures
                        .push(format!("task {task}: {st} {v}"));
                    return;
                }
                None => return,
            }
        }
        if !done {
            return;
        }
        event(&l, room.clone(), "participant_joined", &pd);
        l.lock().unwrap().games[idx].1.states = vec![after];
        if i % 3 == 2 {
            let a = api
                .game("/game/end", json!({"roomId": id, "sync": true}))
                .await;
            let out = outcome(&l, "game end", &a);
            if out == Some(true) {
                game_task(&l, &a);
            }
            if !apply(&mut l.lock().unwrap().games[idx].1, None, out) {
                return;
            }
        }
    }
}

/// Socket churn in native rooms: connect, join, set a state, then leave or just drop.
pub(super) async fn churn(ws: String, t: usize, stop: Arc<AtomicBool>) {
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(mut c) = try_connect(&ws, &token(&format!("c{t}-{n}"))).await else {
            return;
        };
        let room = format!("churn-{}", t % 4);
        if !send_quiet(&mut c, json!({"type": "join", "room": room})).await {
            return;
        }
        let _ = send_quiet(
            &mut c,
            json!({"type": "state", "room": room, "state": {"n": n}}),
        )
        .await;
        if n % 2 == 0 {
            let _ = send_quiet(&mut c, json!({"type": "leave", "room": room})).await;
        }
        // Read whatever came, briefly, then drop the socket.
        read_quietly(&mut c, Duration::from_millis(20)).await;
    }
}
