//! `rest --api lobby-create|video-joined`: REST writes through a vendor façade that each add one
//! new record, closed loop with `--concurrency` calls in flight. Since issue #11 such a write is
//! answered only after the store has committed it, so these calls measure that commit (and,
//! with several in flight, what group commit makes of it: see `store_commits`).
//!
//! - `lobby-create`: PlayFlow `POST /lobbies?name=<config>` with `api-key`, every call a new
//!   lobby with a new host player. Judged afterwards: every lobby answered exists and holds
//!   exactly its host (the operator's `GET /v1/rooms/lobby:<id>`).
//! - `video-joined`: Digital Samba `POST /api/v1/rooms/{room}/phone-participants/joined` with
//!   HTTP Basic, every call one new phone participant (`[{call_id, name}]`), spread over
//!   `--rooms` video rooms made at set-up. One watcher socket per room must see every caller in
//!   a `joined` event, in version order; afterwards each room's panel holds exactly its callers.
//!
//! Any answer but the documented success (201 with an `id` for a lobby, 200 for `joined`) is
//! counted as an error and printed; only successes go into the latency histogram.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cli::{RestApi, RestArgs, TargetArgs};
use super::facade_rest::watch;
use super::lobby::LobbyClient;
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{Counters, Hist};
use super::target::Target;
use super::video::VideoClient;
use super::Error;

/// The façade under test; `Video` holds the UUIDs of the rooms made at set-up.
enum Api {
    Lobby(LobbyClient),
    Video { c: VideoClient, rooms: Vec<String> },
}

impl Api {
    fn label(&self) -> &'static str {
        match self {
            Self::Lobby(_) => "POST /lobbies?name= (api-key, 1 new lobby + host per call)",
            Self::Video { .. } => {
                "POST /api/v1/rooms/{room}/phone-participants/joined (Basic, 1 new caller per call)"
            }
        }
    }

    /// Call `k`: the status and the answer (a lobby's carries its `id`).
    async fn call(&self, tag: &str, k: usize) -> Result<(u16, Value), Error> {
        match self {
            Self::Lobby(c) => {
                c.create_call(&format!("bench lobby {tag} {k}"), &lobby_host(tag, k))
                    .await
            }
            Self::Video { c, rooms } => {
                let room = &rooms[k % rooms.len()];
                c.phone_joined(room, &call_id(tag, k), &format!("Bench caller {k}"))
                    .await
            }
        }
    }

    /// The documented success: 201 with the new lobby's `id`; 200 for `joined`.
    fn ok(&self, status: u16, v: &Value) -> bool {
        match self {
            Self::Lobby(_) => status == 201 && v["id"].is_string(),
            Self::Video { .. } => status == 200,
        }
    }
}

/// The host player of lobby call `k`.
fn lobby_host(tag: &str, k: usize) -> String {
    format!("h{tag}-{k}")
}

/// The phone participant of video call `k`.
fn call_id(tag: &str, k: usize) -> String {
    format!("c{tag}-{k}")
}

/// The member ids of room `key` as the server holds them (empty if the room does not exist).
async fn members(target: &Target, key: &str) -> Result<Option<Vec<String>>, Error> {
    Ok(target.panel(key).await?.map(|p| {
        p["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }))
}

/// Runs `rest --api lobby-create|video-joined` and reports.
pub async fn run(t: &TargetArgs, a: &RestArgs) -> Result<Report, Error> {
    let rooms = a.rooms.max(1);
    let target = Arc::new(Target::start(t, 5.0, rooms).await?);
    let tag = super::run_tag();
    let api = match a.api {
        RestApi::LobbyCreate => Api::Lobby(LobbyClient::new(&target, a)),
        RestApi::VideoJoined => {
            let c = VideoClient::new(&target, a);
            let mut ids = Vec::with_capacity(rooms);
            for ri in 0..rooms {
                ids.push(c.create_room(&format!("b{tag}-{ri}")).await?);
            }
            Api::Video { c, rooms: ids }
        }
        _ => return Err("that call runs in rest.rs / facade_rest.rs".into()),
    };
    let api = Arc::new(api);
    let c = Arc::new(Counters::default());
    let joined = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    if let Api::Video { rooms: ids, .. } = &*api {
        for id in ids {
            tokio::spawn(watch(
                target.clone(),
                VideoClient::room_key(id),
                "joined",
                joined.clone(),
                c.clone(),
                stop.clone(),
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while (Counters::get(&c.opened) as usize) < rooms && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    super::target::phase_hook(t, "start").await;
    let commits0 = target.store_commits().await;
    let cpu = CpuMeter::start(target.pid);
    let lat = Arc::new(Hist::new());
    let next = Arc::new(AtomicUsize::new(0));
    let created: Arc<Vec<OnceLock<String>>> =
        Arc::new((0..a.requests).map(|_| OnceLock::new()).collect());
    let n = a.requests;
    let started = Instant::now();
    let mut loops = Vec::new();
    for w in 0..a.concurrency.max(1) {
        let (api, lat, next, created, c, tag) = (
            api.clone(),
            lat.clone(),
            next.clone(),
            created.clone(),
            c.clone(),
            tag.clone(),
        );
        loops.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Relaxed);
                if k >= n {
                    break;
                }
                let t0 = Instant::now();
                match api.call(&tag, k).await {
                    Ok((s, v)) if api.ok(s, &v) => {
                        lat.record(w, t0.elapsed().as_micros() as u64);
                        if let (Some(id), Some(slot)) = (v["id"].as_str(), created.get(k)) {
                            let _ = slot.set(id.to_owned());
                        }
                    }
                    Ok((s, v)) => {
                        eprintln!("call {k}: HTTP {s} {v}");
                        Counters::inc(&c.errors);
                    }
                    Err(e) => {
                        eprintln!("call {k}: {e}");
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
    let use_ = cpu.stop();
    let h = lat.merged();

    // Judge: every record answered must be on the server, and nothing else.
    let mut lost = 0u64;
    let mut extra = 0u64;
    match &*api {
        Api::Lobby(_) => {
            for (k, id) in created.iter().enumerate() {
                let Some(id) = id.get() else { continue };
                match members(&target, &LobbyClient::room_key(id)).await? {
                    Some(m) => {
                        let host = lobby_host(&tag, k);
                        lost += u64::from(!m.contains(&host));
                        extra += m.iter().filter(|x| **x != host).count() as u64;
                    }
                    None => lost += 1,
                }
            }
        }
        Api::Video { rooms: ids, .. } => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while joined.load(Relaxed) < h.len() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for (ri, id) in ids.iter().enumerate() {
                let expected: Vec<String> = (ri..n)
                    .step_by(ids.len())
                    .map(|k| call_id(&tag, k))
                    .collect();
                let m = members(&target, &VideoClient::room_key(id))
                    .await?
                    .unwrap_or_default();
                lost += expected.iter().filter(|x| !m.contains(x)).count() as u64;
                extra += m.iter().filter(|x| !expected.contains(x)).count() as u64;
            }
        }
    }
    stop.cancel();

    let mut r = Report::new("rest");
    r.add("api", "call", api.label());
    r.add("requests", "requests", n as u64);
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
    if let Api::Video { .. } = &*api {
        r.add(
            "joined_seen",
            "callers in `joined` events seen by the watchers",
            joined.load(Relaxed),
        );
        r.must_be_zero(
            "missing_joined",
            "answered joins no watcher saw",
            h.len().saturating_sub(joined.load(Relaxed)),
        );
    }
    r.must_be_zero("lost", "records answered but missing on the server", lost);
    r.must_be_zero("extra", "members on the server that no call added", extra);
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
