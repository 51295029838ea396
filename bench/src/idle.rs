//! `idle`: N joined sockets held open. Measures the server's resident memory per socket as the
//! slope of RSS over the socket count (sampled every `--step` sockets from 1,000 up), the
//! connect+join rate, and how much memory the server returns after every socket closed.
//!
//! Needs the server in its own process (`--spawn`, or `--url` with `--server-pid`): in-process,
//! the RSS would include the clients. Above one process's open-file cap, `--workers N` holds the
//! sockets in N re-executed copies of this binary (see `worker.rs`).

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;

use super::cli::{IdleArgs, TargetArgs};
use super::procstat::{rss_kib, CpuMeter};
use super::report::Report;
use super::target::Target;
use super::worker::{Endpoint, Holder};
use super::Error;

struct WorkerProc {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    count: usize,
}

enum Pool {
    Local(Holder),
    Workers(Vec<WorkerProc>),
}

impl Pool {
    async fn start(
        target: &Target,
        t: &TargetArgs,
        a: &IdleArgs,
        tag: &str,
    ) -> Result<Self, Error> {
        let ep = Endpoint {
            nodes: (0..target.node_count())
                .map(|i| (target.addr_of(i), target.ws_url_of(i)))
                .collect(),
            secret: target.secret.clone(),
            sources: target.sources,
        };
        if t.workers <= 1 {
            return Ok(Self::Local(Holder::new(ep, tag.to_owned(), a.room_size, 0)));
        }
        let exe = std::env::current_exe()?;
        let mut ws = Vec::new();
        for w in 0..t.workers {
            let first = w * a.sockets / t.workers;
            let count = (w + 1) * a.sockets / t.workers - first;
            let mut child = tokio::process::Command::new(&exe)
                .args(["--sources", &target.sources.to_string()])
                .args(["--connect-concurrency", &t.connect_concurrency.to_string()])
                .arg("worker")
                .args([
                    "--server",
                    &target.bases().join(","),
                    "--first",
                    &first.to_string(),
                ])
                .args(["--room-size", &a.room_size.to_string(), "--tag", tag])
                .env("ROLLCALL_JWT_SECRET", &target.secret)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()?;
            let stdin = child.stdin.take().ok_or("worker stdin")?;
            let stdout = BufReader::new(child.stdout.take().ok_or("worker stdout")?).lines();
            ws.push(WorkerProc {
                child,
                stdin,
                stdout,
                count,
            });
        }
        Ok(Self::Workers(ws))
    }

    /// Brings the held sockets to `k` of `n`; returns (joined, failed) in total.
    async fn open_upto(
        &mut self,
        k: usize,
        n: usize,
        concurrency: usize,
    ) -> Result<(u64, u64), Error> {
        match self {
            Self::Local(h) => {
                h.open_upto(k, concurrency).await;
                Ok((
                    h.ok.load(std::sync::atomic::Ordering::Relaxed),
                    h.failed.load(std::sync::atomic::Ordering::Relaxed),
                ))
            }
            Self::Workers(ws) => {
                for w in ws.iter_mut() {
                    let local = (k * w.count).div_ceil(n).min(w.count);
                    w.stdin
                        .write_all(format!("open {local}\n").as_bytes())
                        .await?;
                    w.stdin.flush().await?;
                }
                let (mut ok, mut failed) = (0, 0);
                for w in ws.iter_mut() {
                    let line = w.stdout.next_line().await?.ok_or("a worker exited")?;
                    let mut it = line
                        .split_whitespace()
                        .skip(1)
                        .map(|x| x.parse::<u64>().unwrap_or(0));
                    ok += it.next().unwrap_or(0);
                    failed += it.next().unwrap_or(0);
                }
                Ok((ok, failed))
            }
        }
    }

    /// Closes every socket; returns the workers' CPU seconds (0 for a local pool).
    async fn close(self) -> Result<f64, Error> {
        match self {
            Self::Local(h) => {
                h.close().await;
                Ok(0.0)
            }
            Self::Workers(ws) => {
                let mut cpu = 0.0;
                for mut w in ws {
                    w.stdin.write_all(b"close\n").await?;
                    w.stdin.flush().await?;
                    if let Some(line) = w.stdout.next_line().await? {
                        cpu += line
                            .split_whitespace()
                            .nth(1)
                            .and_then(|x| x.parse::<f64>().ok())
                            .unwrap_or(0.0);
                    }
                    drop(w.stdin);
                    let _ = w.child.wait().await; // it exits on EOF; its status changes nothing
                }
                Ok(cpu)
            }
        }
    }
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx).powi(2))
    });
    (den > 0.0).then(|| num / den)
}

