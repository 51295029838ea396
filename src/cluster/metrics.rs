//! The `rollcall_cluster_*` metrics (`protocol/metrics.md`), read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use super::Cluster;

type Gauge = fn(&mut DescriptorEncoder, &str, &str, i64) -> std::fmt::Result;
type Counter = fn(&mut DescriptorEncoder, &str, &str, u64) -> std::fmt::Result;

/// The `rollcall_cluster_*` metrics (see `protocol/metrics.md`).
pub(crate) fn encode_metrics(
    c: &Cluster,
    enc: &mut DescriptorEncoder,
    gauge: Gauge,
    counter: Counter,
) -> std::fmt::Result {
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let s = &c.stats;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    gauge(
        enc,
        "rollcall_cluster_redis_up",
        "1 while Redis answers the heartbeat; 0: room changes are refused",
        i64::from(c.redis_up()),
    )?;
    gauge(
        enc,
        "rollcall_cluster_nodes",
        "Nodes alive at the last sweep (this one included)",
        n(c.nodes()),
    )?;
    gauge(
        enc,
        "rollcall_cluster_owned_rooms",
        "Rooms whose actor runs on this node",
        n(c.owned_rooms()),
    )?;
    gauge(
        enc,
        "rollcall_cluster_remote_sockets",
        "Sockets of other nodes in rooms owned here",
        n(c.proxies.len()),
    )?;
    counter(
        enc,
        "rollcall_cluster_calls_out",
        "Room commands forwarded to owner nodes",
        get(&s.calls_out),
    )?;
    counter(
        enc,
        "rollcall_cluster_calls_in",
        "Room commands applied for other nodes",
        get(&s.calls_in),
    )?;
    counter(
        enc,
        "rollcall_cluster_call_timeouts",
        "Forwarded commands that got no answer in time (unavailable)",
        get(&s.call_timeouts),
    )?;
    counter(
        enc,
        "rollcall_cluster_calls_refused",
        "Forwarded commands a node refused while the room's lease changed hands (sent again)",
        get(&s.calls_refused),
    )?;
    counter(
        enc,
        "rollcall_cluster_takeovers",
        "Rooms taken over from a dead owner's record",
        get(&s.takeovers),
    )?;
    counter(
        enc,
        "rollcall_cluster_dead_nodes",
        "Nodes this node saw die",
        get(&s.dead_nodes),
    )
}
