//! The load tool's library: scenarios over real WebSocket clients against a real server.
//!
//! # Layout
//! - [`cli`]: the command line (clap subcommands), one struct per scenario.
//! - [`target`]: the server under test — in-process, a spawned `rollcall` child, or `--url` —
//!   plus tokens and the operator REST calls.
//! - [`cluster`]: `--nodes N`, a local cluster (a `redis-server` and N spawned nodes), its Redis
//!   operation counts and a node's SIGKILL.
//! - [`procstat`]: `/proc` readings (resident memory, CPU time) and the load average.
//! - [`ws`]: connecting one client (source address, small buffers) and parsing server frames.
//! - [`stats`]: counters and the sharded latency histogram shared by client tasks.
//! - [`fleet`]: R rooms × M member clients, one task each, checked against the server.
//! - [`view`]: one client's view of its room, checked for gaps, duplicates and order.
//! - [`report`]: the summary table, `--json` and the SVG histogram.
//! - [`churn`], [`fanout`], [`idle`], [`storm`], [`rest`]: the scenarios; [`facade_rest`]: `rest`
//!   leaves through a vendor façade, with its clients [`game`] (PLYR-style: signed requests, ES256
//!   session tokens) and [`lobby`] (PlayFlow-style: `api-key`, leave and host kick);
//!   [`facade_write`]: `rest` writes that add one record per call (lobby create, and video phone
//!   participants through [`video`], Digital Samba-style with HTTP Basic).
//! - [`failover`]: a cluster node's SIGKILL, and its members leaving every surviving view.
//! - [`floor`]: the machine's own floor (raw TCP fan-out to a re-exec'd child), to read the other
//!   scenarios' latencies against.
//! - [`worker`]: re-exec'd worker processes that hold sockets for runs above one process's
//!   open-file cap.

pub mod churn;
pub mod cli;
pub mod cluster;
pub mod facade_rest;
pub mod facade_write;
pub mod failover;
pub mod fanout;
pub mod fleet;
pub mod floor;
pub mod game;
pub mod idle;
pub mod lobby;
pub mod procstat;
pub mod report;
pub mod rest;
pub mod stats;
pub mod storm;
pub mod target;
pub mod video;
pub mod view;
pub mod worker;
pub mod ws;

use cli::{Cli, Scenario};

/// Errors are reported, not matched on: a boxed error with a readable message is enough here.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Raises the soft open-file limit to the hard one and returns it.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(s, _)| s)
            .unwrap_or(1024),
    }
}

/// A short random tag so room and member names never collide with an earlier run's (bans,
/// lingering rooms) on a long-lived server.
pub fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Runs the scenario named on the command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let fds = raise_nofile();
    if let Scenario::Worker(w) = &cli.scenario {
        return worker::run(&cli.target, w, fds).await;
    }
    if let Scenario::FloorServer(a) = &cli.scenario {
        return floor::serve(a).await;
    }
    eprintln!(
        "open-file limit {fds}: this process can hold about {} sockets{}",
        fds.saturating_sub(64),
        if cli.target.spawn
            || cli.target.url.is_some()
            || matches!(cli.scenario, Scenario::Floor(_))
        {
            ""
        } else {
            " (in-process: client and server ends share it, so half that many clients)"
        }
    );
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = match &cli.scenario {
        Scenario::Churn(a) => churn::run(&cli.target, a).await?,
        Scenario::Failover(a) => failover::run(&cli.target, a).await?,
        Scenario::Fanout(a) => fanout::run(&cli.target, a).await?,
        Scenario::Idle(a) => idle::run(&cli.target, a).await?,
        Scenario::Storm(a) => storm::run(&cli.target, a).await?,
        Scenario::Rest(a) => rest::run(&cli.target, a).await?,
        Scenario::Floor(a) => floor::run(a).await?,
        Scenario::Worker(_) | Scenario::FloorServer(_) => return Ok(()), // handled above
    };
    report.finish(&command, cli.json.as_deref(), cli.svg.as_deref())
}
