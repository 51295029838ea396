//! `churn`: R rooms × M members join at a rate (joins to consecutive rooms race), then members
//! leave at a rate through every leave path, in turn: socket `leave`, abrupt close, a kick by
//! the host's socket, and the operator REST call.
//!
//! Measured: for every leave, the delay until each other member received the `left` naming it.
//! Judged: after the join phase every view equals the server's; every event arrives exactly
//! once and in version order (per-socket version checks); at the end no ghost remains (the
//! server's snapshot and every remaining view agree, and no leaver is still in the room).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cli::{ChurnArgs, LeavePath, TargetArgs};
use super::cluster::OpsMeter;
use super::fleet::{Cmd, Fleet, REASONS};
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{progress, Counters};
use super::target::Target;
use super::view::View;
use super::Error;

/// Runs `churn` and reports.
pub async fn run(t: &TargetArgs, a: &ChurnArgs) -> Result<Report, Error> {
    if a.members < 3 && a.leaves > 0 {
        return Err("churn needs at least 3 members per room to leave (host + 1 stay)".into());
    }
    let target = Arc::new(Target::start(t, 0.0, a.rooms * a.members).await?);
    if target.grace.is_none() {
        eprintln!("note: the abrupt-close path waits out the target's grace period before `left`");
    }
    let fleet = Fleet::new(a.rooms, a.members);
    let n = a.rooms * a.members;
    let stop = CancellationToken::new();
    let leaves_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (f, d) = (fleet.clone(), leaves_done.clone());
        tokio::spawn(progress(
            "churn",
            fleet.c.clone(),
            move || {
                format!(
                    "leaves {} left-samples {}",
                    d.load(Relaxed),
                    Counters::get(&f.c.samples)
                )
            },
            stop.clone(),
        ));
    }
    let mut r = Report::new("churn");
    // A cluster: Redis operations per join and per leave, and every node's CPU.
    let mut ops = match &target.cluster {
        Some(nodes) => Some(OpsMeter::start(nodes.clone(), 2.0).await?),
        None => None,
    };
    let cluster_cpu = target.cluster.as_ref().map(|n| n.cpu_secs());
    let cpu = CpuMeter::start(target.pid);

    // ---- join phase
    let started = Instant::now();
    let joined = fleet
        .connect_all(&target, a.connect_rate, t.connect_concurrency)
        .await?;
    let t_started = fleet.clock.now() - started.elapsed().as_nanos() as u64;
    // Every join applied (its panel received) before the settle compares views with the
    // server: a join still in flight would change a room after it was judged settled.
    let waiting = fleet
        .panels_in(Duration::from_secs_f64(a.settle_secs))
        .await;
    if let Some(o) = &mut ops {
        // Before the settle, whose snapshots are calls of their own.
        o.report_background(&mut r);
        o.phase(
            &mut r,
            "join",
            joined.iter().filter(|j| **j).count() as u64 - waiting as u64,
        )
        .await?;
    }
    let (server, _, caught_up) = fleet
        .settle(&target, Duration::from_secs_f64(a.settle_secs))
        .await?;
    let join_secs = started.elapsed().as_secs_f64();
    let ok = joined.iter().filter(|j| **j).count();
    r.add(
        "members",
        "members (rooms × size)",
        format!("{n} ({} × {})", a.rooms, a.members),
    );
    r.add(
        "join_offered_rate",
        "offered join rate (/s)",
        a.connect_rate,
    );
    let panels_secs = fleet.last_join_at.load(Relaxed).saturating_sub(t_started) as f64 / 1e9;
    r.add(
        "join_rate",
        "achieved join rate (/s: joins ÷ time to the last join's panel)",
        ok as f64 / panels_secs.max(1e-9),
    );
    r.latency(
        "join_latency",
        "connect → the join's `panel`",
        &fleet.join_lat.merged(),
    );
    r.latency(
        "connect_latency",
        "  of which connect → upgraded",
        &fleet.connect_lat.merged(),
    );
    r.add(
        "join_settle_secs",
        "every view equal to the server's, after the last panel (s)",
        join_secs - panels_secs,
    );
    r.add("join_secs", "join phase incl. settle (s)", join_secs);
    r.must_be_zero("conn_failures", "connection failures", n as u64 - ok as u64);
    let mut pairs_missing = 0usize;
    let mut hosts = vec![None; a.rooms];
    for (room, sv) in server.iter().enumerate() {
        let Some(sv) = sv else { continue };
        for i in (0..a.members).filter(|i| sv.has(*i)) {
            pairs_missing += fleet.view(fleet.g_of(room, i)).diff(sv);
        }
        hosts[room] = fleet.view(fleet.g_of(room, 0)).host.or(sv.host);
    }
    let server_members: usize = server.iter().flatten().map(|v| v.count).sum();
    r.must_be_zero(
        "join_server_missing",
        "members the server lacks after join",
        ok as u64 - server_members as u64,
    );
    r.must_be_zero(
        "join_pairs_missing",
        "member pairs not seeing each other after join",
        pairs_missing as u64,
    );
    if !caught_up {
        r.warn(
            "some clients had not reached the server's version when the join phase was judged"
                .into(),
        );
    }

    // ---- leave phase
    let mut candidates: Vec<Vec<usize>> = (0..a.rooms)
        .map(|room| {
            let mut c: Vec<usize> = (0..a.members)
                .filter(|i| joined[fleet.g_of(room, *i)])
                .filter(|i| hosts[room] != Some(*i))
                .collect();
            c.shuffle(&mut rand::thread_rng());
            c.truncate(c.len().saturating_sub(1)); // keep one non-host member (kick target pool)
            c
        })
        .collect();
    let mut plan = Vec::with_capacity(a.leaves);
    'outer: while plan.len() < a.leaves {
        let before = plan.len();
        for (room, c) in candidates.iter_mut().enumerate() {
            if plan.len() == a.leaves {
                break 'outer;
            }
            if let Some(i) = c.pop() {
                plan.push((room, i));
            }
        }
        if plan.len() == before {
            break;
        }
    }
    if plan.len() < a.leaves {
        r.warn(format!(
            "only {} leaves possible (asked {})",
            plan.len(),
            a.leaves
        ));
    }
    let mut per_path = [0u64; 4];
    let started = Instant::now();
    let mut rest_calls = Vec::new();
    let mut dispatch_failures = 0u64;
    for (k, (room, i)) in plan.iter().copied().enumerate() {
        tokio::time::sleep_until(started + Duration::from_secs_f64(k as f64 / a.leave_rate)).await;
        let path = a.paths[k % a.paths.len()];
        let g = fleet.g_of(room, i);
        let slot = &fleet.slots[g];
        slot.leaving.store(true, Relaxed);
        let code = REASONS
            .iter()
            .position(|x| *x == path.reason())
            .unwrap_or(0);
        slot.reason.store(code as u8, Relaxed);
        slot.left_t0.store(fleet.clock.now(), Relaxed);
        let room_name = fleet.room_name(room);
        let ok = match path {
            LeavePath::Leave => fleet.send(
                g,
                Cmd::Text(format!(
                    r#"{{"type":"leave","room":"{room_name}","ref":2}}"#
                )),
            ),
            LeavePath::Close => fleet.send(g, Cmd::Abort),
            LeavePath::Kick => match hosts[room] {
                Some(h) => fleet.send(
                    fleet.g_of(room, h),
                    Cmd::Text(format!(
                        r#"{{"type":"kick","room":"{room_name}","member":"{}","ref":3}}"#,
                        fleet.member_id(g)
                    )),
                ),
                None => false,
            },
            LeavePath::Rest => {
                let (tg, id, c) = (target.clone(), fleet.member_id(g), fleet.c.clone());
                rest_calls.push(tokio::spawn(async move {
                    match tg.rest_leave(&room_name, &id).await {
                        Ok(200) => {}
                        Ok(s) => {
                            eprintln!("REST leave {id}: HTTP {s}");
                            Counters::inc(&c.errors);
                        }
                        Err(e) => {
                            eprintln!("REST leave {id}: {e}");
                            Counters::inc(&c.errors);
                        }
                    }
                }));
                true
            }
        };
        if !ok {
            dispatch_failures += 1;
        }
        per_path[path as usize] += 1;
        leaves_done.fetch_add(1, Relaxed);
    }
    for c in rest_calls {
        let _ = c.await; // a panicked call was already counted as an error
    }
    let leave_secs = started.elapsed().as_secs_f64();
    if let Some(o) = &mut ops {
        fleet
            .quiet(Duration::from_millis(300), Duration::from_secs(10))
            .await;
        o.phase(&mut r, "leave", plan.len() as u64).await?;
    }
    let (server, versions, caught_up) = fleet
        .settle(&target, Duration::from_secs_f64(a.settle_secs))
        .await?;
    stop.cancel();
    let use_ = cpu.stop();

    // ---- judgement
    let mut ghosts = 0u64;
    let mut unexpected = 0u64;
    let mut view_diffs = 0u64;
    let mut stale = 0u64;
    let mut no_own_left = 0u64;
    let mut expected_deliveries = 0u64;
    for (room, sv) in server.iter().enumerate() {
        let stays = |i: &usize| {
            let g = fleet.g_of(room, *i);
            joined[g] && !fleet.slots[g].leaving.load(Relaxed)
        };
        let should_ids: Vec<String> = (0..a.members)
            .filter(stays)
            .map(|i| fleet.member_id(fleet.g_of(room, i)))
            .collect();
        let should = View::from_ids(a.members, should_ids.iter().map(String::as_str));
        let Some(sv) = sv else {
            unexpected += should.count as u64;
            continue;
        };
        let (mut leavers, mut room_ghosts) = (0u64, 0u64);
        for i in 0..a.members {
            let g = fleet.g_of(room, i);
            let slot = &fleet.slots[g];
            if slot.leaving.load(Relaxed) {
                leavers += 1;
                if sv.has(i) {
                    room_ghosts += 1;
                }
                // An abruptly closed socket cannot see its own `left`; every other path's does.
                if usize::from(slot.reason.load(Relaxed)) != 2 && !slot.saw_own_left.load(Relaxed) {
                    no_own_left += 1;
                }
            } else if joined[g] {
                let my = fleet.view(g);
                view_diffs += my.diff(sv) as u64;
                if my.version != versions[room] {
                    stale += 1;
                }
            }
        }
        ghosts += room_ghosts;
        unexpected += (sv.diff(&should) as u64).saturating_sub(room_ghosts);
        // Each leave is seen by everyone still in the room when it happens: with L leaves out
        // of n members, the k-th one has n - k receivers besides the leaver.
        let n_room = leavers + should.count as u64;
        expected_deliveries += (1..=leavers).map(|k| n_room - k).sum::<u64>();
    }
    r.add("leaves", "leaves", plan.len() as u64);
    for p in [
        LeavePath::Leave,
        LeavePath::Close,
        LeavePath::Kick,
        LeavePath::Rest,
    ] {
        r.add(
            &format!("leaves_{}", p.reason()),
            &format!("  via {p:?}"),
            per_path[p as usize],
        );
    }
    r.add("leave_secs", "leave phase (s)", leave_secs);
    r.add(
        "leave_rate",
        "achieved leave rate (/s)",
        plan.len() as f64 / leave_secs,
    );
    let h = fleet.left_lat.merged();
    r.latency("left_latency", "leave → `left` at each other member", &h);
    for (code, reason) in REASONS.iter().enumerate().skip(1) {
        let h = fleet.left_lat_by[code].merged();
        if !h.is_empty() {
            r.latency(
                &format!("left_latency_{reason}"),
                &format!("  of which reason `{reason}`"),
                &h,
            );
        }
    }
    r.picture(
        &format!("churn: leave → left, {} rooms × {}", a.rooms, a.members),
        &h,
    );
    r.add("left_deliveries", "`left` deliveries recorded", h.len());
    r.add(
        "left_deliveries_expected",
        "`left` deliveries expected",
        expected_deliveries,
    );
    if h.len() < expected_deliveries {
        r.warn(format!(
            "{} expected `left` deliveries were not recorded (an abruptly closed socket misses the \
             events of leaves that overlap its own; a version gap below would show a real loss)",
            expected_deliveries - h.len()
        ));
    }
    let c = &fleet.c;
    r.stream_anomalies(c);
    r.must_be_zero(
        "inconsistent",
        "events contradicting the view",
        Counters::get(&c.inconsistent),
    );
    r.must_be_zero(
        "wrong_reason",
        "`left` with the wrong reason",
        fleet.wrong_reason.load(Relaxed),
    );
    r.must_be_zero(
        "ghosts",
        "ghosts (leavers still in the server's room)",
        ghosts,
    );
    r.must_be_zero(
        "server_unexpected",
        "server rooms differing from the plan otherwise (members)",
        unexpected,
    );
    r.must_be_zero(
        "view_mismatch",
        "views differing from the server at the end (members)",
        view_diffs,
    );
    r.must_be_zero(
        "stale_views",
        "views behind the server's version at the end",
        stale,
    );
    r.must_be_zero(
        "no_own_left",
        "leavers whose socket never saw its own `left`",
        no_own_left,
    );
    r.must_be_zero(
        "dispatch_failures",
        "leaves that could not be dispatched",
        dispatch_failures,
    );
    r.must_be_zero(
        "errors",
        "errors (refusals, unexpected closes)",
        Counters::get(&c.errors),
    );
    r.add(
        "resyncs",
        "resync panels (lagging sockets)",
        Counters::get(&c.resyncs),
    );
    if !caught_up {
        r.warn("clients had not caught up with the server when the run was judged".into());
    }
    r.cpu(target.mode(), &use_);
    if let (Some(nodes), Some(before)) = (&target.cluster, cluster_cpu) {
        r.add(
            "cluster_cpu_secs",
            &format!("CPU of all {} nodes (s)", nodes.pids.len()),
            nodes.cpu_secs() - before,
        );
    }
    fleet.abort_all();
    tokio::time::sleep(Duration::from_millis(200)).await;
    target.stop().await;
    Ok(r)
}
