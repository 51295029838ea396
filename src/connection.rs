//! Serving accepted TCP connections over HTTP/1.1 with hyper directly (not `axum::serve`), for
//! the deadlines `axum::serve` cannot set (see [`crate::deadlines`]):
//! - the header-read deadline (hyper's `header_read_timeout`, with a Tokio timer): a silent new
//!   connection, a half-sent head and an idle kept-alive connection are closed;
//! - the write-stall deadline on the stream ([`WriteStall`]), until the upgrade;
//! - the upgrade deadline: once the upgrade handler answers `101` ([`Upgrading::started`]), the
//!   connection must be handed to its WebSocket task within `upgrade_secs`, or it is dropped;
//! - the [`HEALTH_RESERVE`](crate::listener::HEALTH_RESERVE) connections (accepted above the
//!   cap) are answered `/healthz` and `/metrics` only, without keep-alive; anything else gets the
//!   same `503 at_capacity` as a refused connection, and counts as one.
//!
//! The body-read deadline is a middleware ([`crate::http::deadline`]). Graceful shutdown works as
//! in `axum::serve`: stop accepting, ask every connection to finish its request, wait for them.
//! HTTP/1.1 only, as before (axum's `http2` feature was never enabled).

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Notify};

use crate::app::App;
use crate::deadlines::{Phase, WriteStall};
use crate::listener::{Counted, Listener, Peer, AT_CAPACITY_BODY};

/// Put on every request; the upgrade handler calls [`Upgrading::started`] when it answers `101`,
/// which starts the connection's upgrade deadline.
#[derive(Clone, Debug, Default)]
pub struct Upgrading(Arc<UpgradingInner>);

#[derive(Debug, Default)]
struct UpgradingInner {
    notify: Notify,
    /// Switches the write-stall deadline off (a WebSocket's writes are the slow-consumer rule's).
    flag: Arc<AtomicBool>,
}

impl Upgrading {
    /// The `101` is on its way: the hand-off must happen within the upgrade deadline.
    pub fn started(&self) {
        self.0.flag.store(true, Ordering::Relaxed);
        self.0.notify.notify_one();
    }
}

/// Paths a [`HEALTH_RESERVE`](crate::listener::HEALTH_RESERVE) connection may ask for.
fn health_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics")
}

fn at_capacity() -> Response<Body> {
    let mut resp = Response::new(Body::from(AT_CAPACITY_BODY));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Accepts until `signal` resolves, serves each connection in its own task, then waits (at most
/// `shutdown_timeout`) for every connection that has not been upgraded to finish.
pub async fn serve(
    mut listener: Listener,
    router: Router,
    app: App,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    // The only receiver is dropped when the signal fires: `signal_tx.closed()` tells the
    // accept loop and every connection task.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    // Each task holds a `close_rx`; `close_tx.closed()` resolves when the last one ends.
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let (io, addr) = tokio::select! {
            conn = axum::serve::Listener::accept(&mut listener) => conn,
            _ = signal_tx.closed() => break,
        };
        spawn_connection(io, addr, &router, &app, signal_tx.clone(), close_rx.clone());
    }
    drop(close_rx);
    drop(listener);
    if tokio::time::timeout(app.settings.shutdown_timeout, close_tx.closed())
        .await
        .is_err()
    {
        tracing::debug!("shutdown bound reached with HTTP requests unfinished");
    }
}

fn spawn_connection(
    mut io: Counted,
    addr: std::net::SocketAddr,
    router: &Router,
    app: &App,
    signal_tx: watch::Sender<()>,
    close_rx: watch::Receiver<()>,
) {
    let deadlines = app.settings.deadlines;
    let stats = app.stats.clone();
    let health_only = io.health_only();
    let upgrading = Upgrading::default();
    io.guard_writes(WriteStall::new(
        deadlines.write_stall,
        upgrading.0.flag.clone(),
    ));
    let marker = upgrading.clone();
    let evict = io.evict();
    let head_arrived = evict.clone();
    let inner = TowerToHyperService::new(router.clone());
    let refusals = stats.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        if let Some(e) = &head_arrived {
            e.busy.store(true, Ordering::Release); // asking now: no longer evictable
        }
        let refuse = health_only && !health_path(req.uri().path());
        let answer = if refuse {
            refusals.refused(false);
            None
        } else {
            req.extensions_mut().insert(marker.clone());
            // The peer address, as `axum::serve` gives it (per-address limits on sockets).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(Peer(addr)));
            Some(hyper::service::Service::call(&inner, req))
        };
        async move {
            match answer {
                Some(fut) => fut.await,
                None => Ok::<_, Infallible>(at_capacity()),
            }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.header_read)
        .keep_alive(!health_only);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::spawn(async move {
        let mut conn = pin!(conn);
        let mut signalled = pin!(signal_tx.closed());
        let mut draining = false;
        let mut upgrade_deadline = pin!(async {
            upgrading.0.notify.notified().await;
            tokio::time::sleep(deadlines.upgrade).await;
        });
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    match result {
                        // A silent or half-sent head; an idle kept-alive connection ends with
                        // `Ok` (a normal keep-alive close) and is not counted.
                        Err(e) if e.is_timeout() => stats.deadline(Phase::Header),
                        Err(e) => tracing::trace!(error = %e, "connection ended with an error"),
                        Ok(()) => {}
                    }
                    break;
                }
                _ = &mut signalled, if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = &mut upgrade_deadline => {
                    stats.deadline(Phase::Upgrade);
                    tracing::debug!("upgrade not completed in time: connection dropped");
                    break;
                }
                _ = evicted(evict.as_deref()) => {
                    tracing::debug!("idle reserve connection evicted by a newer one");
                    break;
                }
            }
        }
        drop(close_rx);
    });
}

/// Resolves when the listener evicts this reserve connection; never for other connections.
async fn evicted(evict: Option<&crate::listener::Evict>) {
    match evict {
        Some(e) => e.notify.notified().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reserve serves health and metrics, nothing else; its refusal is the listener's body.
    #[test]
    fn the_reserve_serves_health_and_metrics_only() {
        assert!(health_path("/healthz") && health_path("/metrics"));
        assert!(!health_path("/v1/ws") && !health_path("/healthz/x"));
        let r = at_capacity();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }
}
