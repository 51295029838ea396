//! `storm`: R rooms × M members joined, then every socket drops at once (no close frame) and
//! reconnects at once. Measured: the time from the drop until every member's panel is true
//! again (holds all M members, and stays so), per member and overall. Judged: no ghost, no
//! member missing, every view equal to the server's, no version gap on the new sockets.
//!
//! The server's reconnect grace decides what the rooms see: within grace (the default 5 s) a
//! returning member re-attaches silently; with `--grace-secs 0` each drop is a `left` and each
//! return a `joined`, so the storm is also an event storm.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cli::{StormArgs, TargetArgs};
use super::fleet::{Cmd, Fleet};
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{progress, Counters, Hist};
use super::target::Target;
use super::Error;

async fn connect_all(fleet: &Arc<Fleet>, target: &Arc<Target>, concurrency: usize) -> usize {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(fleet.slots.len());
    for g in 0..fleet.slots.len() {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (f, t) = (fleet.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let ok = f.connect(&t, g).await;
            drop(permit);
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap_or(false));
    }
    ok
}

/// Members whose view holds the whole room.
fn full(fleet: &Fleet) -> usize {
    (0..fleet.slots.len())
        .filter(|g| fleet.view(*g).count == fleet.size)
        .count()
}

/// Runs `storm` and reports.
pub async fn run(t: &TargetArgs, a: &StormArgs) -> Result<Report, Error> {
    let n = a.rooms * a.members;
    let target = Arc::new(Target::start(t, 5.0, n).await?);
    let fleet = Fleet::new(a.rooms, a.members);
    let stop = CancellationToken::new();
    tokio::spawn(progress(
        "storm",
        fleet.c.clone(),
        String::new,
        stop.clone(),
    ));
    let mut r = Report::new("storm");
    r.add(
        "sockets",
        "sockets (rooms × members)",
        format!("{n} ({} × {})", a.rooms, a.members),
    );
    r.add(
        "grace_secs",
        "server reconnect grace (s)",
        target.grace.map_or(serde_json::Value::Null, Into::into),
    );
    let ok = connect_all(&fleet, &target, t.connect_concurrency).await;
    let (_, _, settled) = fleet
        .settle(&target, Duration::from_secs_f64(a.timeout_secs))
        .await?;
    if ok < n || !settled || full(&fleet) < n {
        return Err(format!(
            "before the storm: {ok} of {n} joined, {} views complete",
            full(&fleet)
        )
        .into());
    }
    let before = Counters::get(&fleet.c.gaps);

    // The storm: every socket drops, then every member reconnects, all at once.
    let cpu = CpuMeter::start(target.pid);
    for s in &fleet.slots {
        s.full_at.store(0, Relaxed);
    }
    let t0 = fleet.clock.now();
    let started = Instant::now();
    for g in 0..n {
        fleet.send(g, Cmd::Abort);
    }
    let back = connect_all(&fleet, &target, t.connect_concurrency).await;
    let reconnect_secs = started.elapsed().as_secs_f64();
    let deadline = started + Duration::from_secs_f64(a.timeout_secs);
    while full(&fleet) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_all_true = started.elapsed().as_secs_f64();
    let (server, versions, settled) = fleet.settle(&target, Duration::from_secs(10)).await?;
    let use_ = cpu.stop();
    stop.cancel();

    let times = Hist::new();
    let mut last = 0u64;
    let mut never = 0u64;
    for (g, s) in fleet.slots.iter().enumerate() {
        match s.full_at.load(Relaxed) {
            0 => never += 1,
            at => {
                times.record(g, at.saturating_sub(t0) / 1000);
                last = last.max(at);
            }
        }
    }
    let (mut ghosts, mut missing, mut diffs, mut stale) = (0u64, 0u64, 0u64, 0u64);
    for (room, sv) in server.iter().enumerate() {
        let Some(sv) = sv else {
            missing += a.members as u64;
            continue;
        };
        missing += (a.members - sv.count) as u64;
        ghosts += sv.count.saturating_sub(a.members) as u64;
        for i in 0..a.members {
            let v = fleet.view(fleet.g_of(room, i));
            diffs += v.diff(sv) as u64;
            stale += u64::from(v.version != versions[room]);
        }
    }
    r.add("reconnected", "reconnected", format!("{back} of {n}"));
    r.add("reconnect_secs", "all reconnects done (s)", reconnect_secs);
    r.add(
        "all_true_first_secs",
        "every panel true, first seen (s)",
        first_all_true,
    );
    r.add(
        "all_true_secs",
        "every panel true (last member's last transition, s)",
        if never == 0 {
            (last.saturating_sub(t0)) as f64 / 1e9
        } else {
            f64::NAN
        },
    );
    let h = times.merged();
    r.latency("panel_true", "drop → member's panel true", &h);
    r.picture(
        &format!("storm: drop → panel true, {} × {}", a.rooms, a.members),
        &h,
    );
    r.must_be_zero("never_true", "members whose panel never became true", never);
    r.must_be_zero(
        "conn_failures",
        "connection failures",
        Counters::get(&fleet.c.conn_failures),
    );
    r.must_be_zero("ghosts", "ghosts (server members beyond the room)", ghosts);
    r.must_be_zero(
        "missing_members",
        "members missing from the server",
        missing,
    );
    r.must_be_zero(
        "view_mismatch",
        "views differing from the server (members)",
        diffs,
    );
    r.must_be_zero("stale_views", "views behind the server's version", stale);
    r.must_be_zero(
        "missing_events",
        "missing events (version gaps)",
        Counters::get(&fleet.c.gaps) - before,
    );
    r.must_be_zero(
        "duplicates",
        "duplicate events",
        Counters::get(&fleet.c.duplicates),
    );
    r.must_be_zero(
        "out_of_order",
        "out-of-order events",
        Counters::get(&fleet.c.out_of_order),
    );
    r.add(
        "errors",
        "errors (incl. the old sockets' refused sends)",
        Counters::get(&fleet.c.errors),
    );
    if !settled {
        r.warn("clients had not caught up with the server when the run was judged".into());
    }
    r.cpu(target.mode(), &use_);
    fleet.abort_all();
    tokio::time::sleep(Duration::from_millis(200)).await;
    target.stop().await;
    Ok(r)
}
