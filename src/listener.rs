//! The TCP listener: raises the open-file limit, caps simultaneous connections, and refuses
//! cleanly when descriptors run out.
//!
//! Running out of file descriptors is an expected event for a socket server. Above the cap, or
//! when `accept` fails with EMFILE/ENFILE, a new connection gets `503` and is closed, while
//! existing connections keep working. For EMFILE the classic reserve-descriptor trick frees one
//! descriptor to accept and refuse the waiting connection instead of leaving it in the backlog.
//!
//! Health while full: [`HEALTH_RESERVE`] slots above the cap are handed out only when the cap is
//! full, and a connection on one of them is served `/healthz` and `/metrics` only (everything
//! else, upgrades included, gets the same `503 at_capacity`; see [`crate::connection`]). Refusals
//! are counted in [`Stats`] and logged as one summary line per interval ([`log_refusals`]), not
//! one line each.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::deadlines::{Phase, WriteStall};
use crate::stats::Stats;

/// Descriptors kept back from the connection cap for files, the listener, the reserve descriptor
/// and the [`HEALTH_RESERVE`] slots.
const SPARE_FDS: u64 = 64;

/// Connections accepted above the cap, for `/healthz` and `/metrics` only.
pub const HEALTH_RESERVE: usize = 16;

/// How often refusals are summed up in the log.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The body of every `503 at_capacity` (the raw refusal below and the reserve's answer).
pub const AT_CAPACITY_BODY: &str =
    "{\"error\":\"at_capacity\",\"message\":\"the server is at capacity.\"}\n";

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 63\r\n\r\n{\"error\":\"at_capacity\",\"message\":\"the server is at capacity.\"}\n";

/// Pending handshakes the kernel may queue. The default of 128 (mio) drops SYNs during a
/// reconnect storm, and every dropped client waits a full second to retry (bench/RESULTS.md).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft open-file limit to the hard limit; returns the resulting soft limit.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(s, _)| s)
                .unwrap_or(1024)
        }
    }
}

/// The socket capacity for a configured cap (0 = derived from the open-file limit).
pub fn capacity(configured: usize, fd_limit: u64) -> usize {
    let by_fds = fd_limit.saturating_sub(SPARE_FDS) as usize;
    if configured == 0 {
        by_fds
    } else {
        configured.min(by_fds.max(1))
    }
}

/// A [`HEALTH_RESERVE`] connection's standing: evictable until its request head has arrived.
///
/// Newest wins, at the expense of the address that holds the most: when every reserve slot is
/// taken and another connection arrives, the oldest reserve connection that has not sent its
/// request yet, among those of the source address holding the most reserve slots, is dropped to
/// make room. A monitor sends its request as soon as it connects and is done within
/// milliseconds, so connections that sit on the reserve without asking (an attacker refilling it
/// as the header deadline frees slots) cannot keep `/healthz` from answering, and an attacker
/// churning new connections evicts its own, not a monitor's on another address.
#[derive(Debug, Default)]
pub struct Evict {
    /// Wakes the connection's task to drop it.
    pub notify: tokio::sync::Notify,
    /// Set when the request head arrived: no longer evictable.
    pub busy: std::sync::atomic::AtomicBool,
}

/// A listener that counts and caps its connections.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    health_open: Arc<AtomicUsize>,
    /// The reserve's connections, oldest first (see [`Evict`]).
    reserve_queue: std::collections::VecDeque<(std::net::IpAddr, std::sync::Weak<Evict>)>,
    cap: usize,
    reserve: Option<std::fs::File>,
    stats: Arc<Stats>,
}

impl Listener {
    /// Wraps a bound listener with a connection cap; counts into `stats`.
    pub fn new(inner: TcpListener, cap: usize, stats: Arc<Stats>) -> Self {
        Self {
            inner,
            open: Arc::new(AtomicUsize::new(0)),
            health_open: Arc::new(AtomicUsize::new(0)),
            reserve_queue: std::collections::VecDeque::new(),
            cap,
            reserve: std::fs::File::open("/dev/null").ok(),
            stats,
        }
    }

