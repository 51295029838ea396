//! Serving: bind, run the router, and shut down in order.
//!
//! Shutdown: the signal cancels the app's token → every socket task sends close 1001 and exits
//! → the tracker is awaited → the drain closes the rooms (`room_closed` webhooks, reason
//! `shutdown`) and flushes the webhook queues ([`crate::drain`]), all within `shutdown_timeout`
//! → the HTTP server stops. The HTTP server ([`crate::connection`]) does not track upgraded
//! WebSocket tasks, hence the tracker.

use std::future::Future;
use std::net::SocketAddr;

use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Settings;
use crate::listener::{capacity, Listener};

/// A server started in the background (tests, benches, embedding).
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The application state (registry, counters, shutdown token).
    pub app: App,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Cancels and waits for the server to stop.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.app.shutdown.cancel();
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Binds `settings.listen` and serves in a background task.
pub async fn spawn(
    settings: Settings,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let fd_limit = crate::listener::raise_fd_limit();
    let cap = capacity(settings.max_connections, fd_limit);
    let tcp = crate::listener::bind(settings.listen)?;
    let addr = tcp.local_addr()?;
    let app = App::new(settings)?;
    app.join_cluster(addr).await?;
    let token = app.shutdown.clone();
    let listener = Listener::new(tcp, cap, app.stats.clone());
    let task = tokio::spawn(serve(listener, app.clone(), async move {
        token.cancelled().await
    }));
    Ok(Running { addr, app, task })
}

/// Serves until `signal` resolves, then shuts down within the configured bound.
pub async fn serve(
    listener: Listener,
    app: App,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = crate::http::router(app.clone());
    tokio::spawn(crate::memory::trim_after_drops(app.clone()));
    if app.registry.store().durable() || app.settings.cluster.is_some() {
        tokio::spawn(checkpoints(app.clone()));
    }
    tokio::spawn(crate::listener::log_refusals(
        app.stats.clone(),
        app.shutdown.clone(),
    ));
    let stop = app.shutdown.clone();
    let sockets_app = app.clone();
    let tracker = app.tracker.clone();
    let bound = app.settings.shutdown_timeout;
    // The shutdown sequence runs beside the HTTP server, which stops accepting the moment the
    // token is cancelled (right after the signal) and gives connections that have not upgraded
    // at most `shutdown_timeout` to finish: a half-sent request cannot hold the exit back.
    let accept_until = app.shutdown.clone();
    let shutdown = tokio::spawn(async move {
        signal.await;
        // Durable: the sockets about to close are going to the next process.
        sockets_app.registry.hand_over();
        stop.cancel();
        sockets_app
            .sockets
            .close_all(crate::protocol::close::GOING_AWAY);
        tracker.close();
        let deadline = tokio::time::Instant::now() + bound;
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = tracker.len(),
                "shutdown bound reached with sockets still open"
            );
        }
        // Nothing resumes these rooms: tell webhook receivers they are gone, and flush.
        crate::drain::drain(&sockets_app, deadline).await;
    });
    crate::connection::serve(listener, router, app, async move {
        accept_until.cancelled().await;
    })
    .await;
    // A panic in the sequence has been reported by the runtime; the process stops either way.
    let _ = shutdown.await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signals() {
    let ctrl_c = async {
        // If the handler cannot be installed we simply never see Ctrl-C.
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// The periodic presence checkpoint (durable or cluster mode): every `checkpoint_secs` (at most
/// a second in a cluster), each room whose members changed since its last record stages a new
/// one (a crash restart, or the node taking over a dead owner's room, resumes from it).
async fn checkpoints(app: App) {
    let mut period = app.settings.checkpoint;
    if app.settings.cluster.is_some() {
        period = period.min(std::time::Duration::from_secs(1));
    }
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for h in app.registry.handles() {
            h.try_checkpoint();
        }
    }
}
