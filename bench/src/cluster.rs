//! `--nodes N` (with `--spawn`): the scenarios against a local rollcall cluster (issue #12,
//! `protocol/cluster.md`). A fresh `redis-server` on a free port (no persistence) and N spawned
//! `rollcall` nodes on it (`--redis-url`, `--node-id b<i>`, each with its own data dir); a room's
//! consecutive members connect to consecutive nodes, so every room spans every node. Also what only a cluster
//! run reports: Redis operations (`INFO commandstats`, background heartbeats measured apart),
//! Redis memory, every node's CPU time, and a node's SIGKILL (the `failover` scenario).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::procstat;
use super::report::Report;
use super::Error;

/// The Redis and the nodes of one run.
pub struct Nodes {
    redis: Mutex<Option<Child>>,
    nodes: Mutex<Vec<Option<Child>>>,
    /// Each node's pid, by index (node `i` is `b<i+1>`).
    pub pids: Vec<u32>,
    /// Each node's `http://host:port`.
    pub bases: Vec<String>,
    redis_con: redis::aio::MultiplexedConnection,
}

impl Nodes {
    /// Starts a Redis, then `n` nodes on it: `spawn(redis_url, i)` starts node `i` (from 1).
    pub async fn start<F, Fut>(n: usize, spawn: F) -> Result<Self, Error>
    where
        F: Fn(String, usize) -> Fut,
        Fut: std::future::Future<Output = Result<(Child, String), Error>>,
    {
        let port = free_port()?;
        let redis = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("--nodes needs redis-server on PATH: {e}"))?;
        let url = format!("redis://127.0.0.1:{port}/");
        let client = redis::Client::open(url.as_str())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let redis_con = loop {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(format!("redis-server on {port} did not answer: {e}").into())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        eprintln!(
            "spawned redis-server (pid {}) on 127.0.0.1:{port}",
            redis.id()
        );
        let mut nodes = Vec::with_capacity(n);
        let (mut pids, mut bases) = (Vec::new(), Vec::new());
        let me = Self {
            redis: Mutex::new(Some(redis)),
            nodes: Mutex::new(Vec::new()),
            pids: Vec::new(),
            bases: Vec::new(),
            redis_con,
        };
        for i in 1..=n {
            let (child, base) = spawn(url.clone(), i).await?;
            pids.push(child.id());
            bases.push(base);
            nodes.push(Some(child));
        }
        *lock(&me.nodes) = nodes;
        Ok(Self { pids, bases, ..me })
    }

    /// SIGKILLs node `i` (0-based) and reaps it; false if it was gone already.
    pub fn kill(&self, i: usize) -> bool {
        let child = lock(&self.nodes).get_mut(i).and_then(Option::take);
        let Some(mut c) = child else { return false };
        let _ = c.kill(); // exited on its own meanwhile: nothing to kill
        let _ = c.wait();
        true
    }

    /// SIGTERMs every node still running and waits (5 s each at most), then stops Redis.
    pub async fn stop(&self) {
        let nodes: Vec<Child> = lock(&self.nodes)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for c in &nodes {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for mut c in nodes {
            stop_within(&mut c, Duration::from_secs(5)).await;
        }
        if let Some(mut r) = lock(&self.redis).take() {
            let _ = r.kill(); // gone already: fine
            let _ = r.wait();
        }
    }

    /// CPU seconds used so far by the nodes still running, together.
    pub fn cpu_secs(&self) -> f64 {
        let live: Vec<u32> = lock(&self.nodes).iter().flatten().map(Child::id).collect();
        live.into_iter()
            .filter_map(|p| procstat::cpu_secs(p, false))
            .sum()
    }

    /// `CONFIG RESETSTAT`: the command counters start again from zero.
    pub async fn reset_stats(&self) -> Result<(), Error> {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(&mut self.redis_con.clone())
            .await?;
        Ok(())
    }

    /// Calls per command since the last reset (`INFO commandstats`), without the ones this
    /// tool made itself (`info`, `config`).
    pub async fn commandstats(&self) -> Result<BTreeMap<String, u64>, Error> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis_con.clone())
            .await?;
        Ok(parse_commandstats(&text))
    }

    /// Redis `used_memory` in bytes.
    pub async fn used_memory(&self) -> Result<u64, Error> {
        let text: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.redis_con.clone())
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "INFO memory without used_memory".into())
    }

    /// The node holding each room's lease (`rc:{r:<room>}:lease`), `None` where none does.
    pub async fn lease_holders(&self, rooms: &[String]) -> Result<Vec<Option<String>>, Error> {
        let mut out = Vec::with_capacity(rooms.len());
        for chunk in rooms.chunks(500) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|r| format!("rc:{{r:{r}}}:lease"))
                .collect();
            let got: Vec<Option<String>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut self.redis_con.clone())
                .await?;
            out.extend(got);
        }
        Ok(out)
    }
}

