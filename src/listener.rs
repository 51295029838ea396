//! The TCP listener: raises the open-file limit, caps simultaneous connections, and refuses
//! cleanly when descriptors run out.
//!
//! Running out of file descriptors is an expected event for a socket server. Above the cap, or
//! when `accept` fails with EMFILE/ENFILE, a new connection gets `503` and is closed, while
//! existing connections keep working. For EMFILE the classic reserve-descriptor trick frees one
//! descriptor to accept and refuse the waiting connection instead of leaving it in the backlog.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Descriptors kept back from the connection cap for files, the listener and the reserve.
const SPARE_FDS: u64 = 64;

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

/// A listener that counts and caps its connections.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    cap: usize,
    reserve: Option<std::fs::File>,
}

impl Listener {
    /// Wraps a bound listener with a connection cap.
    pub fn new(inner: TcpListener, cap: usize) -> Self {
        Self {
            inner,
            open: Arc::new(AtomicUsize::new(0)),
            cap,
            reserve: std::fs::File::open("/dev/null").ok(),
        }
    }

    /// Connections open now.
    pub fn open_count(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    fn refuse(stream: TcpStream) {
        tokio::spawn(async move {
            let mut stream = stream;
            // Best effort: the client learns why; a failed write changes nothing.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(REFUSAL)).await;
        });
    }
}

/// A connection's peer address, handed to handlers as `ConnectInfo<Peer>` (per-address limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::serve::Listener for Listener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.open.load(Ordering::Relaxed) >= self.cap {
                        tracing::warn!(cap = self.cap, "connection refused: at capacity");
                        Self::refuse(stream);
                        continue;
                    }
                    // Nagle would hold small event frames back; latency matters more here.
                    let _ = stream.set_nodelay(true); // failure only costs latency
                    self.open.fetch_add(1, Ordering::Relaxed);
                    return (
                        Counted {
                            inner: stream,
                            open: self.open.clone(),
                        },
                        addr,
                    );
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    tracing::warn!(error = %e, "out of file descriptors: refusing a connection");
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

/// A TCP stream that gives its slot back when dropped.
#[derive(Debug)]
pub struct Counted {
    inner: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
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

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