/// Runs `idle` and reports.
pub async fn run(t: &TargetArgs, a: &IdleArgs) -> Result<Report, Error> {
    let target = Target::start(t, 5.0, a.sockets).await?;
    let mut r = Report::new("idle");
    if target.pid.is_none() {
        r.warn("the server shares this process (or --server-pid is missing): its RSS cannot be told apart from the clients'; use --spawn".into());
    }
    // A cluster: every node's RSS together (and Redis's memory apart).
    let pids: Vec<u32> = match &target.cluster {
        Some(n) => n.pids.clone(),
        None => target.pid.into_iter().collect(),
    };
    let rss = |_: Option<u32>| pids.iter().filter_map(|p| rss_kib(*p)).sum::<u64>();
    let redis_mem = || async {
        match &target.cluster {
            Some(n) => n.used_memory().await.ok(),
            None => None,
        }
    };
    let redis_before = redis_mem().await;
    let cluster_cpu = target.cluster.as_ref().map(|n| n.cpu_secs());
    let tag = super::run_tag();
    let mut pool = Pool::start(&target, t, a, &tag).await?;
    let cpu = CpuMeter::start(target.pid);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = rss(target.pid);
    let mut samples = vec![(0usize, base)];
    let mut ramp = Duration::ZERO;
    let step = a.step.max(1);
    let mut k = 0;
    let (mut ok, mut failed) = (0, 0);
    while k < a.sockets {
        k = (k + step).min(a.sockets);
        let t0 = Instant::now();
        (ok, failed) = pool.open_upto(k, a.sockets, t.connect_concurrency).await?;
        ramp += t0.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m = rss(target.pid);
        let open = target.sockets().await.unwrap_or(-1);
        eprintln!("[idle] joined {ok} failed {failed} server sockets {open} server RSS {m} KiB");
        samples.push((ok as usize, m));
    }
    tokio::time::sleep(Duration::from_secs_f64(a.hold_secs)).await;
    let held = target.sockets().await.unwrap_or(-1);
    let peak = rss(target.pid);
    let redis_peak = redis_mem().await;
    let use_ = cpu.stop();
    let cluster_cpu = target
        .cluster
        .as_ref()
        .zip(cluster_cpu)
        .map(|(n, before)| n.cpu_secs() - before);
    let closing = Instant::now();
    let worker_cpu = pool.close().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while target.sockets().await.unwrap_or(0) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = closing.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(target.pid);

    let fit: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, _)| *n >= 1000.min(a.sockets))
        .map(|(n, m)| (*n as f64, *m as f64))
        .collect();
    r.add("sockets", "joined sockets held", ok);
    r.add("server_sockets", "server's open sockets at the top", held);
    r.must_be_zero("conn_failures", "connection/join failures", failed);
    r.add(
        "connect_rate",
        "connect+join rate (/s)",
        ok as f64 / ramp.as_secs_f64().max(1e-9),
    );
    r.add("rss_base_kib", "server RSS before (KiB)", base);
    r.add("rss_peak_kib", "server RSS held (KiB)", peak);
    match slope(&fit) {
        Some(s) => r.add(
            "rss_per_socket_kib",
            "server RSS per socket, slope ≥1k (KiB)",
            s,
        ),
        None => r.add(
            "rss_per_socket_kib",
            "server RSS per socket, slope ≥1k (KiB)",
            serde_json::Value::Null,
        ),
    }
    if let (Some(nodes), Some(b), Some(p)) = (&target.cluster, redis_before, redis_peak) {
        r.add(
            "nodes",
            "nodes (the RSS figures are all nodes together)",
            nodes.pids.len() as u64,
        );
        r.add(
            "redis_bytes_per_member",
            "Redis memory per joined member (bytes)",
            p.saturating_sub(b) as f64 / ok.max(1) as f64,
        );
        r.add(
            "redis_used_memory_peak",
            "Redis used_memory held (bytes)",
            p,
        );
    }
    if let Some(c) = cluster_cpu {
        r.add(
            "cluster_cpu_secs",
            "CPU of all nodes while opening and holding (s)",
            c,
        );
    }
    r.add("rss_after_close_kib", "server RSS after close (KiB)", after);
    let grown = peak.saturating_sub(base).max(1);
    r.add(
        "rss_returned_pct",
        "memory returned after close (%)",
        100.0 * peak.saturating_sub(after) as f64 / grown as f64,
    );
    r.add("close_drain_secs", "all sockets gone after (s)", drained);
    if a.after_close_secs > 0.0 {
        let until = closing + Duration::from_secs_f64(a.after_close_secs);
        let mut later = Vec::new();
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            later.push((closing.elapsed().as_secs_f64().round(), rss(target.pid)));
        }
        let last = later.last().map_or(after, |(_, m)| *m);
        r.add(
            "rss_later_kib",
            &format!("server RSS {:.0} s after close (KiB)", a.after_close_secs),
            last,
        );
        r.add(
            "rss_returned_later_pct",
            &format!(
                "memory returned {:.0} s after close (%)",
                a.after_close_secs
            ),
            100.0 * peak.saturating_sub(last) as f64 / grown as f64,
        );
        r.add("later_samples", "after close (s, RSS KiB)", json!(later));
    }
    r.add("samples", "samples (sockets, RSS KiB)", json!(samples));
    r.cpu(target.mode(), &use_);
    if worker_cpu > 0.0 {
        r.add("worker_cpu_secs", "worker processes CPU (s)", worker_cpu);
    }
    target.stop().await;
    Ok(r)
}
