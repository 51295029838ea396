//! Holding many idle joined sockets, in this process or in worker processes.
//!
//! The machine caps each process at 20,000 open files, so a parent `idle` run with `--workers N`
//! re-executes this binary N times (`rollcall-bench worker ...`), each holding a contiguous
//! share of the sockets. The protocol is line-based: the parent writes `open K` (hold K of your
//! sockets) and `close` on the worker's stdin; the worker answers `opened OK FAILED` and
//! `closed CPU_SECS` on stdout. Workers use the same [`Holder`] as a single-process run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::cli::{TargetArgs, WorkerArgs};
use super::Error;

/// Where and as whom sockets connect.
#[derive(Clone)]
pub struct Endpoint {
    /// Each node's address and `ws://.../v1/ws` (one without a cluster); socket `g` connects to
    /// node `g % N`, so the consecutive sockets of a room sit on every node.
    pub nodes: Vec<(SocketAddr, String)>,
    /// HS256 secret.
    pub secret: String,
    /// Loopback source addresses to spread over.
    pub sources: u8,
}

/// Joined sockets `first ..` held open until [`Holder::close`].
pub struct Holder {
    ep: Endpoint,
    tag: String,
    room_size: usize,
    first: usize,
    held: usize,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    /// Sockets joined (ack received).
    pub ok: Arc<AtomicU64>,
    /// Sockets that failed to connect or join.
    pub failed: Arc<AtomicU64>,
}

impl Holder {
    /// A holder for sockets numbered from `first`.
    pub fn new(ep: Endpoint, tag: String, room_size: usize, first: usize) -> Self {
        Self {
            ep,
            tag,
            room_size,
            first,
            held: 0,
            cancel: CancellationToken::new(),
            tasks: JoinSet::new(),
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Opens sockets until `k` are attempted, `concurrency` at a time; returns when every
    /// attempt has joined or failed.
    pub async fn open_upto(&mut self, k: usize, concurrency: usize) {
        let sem = Arc::new(Semaphore::new(concurrency.max(1)));
        let pending = Arc::new(Semaphore::new(0));
        let start = self.held;
        while self.held < k {
            let g = self.first + self.held;
            self.held += 1;
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let (ep, cancel, ok, failed, pending) = (
                self.ep.clone(),
                self.cancel.clone(),
                self.ok.clone(),
                self.failed.clone(),
                pending.clone(),
            );
            let (room, idx) = (g / self.room_size, g % self.room_size);
            let member = format!("h{}-{room}-{idx}", self.tag);
            let room = format!("i{}-{room}", self.tag);
            self.tasks.spawn(async move {
                let joined = hold_one(&ep, g, &member, &room).await;
                drop(permit);
                match joined {
                    Ok(ws) => {
                        ok.fetch_add(1, Relaxed);
                        pending.add_permits(1);
                        idle(ws, cancel).await;
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Relaxed) < 5 {
                            eprintln!("socket {g}: {e}");
                        }
                        pending.add_permits(1);
                    }
                }
            });
        }
        let n = (self.held - start) as u32;
        if n > 0 {
            // Every task adds exactly one permit when it has joined or failed.
            let _ = pending.acquire_many(n).await.map(|p| p.forget());
        }
    }

    /// Drops every socket (TCP close, no close frame) and waits for the tasks.
    pub async fn close(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn hold_one(
    ep: &Endpoint,
    g: usize,
    member: &str,
    room: &str,
) -> Result<super::ws::Ws, Error> {
    let token = rollcall::auth::sign_hs256(&ep.secret, member, None, 86_400);
    let (addr, url) = &ep.nodes[g % ep.nodes.len()];
    let source = (ep.sources > 1 && addr.ip().is_loopback()).then(|| {
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127,
            0,
            0,
            1 + (g % usize::from(ep.sources)) as u8,
        ))
    });
    let mut ws = super::ws::connect(*addr, url, &token, source).await?;
    ws.send(Message::text(format!(
        r#"{{"type":"join","room":"{room}","ref":1}}"#
    )))
    .await?;
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m? {
            if t.contains(r#""type":"ack""#) {
                return Ok(ws);
            }
            if t.contains(r#""type":"error""#) {
                return Err(format!("join refused: {t}").into());
            }
        }
    }
    Err("closed before the join was acknowledged".into())
}

/// Keeps a socket open (reading answers the server's pings) until cancelled.
async fn idle(mut ws: super::ws::Ws, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            m = ws.next() => if !matches!(m, Some(Ok(_))) { return },
        }
    }
}

/// The `worker` subcommand: obey the parent's lines on stdin.
pub async fn run(t: &TargetArgs, w: &WorkerArgs, fds: u64) -> Result<(), Error> {
    let secret = t.token_secret.clone().ok_or("worker: no token secret")?;
    let mut nodes = Vec::new();
    for base in w.server.split(',') {
        let host = base.trim_start_matches("http://");
        let addr = tokio::net::lookup_host(host)
            .await?
            .find(SocketAddr::is_ipv4)
            .ok_or("worker: no IPv4 address")?;
        nodes.push((addr, format!("ws://{host}/v1/ws")));
    }
    let ep = Endpoint {
        nodes,
        secret,
        sources: t.sources.max(1),
    };
    eprintln!("worker {}: open-file limit {fds}", w.first);
    let mut holder = Some(Holder::new(ep, w.tag.clone(), w.room_size, w.first));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|k| k.parse::<usize>().ok()),
        ) {
            (Some("open"), Some(k)) => {
                let Some(h) = holder.as_mut() else { break };
                h.open_upto(k, t.connect_concurrency).await;
                let msg = format!("opened {} {}\n", h.ok.load(Relaxed), h.failed.load(Relaxed));
                out.write_all(msg.as_bytes()).await?;
            }
            (Some("close"), _) => {
                if let Some(h) = holder.take() {
                    h.close().await;
                }
                let cpu = super::procstat::cpu_secs(std::process::id(), false).unwrap_or(0.0);
                out.write_all(format!("closed {cpu}\n").as_bytes()).await?;
            }
            _ => return Err(format!("worker: unknown command {line:?}").into()),
        }
        out.flush().await?;
    }
    Ok(())
}
