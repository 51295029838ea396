//! `rest --api game|lobby-leave|lobby-kick`: sustained leave calls through a vendor façade,
//! closed loop with `--concurrency` calls in flight, one player per call.
//!
//! Setup goes through the same façade: R rooms (`/game/create`, or `POST /lobbies` by a host
//! player), their players added by its REST API, and one watcher socket per room
//! (`watch game:<gameId>:<roomId>` / `lobby:<id>`) that checks every leave reaches sockets as
//! exactly one `left`, in version order. At the end the server's snapshot of each room must
//! hold exactly the players that were not removed (no ghost).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::cli::{RestApi, RestArgs, TargetArgs};
use super::game::GameClient;
use super::lobby::LobbyClient;
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{Counters, Hist};
use super::target::Target;
use super::ws::{self, Frame};
use super::Error;

/// The façade under test.
enum Api {
    Game(GameClient),
    Lobby { c: LobbyClient, kick: bool },
}

/// One room: its façade id, the host that stays (lobbies), and the players that will leave,
/// each with its credential (a session JWT for the game façade).
struct Room {
    id: String,
    host: Option<String>,
    players: Vec<(String, String)>,
}

impl Api {
    fn label(&self) -> &'static str {
        match self {
            Self::Game(_) => "POST /game/leave (sync, HMAC-signed, 1 session JWT)",
            Self::Lobby { kick: false, .. } => "DELETE /lobbies/{id}/players/{p}?requesterId={p}",
            Self::Lobby { kick: true, .. } => {
                "DELETE /lobbies/{id}/players/{p}?requesterId={host}&isKick=true"
            }
        }
    }

    fn room_key(&self, id: &str) -> String {
        match self {
            Self::Game(g) => g.room_key(id),
            Self::Lobby { .. } => LobbyClient::room_key(id),
        }
    }

    async fn setup(&self, tag: &str, ri: usize, size: usize) -> Result<Room, Error> {
        let names: Vec<String> = (0..=size).map(|i| format!("p{tag}-{ri}-{i}")).collect();
        match self {
            Self::Game(g) => {
                let id = g.create_room().await?;
                let jwts = g.add_players(&id, &names[1..]).await?;
                let players = names[1..].iter().cloned().zip(jwts).collect();
                Ok(Room {
                    id,
                    host: None,
                    players,
                })
            }
            Self::Lobby { c, .. } => {
                let id = c
                    .create(&format!("bench lobby {tag} {ri}"), &names[0])
                    .await?;
                for p in &names[1..] {
                    c.add(&id, p).await?;
                }
                let players = names[1..]
                    .iter()
                    .map(|p| (p.clone(), String::new()))
                    .collect();
                Ok(Room {
                    id,
                    host: Some(names[0].clone()),
                    players,
                })
            }
        }
    }

    async fn leave(&self, room: &Room, player: &str, cred: &str) -> Result<(u16, Value), Error> {
        match self {
            Self::Game(g) => g.leave(&room.id, cred).await,
            Self::Lobby { c, kick } => {
                c.remove(
                    &room.id,
                    player,
                    kick.then_some(room.host.as_deref()).flatten(),
                )
                .await
            }
        }
    }
}

/// Watches one room and counts the members named by its events of type `counted` (`left`
/// here; `joined` for `rest --api video-joined`).
pub(crate) async fn watch(
    target: Arc<Target>,
    room: String,
    counted: &'static str,
    left: Arc<AtomicU64>,
    c: Arc<Counters>,
    stop: CancellationToken,
) {
    // Façade rooms are visible to the operator token only (tenant isolation).
    let token = target.admin.clone();
    let mut ws = match ws::connect(target.addr, &target.ws_url(), &token, None).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("watcher of {room}: {e}");
            Counters::inc(&c.conn_failures);
            return;
        }
    };
    let req = json!({"type": "watch", "room": room, "ref": 1}).to_string();
    if ws.send(Message::text(req)).await.is_err() {
        Counters::inc(&c.errors);
        return;
    }
    let mut last = None::<u64>;
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return,
            m = ws.next() => m,
        };
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            _ => {
                if !stop.is_cancelled() {
                    Counters::inc(&c.errors);
                }
                return;
            }
        };
        let Ok(f) = Frame::parse(text.as_str()) else {
            continue;
        };
        match &*f.ty {
            "ack" => Counters::inc(&c.opened),
            "error" => {
                eprintln!("watcher of {room}: {text}");
                Counters::inc(&c.errors);
            }
            _ => {}
        }
        let Some(v) = f.version else { continue };
        match (f.ty.as_ref(), last) {
            ("panel", _) => last = Some(v),
            (_, Some(l)) if v <= l => Counters::inc(&c.duplicates),
            (ty, Some(l)) => {
                c.gaps.fetch_add(v - l - 1, Relaxed);
                last = Some(v);
                if ty == counted {
                    left.fetch_add(f.member_ids().len() as u64, Relaxed);
                }
            }
            _ => Counters::inc(&c.errors),
        }
    }
}