/// Parses `cmdstat_<name>:calls=<n>,...` lines; this tool's own `info` and `config` are left
/// out.
pub fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "config" | "config|resetstat"))
        .collect()
}

/// Operations per unit of work: `(total, by command)` from calls over `units`, after taking
/// out of each command its `background` rate (calls per second of the idle cluster:
/// heartbeats, sweeps) times `secs`.
pub fn per_unit(
    calls: &BTreeMap<String, u64>,
    background: &BTreeMap<String, f64>,
    secs: f64,
    units: u64,
) -> (f64, String) {
    let units = units.max(1) as f64;
    let mut by: Vec<(String, f64)> = calls
        .iter()
        .map(|(k, v)| {
            let bg = background.get(k).copied().unwrap_or(0.0) * secs;
            (k.clone(), ((*v as f64 - bg).max(0.0)) / units)
        })
        .filter(|(_, v)| *v >= 0.005)
        .collect();
    by.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = by.iter().map(|(_, v)| v).sum();
    let text = by
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    (total, text)
}

/// Background calls per second per command over `secs` of an idle cluster.
pub async fn background(nodes: &Nodes, secs: f64) -> Result<BTreeMap<String, f64>, Error> {
    nodes.reset_stats().await?;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let calls = nodes.commandstats().await?;
    Ok(calls
        .into_iter()
        .map(|(k, v)| (k, v as f64 / secs))
        .collect())
}

/// Redis operations of a cluster run, phase by phase: the idle cluster's background rate is
/// measured first (heartbeats, sweeps), then each [`OpsMeter::phase`] reports the calls since
/// the previous one per unit of work, background taken out.
pub struct OpsMeter {
    nodes: Arc<Nodes>,
    background: BTreeMap<String, f64>,
    since: tokio::time::Instant,
}

impl OpsMeter {
    /// Measures the background for `secs`, then starts the first phase.
    pub async fn start(nodes: Arc<Nodes>, secs: f64) -> Result<Self, Error> {
        let background = background(&nodes, secs).await?;
        nodes.reset_stats().await?;
        Ok(Self {
            nodes,
            background,
            since: tokio::time::Instant::now(),
        })
    }

    /// Ends a phase of `units` units of work (`what`: "join", "leave"): reports Redis
    /// operations per unit as `redis_ops_per_<what>` (with the per-command split), and starts
    /// the next phase.
    pub async fn phase(&mut self, r: &mut Report, what: &str, units: u64) -> Result<(), Error> {
        let calls = self.nodes.commandstats().await?;
        let secs = self.since.elapsed().as_secs_f64();
        let (total, by) = per_unit(&calls, &self.background, secs, units);
        r.add(
            &format!("redis_ops_per_{what}"),
            &format!("Redis operations per {what} (background out; {units} over {secs:.1} s)"),
            total,
        );
        r.add(
            &format!("redis_ops_per_{what}_by_command"),
            &format!("  by command, per {what}"),
            by,
        );
        self.nodes.reset_stats().await?;
        self.since = tokio::time::Instant::now();
        Ok(())
    }

    /// Reports the background rate (operations per second of the idle cluster).
    pub fn report_background(&self, r: &mut Report) {
        let total: f64 = self.background.values().sum();
        r.add(
            "redis_background_ops_per_sec",
            &format!(
                "Redis operations per second, idle ({} nodes)",
                self.nodes.pids.len()
            ),
            total,
        );
    }
}

async fn stop_within(c: &mut Child, bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = c.kill(); // still there after the bound
    let _ = c.wait();
}

fn free_port() -> Result<u16, Error> {
    // Bound, read, released: a tiny race with other processes, fine for a bench.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic mid-update; the children list is still what it was.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_parsed_and_this_tools_own_calls_left_out() {
        let text = "# Commandstats\r\ncmdstat_publish:calls=120,usec=300,usec_per_call=2.5\r\n\
                    cmdstat_info:calls=3,usec=9\r\ncmdstat_evalsha:calls=7,usec=70\r\n";
        let m = parse_commandstats(text);
        assert_eq!(m.get("publish"), Some(&120));
        assert_eq!(m.get("evalsha"), Some(&7));
        assert!(!m.contains_key("info"));
    }

    #[test]
    fn per_unit_takes_the_background_out() {
        let calls = BTreeMap::from([("publish".to_owned(), 300), ("set".to_owned(), 40)]);
        let bg = BTreeMap::from([("set".to_owned(), 10.0)]);
        let (total, text) = per_unit(&calls, &bg, 2.0, 100);
        assert!((total - 3.2).abs() < 1e-9, "{total}");
        assert_eq!(text, "publish 3.00, set 0.20");
    }
}
