//! `floor`: what this machine allows before any presence server runs. A raw TCP fan-out with
//! the same shape as `fanout` (N sockets on loopback, one ~200-byte message per socket per event,
//! timestamped, at a rate) between this process and a re-executed child of it, no WebSocket
//! framing, no JSON, no rooms: the lowest delivery latency and the highest delivery rate any
//! server written over the kernel's TCP could reach on this machine with the load generator on
//! the same cores. The child writes each socket from its own task (messages queued while a task
//! writes go out in one `write`, as rollcall does); this process reads every socket.
//!
//! Compare `fanout` with `floor` of the same N and rate: the gap is rollcall's own cost.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::cli::{FloorArgs, FloorServerArgs};
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{unix_nanos, Hist};
use super::Error;

/// Bytes of each message (a `state` event of `fanout` is about this size).
const MESSAGE_BYTES: usize = 200;

/// Runs `floor`: starts the writer child, connects the readers, measures.
pub async fn run(a: &FloorArgs) -> Result<Report, Error> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(&exe)
        .args(["floor-server", "--sockets", &a.sockets.to_string()])
        .args([
            "--events",
            &a.events.to_string(),
            "--rate",
            &a.rate.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    let port: u16 = out
        .next_line()
        .await?
        .ok_or("the floor server did not start")?
        .trim()
        .parse()?;

    let lat = Arc::new(Hist::new());
    let got = Arc::new(AtomicU64::new(0));
    let last_at = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::with_capacity(a.sockets);
    for i in 0..a.sockets {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        let (lat, got, last_at, events) = (lat.clone(), got.clone(), last_at.clone(), a.events);
        readers.push(tokio::spawn(async move {
            let mut r = BufReader::with_capacity(8192, s);
            let mut line = String::new();
            for _ in 0..events {
                line.clear();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let now = unix_nanos();
                let sent: u64 = line
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(now);
                lat.record(i, now.saturating_sub(sent) / 1000);
                got.fetch_add(1, Relaxed);
                last_at.fetch_max(now, Relaxed);
            }
        }));
    }
    let mut stdin = child.stdin.take().ok_or("no child stdin")?;
    // Every socket is accepted once the child says so; then it publishes.
    out.next_line().await?.ok_or("the floor server stopped")?;
    let cpu = CpuMeter::start(pid);
    let first = unix_nanos();
    stdin.write_all(b"go\n").await?;
    let deadline =
        Instant::now() + Duration::from_secs_f64(a.events as f64 / a.rate.max(1.0) + 60.0);
    for r in readers {
        let _ = tokio::time::timeout_at(deadline, r).await;
    }
    let use_ = cpu.stop();
    let _ = child.kill().await;

    let mut rep = Report::new("floor");
    let deliveries = got.load(Relaxed);
    let span = last_at.load(Relaxed).saturating_sub(first) as f64 / 1e9;
    rep.add("sockets", "TCP sockets (loopback)", a.sockets as u64);
    rep.add("message_bytes", "bytes per message", MESSAGE_BYTES as u64);
    rep.add(
        "rate",
        "events per second (0 = as fast as possible)",
        a.rate,
    );
    rep.add("deliveries", "deliveries", deliveries);
    rep.add(
        "deliveries_expected",
        "deliveries expected",
        (a.sockets * a.events) as u64,
    );
    rep.add(
        "deliveries_per_sec",
        "deliveries per second (first send → last delivery)",
        deliveries as f64 / span.max(1e-9),
    );
    let h = lat.merged();
    rep.latency("latency", "send → delivery", &h);
    rep.picture(
        &format!("floor: raw TCP, {} sockets, {} events", a.sockets, a.events),
        &h,
    );
    rep.must_be_zero(
        "missing",
        "deliveries missing",
        ((a.sockets * a.events) as u64).saturating_sub(deliveries),
    );
    rep.cpu("spawned writer process", &use_);
    Ok(rep)
}

/// The child: accepts `sockets` connections, says so, waits for `go`, publishes `events`.
pub async fn serve(a: &FloorServerArgs) -> Result<(), Error> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", l.local_addr()?.port());
    let mut queues = Vec::with_capacity(a.sockets);
    for _ in 0..a.sockets {
        let (mut s, _) = l.accept().await?;
        s.set_nodelay(true)?;
        let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(256);
        queues.push(tx);
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            while let Some(m) = rx.recv().await {
                buf.clear();
                buf.extend_from_slice(&m);
                while buf.len() < 4096 {
                    match rx.try_recv() {
                        Ok(m) => buf.extend_from_slice(&m),
                        Err(_) => break,
                    }
                }
                if s.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
    }
    println!("ready");
    let mut go = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut go)
        .await?;
    let started = Instant::now();
    for n in 0..a.events {
        if a.rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / a.rate)).await;
        }
        let mut m = format!("{} {n} ", unix_nanos()).into_bytes();
        m.resize(MESSAGE_BYTES - 1, b'.');
        m.push(b'\n');
        let m: Arc<[u8]> = m.into();
        for q in &queues {
            // A full queue means the reader is 256 messages behind: the run reports it missing.
            let _ = q.try_send(m.clone());
        }
        if a.rate <= 0.0 {
            tokio::task::yield_now().await;
        }
    }
    // Let the writers finish; the parent kills this process when it has read everything.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}