/// Runs `rest` through a façade and reports.
pub async fn run(t: &TargetArgs, a: &RestArgs) -> Result<Report, Error> {
    let rooms = a.rooms.max(1);
    let size = a.requests.div_ceil(rooms).max(1);
    let target = Arc::new(Target::start(t, 5.0, rooms).await?);
    let api = Arc::new(match a.api {
        RestApi::Game => Api::Game(GameClient::new(&target, a)?),
        RestApi::LobbyLeave | RestApi::LobbyKick => {
            if size > 99 {
                return Err("a lobby holds at most 100 players: use more --rooms".into());
            }
            Api::Lobby {
                c: LobbyClient::new(&target, a),
                kick: a.api == RestApi::LobbyKick,
            }
        }
        RestApi::Operator | RestApi::LobbyCreate | RestApi::VideoJoined => {
            return Err("that call runs in rest.rs / facade_write.rs".into())
        }
    });
    let tag = super::run_tag();
    let mut all = Vec::with_capacity(rooms);
    for ri in 0..rooms {
        all.push(api.setup(&tag, ri, size).await?);
    }
    let all = Arc::new(all);
    let mut calls: Vec<(usize, usize)> = (0..size)
        .flat_map(|i| (0..rooms).map(move |ri| (ri, i)))
        .collect();
    calls.truncate(a.requests);
    let c = Arc::new(Counters::default());
    let left = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    for room in all.iter() {
        tokio::spawn(watch(
            target.clone(),
            api.room_key(&room.id),
            "left",
            left.clone(),
            c.clone(),
            stop.clone(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (Counters::get(&c.opened) as usize) < rooms && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    super::target::phase_hook(t, "start").await;
    let commits0 = target.store_commits().await;
    let cpu = CpuMeter::start(target.pid);
    let lat = Arc::new(Hist::new());
    let next = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(calls);
    let started = Instant::now();
    let mut loops = Vec::new();
    for w in 0..a.concurrency.max(1) {
        let (api, all, lat, next, calls, c) = (
            api.clone(),
            all.clone(),
            lat.clone(),
            next.clone(),
            calls.clone(),
            c.clone(),
        );
        loops.push(tokio::spawn(async move {
            while let Some(&(ri, i)) = calls.get(next.fetch_add(1, Relaxed)) {
                let room = &all[ri];
                let (p, cred) = &room.players[i];
                let t0 = Instant::now();
                match api.leave(room, p, cred).await {
                    Ok((200, _)) => lat.record(w, t0.elapsed().as_micros() as u64),
                    Ok((s, v)) => {
                        eprintln!("leave {p}: HTTP {s} {v}");
                        Counters::inc(&c.errors);
                    }
                    Err(e) => {
                        eprintln!("leave {p}: {e}");
                        Counters::inc(&c.errors);
                    }
                }
            }
        }));
    }
    for l in loops {
        let _ = l.await; // a panicked loop shows as fewer samples
    }
    let secs = started.elapsed().as_secs_f64();
    let commits1 = target.store_commits().await;
    super::target::phase_hook(t, "end").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (left.load(Relaxed) as usize) < calls.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let use_ = cpu.stop();
    stop.cancel();
    // Who should still be in each room: the host (lobbies) and the players never removed.
    let mut ghosts = 0u64;
    let mut lost = 0u64;
    for (ri, room) in all.iter().enumerate() {
        let removed: Vec<&str> = calls
            .iter()
            .filter(|(r, _)| *r == ri)
            .map(|(_, i)| room.players[*i].0.as_str())
            .collect();
        let members: Vec<String> = match target.panel(&api.room_key(&room.id)).await? {
            Some(p) => p["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|x| x["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let room_ghosts = members
            .iter()
            .filter(|m| removed.contains(&m.as_str()))
            .count();
        let should = room.players.len() - removed.len() + usize::from(room.host.is_some());
        ghosts += room_ghosts as u64;
        lost += should.saturating_sub(members.len() - room_ghosts) as u64;
    }
    let h = lat.merged();
    let mut r = Report::new("rest");
    r.add("api", "call", api.label());
    r.add("requests", "requests", calls.len() as u64);
    r.add("concurrency", "in flight", a.concurrency as u64);
    r.add(
        "requests_per_sec",
        "requests per second",
        h.len() as f64 / secs,
    );
    r.latency("request_latency", "request latency", &h);
    r.store_commits(commits0, commits1, h.len());
    r.picture(
        &format!("rest: {}, {} in flight", api.label(), a.concurrency),
        &h,
    );
    r.add(
        "left_seen",
        "players in `left` events seen by the watchers",
        left.load(Relaxed),
    );
    r.must_be_zero(
        "missing_left",
        "leaves no watcher saw",
        (calls.len() as u64).saturating_sub(left.load(Relaxed)),
    );
    r.must_be_zero("ghosts", "ghosts (removed players still in a room)", ghosts);
    r.must_be_zero("lost", "players missing that were never removed", lost);
    r.must_be_zero(
        "missing_events",
        "missing events (version gaps)",
        Counters::get(&c.gaps),
    );
    r.must_be_zero(
        "duplicates",
        "duplicate events",
        Counters::get(&c.duplicates),
    );
    r.must_be_zero(
        "conn_failures",
        "watcher connection failures",
        Counters::get(&c.conn_failures),
    );
    r.must_be_zero("errors", "errors", Counters::get(&c.errors));
    r.cpu(target.mode(), &use_);
    target.stop().await;
    Ok(r)
}