    /// Connections open now (within the cap).
    pub fn open_count(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    fn counted(&mut self, inner: TcpStream, health_only: bool, peer: std::net::IpAddr) -> Counted {
        let slot = if health_only {
            &self.health_open
        } else {
            &self.open
        };
        slot.fetch_add(1, Ordering::Relaxed);
        self.stats.connection(1);
        let evict = health_only.then(|| {
            let e = Arc::new(Evict::default());
            self.reserve_queue.push_back((peer, Arc::downgrade(&e)));
            e
        });
        Counted {
            inner,
            slot: slot.clone(),
            stats: self.stats.clone(),
            health_only,
            evict,
            write_stall: None,
        }
    }

    /// With the reserve full: drops the oldest connection that has not sent a request yet of the
    /// address holding the most such connections (`arriving`'s own on a tie), and says whether
    /// one was found (its slot is given back as soon as its task sees the signal).
    fn evict_oldest_idle(&mut self, arriving: std::net::IpAddr) -> bool {
        // Closed connections leave; those answering a request stay but cannot be evicted.
        self.reserve_queue.retain(|(_, w)| w.strong_count() > 0);
        let idle = |w: &std::sync::Weak<Evict>| {
            w.upgrade().is_some_and(|e| !e.busy.load(Ordering::Acquire))
        };
        let mut held: std::collections::HashMap<std::net::IpAddr, usize> = Default::default();
        for (ip, w) in &self.reserve_queue {
            if idle(w) {
                *held.entry(*ip).or_default() += 1;
            }
        }
        let Some(most) = held.values().copied().max() else {
            return false;
        };
        let target = if held.get(&arriving) == Some(&most) {
            arriving
        } else {
            // The oldest connection's address among those holding the most.
            match self
                .reserve_queue
                .iter()
                .find(|(ip, w)| held.get(ip) == Some(&most) && idle(w))
            {
                Some((ip, _)) => *ip,
                None => return false,
            }
        };
        let Some(i) = self
            .reserve_queue
            .iter()
            .position(|(ip, w)| *ip == target && idle(w))
        else {
            return false;
        };
        if let Some((_, w)) = self.reserve_queue.remove(i) {
            if let Some(e) = w.upgrade() {
                e.notify.notify_one();
                return true;
            }
        }
        false
    }

    fn refuse(&self, stream: TcpStream) {
        self.stats.refused(false);
        tokio::spawn(async move {
            let mut stream = stream;
            // Best effort: the client learns why; a failed write changes nothing.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(REFUSAL)).await;
        });
    }
}

/// A connection's peer address, handed to handlers as `ConnectInfo<Peer>` (per-address limits;
/// put on each request by [`crate::connection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl axum::serve::Listener for Listener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let health_only = self.open.load(Ordering::Relaxed) >= self.cap;
                    if health_only
                        && self.health_open.load(Ordering::Relaxed) >= HEALTH_RESERVE
                        && !self.evict_oldest_idle(addr.ip())
                    {
                        tracing::debug!(cap = self.cap, "connection refused: at capacity");
                        self.refuse(stream);
                        continue;
                    }
                    // Nagle would hold small event frames back; latency matters more here.
                    let _ = stream.set_nodelay(true); // failure only costs latency
                    return (self.counted(stream, health_only, addr.ip()), addr);
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    tracing::debug!(error = %e, "out of file descriptors: refusing a connection");
                    self.stats.refused(true);
                    // Free the reserve descriptor, accept the waiting connection to refuse it,
                    // then take the reserve back.
                    self.reserve = None;
                    if let Ok((stream, _)) = self.inner.accept().await {
                        drop(stream);
                    }
                    self.reserve = std::fs::File::open("/dev/null").ok();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    // Per-connection errors (reset before accept, ...): keep accepting.
                    tracing::debug!(error = %e, "accept failed");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == 24 /* EMFILE */ || code == 23 /* ENFILE */)
}

/// Logs one WARN line per [`REFUSAL_LOG_EVERY`] in which connections were refused, with the
/// counts by reason, until `stop` is cancelled.
pub async fn log_refusals(stats: Arc<Stats>, stop: tokio_util::sync::CancellationToken) {
    let mut ticks = tokio::time::interval(REFUSAL_LOG_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Vec<u64> = stats.refusals().map(|(_, n)| n).collect();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now: Vec<(&str, u64)> = stats.refusals().collect();
        if let Some(line) = refusal_summary(&now, &seen) {
            let refused = now
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>()
                .saturating_sub(seen.iter().sum());
            tracing::warn!(refused, "{line}");
        }
        seen = now.into_iter().map(|(_, n)| n).collect();
    }
}

/// The summary line for the refusals counted since `seen` (same order as `now`), if any.
fn refusal_summary(now: &[(&str, u64)], seen: &[u64]) -> Option<String> {
    let new: Vec<(&str, u64)> = now
        .iter()
        .zip(seen)
        .map(|((reason, n), before)| (*reason, n.saturating_sub(*before)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = new.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let by_reason = new
        .iter()
        .map(|(reason, n)| format!("{reason}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "refused {total} connections in the last {}s ({by_reason})",
        REFUSAL_LOG_EVERY.as_secs()
    ))
}

/// A TCP stream that gives its slot back when dropped.
#[derive(Debug)]
pub struct Counted {
    inner: TcpStream,
    slot: Arc<AtomicUsize>,
    stats: Arc<Stats>,
    health_only: bool,
    /// On a reserve slot: how the listener evicts it (see [`Evict`]).
    evict: Option<Arc<Evict>>,
    write_stall: Option<WriteStall>,
}

impl Counted {
    /// True on a [`HEALTH_RESERVE`] slot: only `/healthz` and `/metrics` are served.
    pub fn health_only(&self) -> bool {
        self.health_only
    }

    /// On a reserve slot, its eviction handle.
    pub fn evict(&self) -> Option<Arc<Evict>> {
        self.evict.clone()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.slot.fetch_sub(1, Ordering::Relaxed);
        self.stats.connection(-1);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Counted {
    /// Puts the write-stall deadline on this stream (see [`WriteStall`]).
    pub fn guard_writes(&mut self, guard: WriteStall) {
        self.write_stall = Some(guard);
    }

    fn stall_check<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Some(guard) = self.write_stall.as_mut() else {
            return r;
        };
        let r = guard.check(cx, r);
        if matches!(&r, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut) {
            self.stats.deadline(Phase::Write);
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stall_check(cx, r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.stall_check(cx, r)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stall_check(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line sums up an interval's refusals by reason; a quiet interval logs nothing.
    #[test]
    fn refusals_are_summed_up_per_interval() {
        let now = [("at_capacity", 812), ("fd_exhausted", 3)];
        assert_eq!(
            refusal_summary(&now, &[0, 3]).as_deref(),
            Some("refused 812 connections in the last 10s (at_capacity: 812)")
        );
        assert_eq!(
            refusal_summary(&now, &[800, 1]).as_deref(),
            Some("refused 14 connections in the last 10s (at_capacity: 12, fd_exhausted: 2)")
        );
        assert_eq!(refusal_summary(&now, &[812, 3]), None);
    }
}
