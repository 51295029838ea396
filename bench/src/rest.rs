//! `rest`: sustained REST leave calls, closed loop with `--concurrency` calls in flight.
//! Each call removes one member that holds a real socket, so every call does the whole job
//! (auth, the room actor, one `left` fanned out). Measured: requests per second and the
//! request latency; also the leave → `left` latency at the other members.
//!
//! `--api operator` runs here; the façade leaves (`game`, `lobby-leave`, `lobby-kick`) set up
//! their rooms through the façade itself and run in `facade_rest.rs`; the façade writes that add
//! one record per call (`lobby-create`, `video-joined`) run in `facade_write.rs`.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cli::{RestApi, RestArgs, TargetArgs};
use super::fleet::Fleet;
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{progress, Counters, Hist};
use super::target::Target;
use super::Error;

/// One operator leave call for member `g`; the HTTP status.
async fn call(target: &Target, fleet: &Fleet, g: usize) -> Result<u16, Error> {
    let room = fleet.room_name(fleet.room_of(g));
    target.rest_leave(&room, &fleet.member_id(g)).await
}

/// Runs `rest` and reports.
pub async fn run(t: &TargetArgs, a: &RestArgs) -> Result<Report, Error> {
    match a.api {
        RestApi::Operator => {}
        RestApi::LobbyCreate | RestApi::VideoJoined => return super::facade_write::run(t, a).await,
        RestApi::Game | RestApi::LobbyLeave | RestApi::LobbyKick => {
            return super::facade_rest::run(t, a).await
        }
    }
    let rooms = a.rooms.max(1);
    let size = a.requests.div_ceil(rooms).max(1);
    let target = Arc::new(Target::start(t, 5.0, rooms * size).await?);
    let fleet = Fleet::new(rooms, size);
    let stop = CancellationToken::new();
    tokio::spawn(progress("rest", fleet.c.clone(), String::new, stop.clone()));
    let mut r = Report::new("rest");
    let sem = Arc::new(Semaphore::new(t.connect_concurrency.max(1)));
    let mut joins = Vec::new();
    for g in 0..rooms * size {
        let permit = sem.clone().acquire_owned().await?;
        let (f, tg) = (fleet.clone(), target.clone());
        joins.push(tokio::spawn(async move {
            let ok = f.connect(&tg, g).await;
            drop(permit);
            ok
        }));
    }
    let mut members = Vec::new();
    for (g, j) in joins.into_iter().enumerate() {
        if j.await.unwrap_or(false) {
            members.push(g);
        }
    }
    members.truncate(a.requests);
    fleet.settle(&target, Duration::from_secs(30)).await?;

    super::target::phase_hook(t, "start").await;
    let commits0 = target.store_commits().await;
    let cpu = CpuMeter::start(target.pid);
    let lat = Arc::new(Hist::new());
    let next = Arc::new(AtomicUsize::new(0));
    let members = Arc::new(members);
    let started = Instant::now();
    let mut loops = Vec::new();
    for w in 0..a.concurrency.max(1) {
        let (f, tg, lat, next, members) = (
            fleet.clone(),
            target.clone(),
            lat.clone(),
            next.clone(),
            members.clone(),
        );
        loops.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Relaxed);
                let Some(&g) = members.get(k) else { break };
                let slot = &f.slots[g];
                slot.leaving.store(true, Relaxed);
                slot.reason.store(4, Relaxed); // `left`
                slot.left_t0.store(f.clock.now(), Relaxed);
                let t0 = Instant::now();
                match call(&tg, &f, g).await {
                    Ok(200) => lat.record(w, t0.elapsed().as_micros() as u64),
                    Ok(s) => {
                        eprintln!("leave {g}: HTTP {s}");
                        Counters::inc(&f.c.errors);
                    }
                    Err(e) => {
                        eprintln!("leave {g}: {e}");
                        Counters::inc(&f.c.errors);
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
    let (server, _, settled) = fleet.settle(&target, Duration::from_secs(15)).await?;
    let use_ = cpu.stop();
    stop.cancel();
    let h = lat.merged();
    r.add("api", "call", format!("{:?}", a.api));
    r.add("requests", "requests", members.len() as u64);
    r.add("concurrency", "in flight", a.concurrency as u64);
    r.add(
        "requests_per_sec",
        "requests per second",
        h.len() as f64 / secs,
    );
    r.latency("request_latency", "request latency", &h);
    r.store_commits(commits0, commits1, h.len());
    r.picture(
        &format!("rest: {:?} leave, {} in flight", a.api, a.concurrency),
        &h,
    );
    r.latency(
        "left_latency",
        "leave → `left` at the other members",
        &fleet.left_lat.merged(),
    );
    let ghosts: usize = server.iter().flatten().map(|v| v.count).sum::<usize>()
        - (rooms * size - members.len()).min(server.iter().flatten().map(|v| v.count).sum());
    r.must_be_zero(
        "ghosts",
        "ghosts (removed members still in a room)",
        ghosts as u64,
    );
    r.must_be_zero(
        "conn_failures",
        "connection failures",
        Counters::get(&fleet.c.conn_failures),
    );
    r.must_be_zero(
        "missing_events",
        "missing events (version gaps)",
        Counters::get(&fleet.c.gaps),
    );
    r.must_be_zero(
        "duplicates",
        "duplicate events",
        Counters::get(&fleet.c.duplicates),
    );
    r.must_be_zero("errors", "errors", Counters::get(&fleet.c.errors));
    if !settled {
        r.warn("clients had not caught up with the server when the run was judged".into());
    }
    r.cpu(target.mode(), &use_);
    fleet.abort_all();
    tokio::time::sleep(Duration::from_millis(200)).await;
    target.stop().await;
    Ok(r)
}
