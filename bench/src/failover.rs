//! `failover` (`--spawn --nodes N`): R rooms × M members spread over N nodes join (each room
//! on every node); then one
//! node is SIGKILLed. Its members must leave every surviving member's view, each once, with
//! reason `timeout`, within the node TTL plus a sweep (`protocol/cluster.md`, "Node death"):
//! through a `left` event where the room's owner survived, or through the new owner's panel
//! and then a `left` where the dead node owned the room.
//!
//! Measured: for each (surviving member, dead member of its room) pair, the time from the kill
//! until the dead member is out of the survivor's view (polled every 20 ms). Judged: no pair
//! left behind, no `left` with another reason, no event out of order or contradicting a view,
//! no dead member still in the server's rooms, every surviving view equal to the server's.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cli::{FailoverArgs, TargetArgs};
use super::fleet::{Fleet, REASONS};
use super::report::Report;
use super::stats::{Counters, Hist};
use super::target::Target;
use super::Error;

/// Runs `failover` and reports.
pub async fn run(t: &TargetArgs, a: &FailoverArgs) -> Result<Report, Error> {
    let target = Arc::new(Target::start(t, 0.0, a.rooms * a.members).await?);
    let result = measure(&target, t, a).await;
    target.stop().await;
    result
}

async fn measure(target: &Arc<Target>, t: &TargetArgs, a: &FailoverArgs) -> Result<Report, Error> {
    let nodes = target
        .cluster
        .clone()
        .ok_or("failover needs a cluster: --spawn --nodes N (N ≥ 2)")?;
    let n_nodes = nodes.pids.len();
    let kill = a.kill.unwrap_or(n_nodes);
    if !(2..=n_nodes).contains(&kill) {
        return Err(format!("--kill must be a node from 2 to {n_nodes}").into());
    }
    let fleet = Fleet::new(a.rooms, a.members);
    let n = a.rooms * a.members;
    let mut r = Report::new("failover");
    let settle = Duration::from_secs_f64(a.settle_secs);

    // ---- join
    let joined = fleet
        .connect_all(target, a.connect_rate, t.connect_concurrency)
        .await?;
    let ok = joined.iter().filter(|j| **j).count();
    fleet.panels_in(settle).await; // every join applied before the views are judged
    let (server, _, caught_up) = fleet.settle(target, settle).await?;
    let mut pairs_missing = 0usize;
    for (room, sv) in server.iter().enumerate() {
        let Some(sv) = sv else { continue };
        for i in (0..a.members).filter(|i| sv.has(*i)) {
            pairs_missing += fleet.view(fleet.g_of(room, i)).diff(sv);
        }
    }
    r.add(
        "members",
        "members (rooms × size, over the nodes)",
        format!("{n} ({} × {}, {n_nodes} nodes)", a.rooms, a.members),
    );
    r.must_be_zero("conn_failures", "connection failures", (n - ok) as u64);
    r.must_be_zero(
        "join_pairs_missing",
        "member pairs not seeing each other after join",
        pairs_missing as u64,
    );
    if !caught_up {
        r.warn("some clients had not caught up when the join phase was judged".into());
    }

    // ---- who dies, who watches
    let on_killed = |g: usize| joined[g] && fleet.node_of(g, n_nodes) == kill - 1;
    let dead: Vec<usize> = (0..n).filter(|g| on_killed(*g)).collect();
    let rooms: Vec<String> = (0..a.rooms).map(|r| fleet.room_name(r)).collect();
    let holders = nodes.lease_holders(&rooms).await?;
    let killed_id = format!("b{kill}");
    let owned = holders
        .iter()
        .filter(|h| h.as_deref() == Some(&killed_id))
        .count();
    // Each surviving member with the dead members of its room: (observer, [member index]).
    let mut watch: Vec<(usize, Vec<usize>)> = Vec::new();
    for g in (0..n).filter(|g| joined[*g] && !on_killed(*g)) {
        let room = fleet.room_of(g);
        let of_room: Vec<usize> = (0..a.members)
            .filter(|i| on_killed(fleet.g_of(room, *i)))
            .collect();
        if !of_room.is_empty() {
            watch.push((g, of_room));
        }
    }
    let pairs: usize = watch.iter().map(|(_, d)| d.len()).sum();
    r.add(
        "killed",
        "node killed (SIGKILL)",
        format!(
            "{killed_id}: {} members, owner of {owned} of {} rooms",
            dead.len(),
            a.rooms
        ),
    );
    r.add(
        "pairs",
        "(surviving member, dead member) pairs to clear",
        pairs as u64,
    );
    let timeout = REASONS.iter().position(|x| *x == "timeout").unwrap_or(0) as u8;
    for &g in &dead {
        let slot = &fleet.slots[g];
        slot.leaving.store(true, Relaxed);
        slot.reason.store(timeout, Relaxed);
    }

    // ---- the kill
    let t0 = fleet.clock.now();
    for &g in &dead {
        fleet.slots[g].left_t0.store(t0, Relaxed);
    }
    nodes.kill(kill - 1);
    let killed = Instant::now();
    let gone = Hist::new();
    let mut cleared: Vec<Vec<bool>> = watch.iter().map(|(_, d)| vec![false; d.len()]).collect();
    let (mut remaining, mut last) = (pairs, Duration::ZERO);
    while remaining > 0 && killed.elapsed().as_secs_f64() < a.wait_secs {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = killed.elapsed();
        for (k, (g, d)) in watch.iter().enumerate() {
            let view = fleet.view(*g);
            for (j, i) in d.iter().enumerate() {
                if !cleared[k][j] && !view.has(*i) {
                    cleared[k][j] = true;
                    remaining -= 1;
                    gone.record(*g, now.as_micros() as u64);
                    last = now;
                }
            }
        }
    }
    let h = gone.merged();
    r.add(
        "last_gone_secs",
        "kill → the last dead member out of the last surviving view (s)",
        last.as_secs_f64(),
    );
    r.latency(
        "gone_latency",
        "kill → a dead member out of a surviving view",
        &h,
    );
    r.picture(
        &format!("failover: kill → gone, {} dead members", dead.len()),
        &h,
    );
    r.must_be_zero(
        "pairs_left",
        "pairs still in a surviving view",
        remaining as u64,
    );
    let by_left = fleet.left_lat.merged().len();
    r.add(
        "gone_by_left",
        "  of which cleared by a `left` event (the others by a new owner's panel)",
        by_left,
    );

    // ---- judgement
    fleet
        .quiet(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    let (server, versions, caught_up) = fleet.settle(target, settle).await?;
    let (mut ghosts, mut diffs, mut stale) = (0u64, 0u64, 0u64);
    for (room, sv) in server.iter().enumerate() {
        let Some(sv) = sv else { continue };
        for i in 0..a.members {
            let g = fleet.g_of(room, i);
            if on_killed(g) {
                ghosts += u64::from(sv.has(i));
            } else if joined[g] {
                let my = fleet.view(g);
                diffs += my.diff(sv) as u64;
                stale += u64::from(my.version != versions[room]);
            }
        }
    }
    let c = &fleet.c;
    r.stream_anomalies(c);
    r.must_be_zero(
        "inconsistent",
        "events contradicting the view (a second `left` for a member)",
        Counters::get(&c.inconsistent),
    );
    r.must_be_zero(
        "wrong_reason",
        "`left` of a dead member with a reason other than `timeout`",
        fleet.wrong_reason.load(Relaxed),
    );
    r.must_be_zero("ghosts", "dead members still in the server's rooms", ghosts);
    r.must_be_zero(
        "view_mismatch",
        "surviving views differing from the server",
        diffs,
    );
    r.must_be_zero(
        "stale_views",
        "surviving views behind the server's version",
        stale,
    );
    r.must_be_zero(
        "errors",
        "errors (refusals, unexpected closes of surviving sockets)",
        Counters::get(&c.errors),
    );
    r.add(
        "resyncs",
        "panels after the first (new owners' panels)",
        Counters::get(&c.resyncs),
    );
    if !caught_up {
        r.warn("clients had not caught up with the server when the run was judged".into());
    }
    fleet.abort_all();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(r)
}
