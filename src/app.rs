//! The shared application state every handler receives: settings, the room registry, the token
//! verifier, counters and metrics, and the shutdown signal with the tracker of live socket tasks.
//!
//! The room registry's relay is composed here: the local relay plus, when `[[webhooks]]` are
//! configured, the webhook relay (whose tasks stop at the end of the shutdown drain).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Verifier;
use crate::config::{ConfigError, Settings};
use crate::metrics::{Metrics, WebhookMetrics};
use crate::relay::{LocalRelay, Relay, Relays};
use crate::room::Registry;
use crate::stats::Stats;

/// Cheap to clone: one `Arc`.
#[derive(Clone, Debug)]
pub struct App(Arc<AppInner>);

/// The state behind [`App`].
#[derive(Debug)]
pub struct AppInner {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Live rooms.
    pub registry: Registry,
    /// Socket token verifier.
    pub verifier: Verifier,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Socket tasks, awaited (with a bound) at shutdown.
    pub tracker: TaskTracker,
    /// Open sockets, told to close at shutdown.
    pub sockets: crate::conn::Sockets,
    /// The vendor façades' state.
    pub facades: crate::facade::Facades,
    /// The `/metrics` registry.
    pub metrics: Arc<Metrics>,
    /// The webhook relay, when `[[webhooks]]` are configured: flushed by the shutdown drain.
    pub webhooks: Option<Arc<crate::webhook::WebhookRelay>>,
    /// Room-creation limits.
    pub limits: crate::limits::Limits,
}

impl AppInner {
    /// The commit barrier of a REST write: returns once everything the request changed (its
    /// rooms' records, its task, the webhook deliveries of its events) is committed. An error
    /// means it was not: the caller answers 503 instead of acknowledging.
    pub async fn commit(&self) -> Result<(), crate::store::StoreError> {
        if let Some(w) = &self.webhooks {
            // The request's events were offered to the relay before its rooms replied; wait
            // until the dispatcher has staged their deliveries, so this commit covers them.
            w.staged_up_to_now().await;
        }
        if let Some(c) = self.registry.cluster() {
            // Rooms the request created are findable by every node before it is answered.
            c.claims_settled().await;
        }
        self.registry.store().flush().await
    }
}

impl App {
    /// Builds the state from settings. With `[[webhooks]]` configured it must run inside a Tokio
    /// runtime (the delivery tasks are spawned here).
    pub fn new(settings: Settings) -> Result<Self, ConfigError> {
        let settings = Arc::new(settings);
        let (store, loaded) = crate::store::Store::open(settings.data_dir.as_deref())?;
        for (kind, key, error) in &loaded.unreadable {
            tracing::warn!(
                kind,
                key,
                error,
                "stored record unreadable: kept in the file, not loaded"
            );
        }
        let stats = Arc::new(Stats::default());
        let verifier = Verifier::from_settings(&settings)?;
        let facades = crate::facade::Facades::new(&settings)?;
        let shutdown = CancellationToken::new();
        let webhook_metrics = WebhookMetrics::default();
        let mut relays: Vec<Arc<dyn Relay>> = vec![Arc::new(LocalRelay)];
        let webhooks = crate::webhook::start(&settings, &webhook_metrics, &store, &loaded)?;
        if let Some(w) = &webhooks {
            relays.push(w.clone());
        }
        let registry = Registry::with_relay(
            settings.clone(),
            stats.clone(),
            Arc::new(Relays(relays)),
            store.clone(),
        );
        let limits = crate::limits::Limits::new(settings.limits.clone());
        let metrics = Arc::new(
            Metrics::new(stats.clone(), registry.clone(), &webhook_metrics).with_limits(&limits),
        );
        let app = Self(Arc::new(AppInner {
            facades,
            registry,
            settings,
            verifier,
            stats,
            shutdown,
            tracker: TaskTracker::new(),
            sockets: crate::conn::Sockets::default(),
            metrics,
            webhooks,
            limits,
        }));
        app.restore(loaded);
        Ok(app)
    }

    /// Cluster mode: connects to Redis and from now on reaches every room through its owner
    /// node (`protocol/cluster.md`). Call once, before serving; nothing without `[cluster]`.
    pub async fn join_cluster(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<(), crate::cluster::ClusterError> {
        let Some(settings) = self.settings.cluster.clone() else {
            return Ok(());
        };
        let cluster =
            crate::cluster::Cluster::start(settings, &self.registry, addr.to_string()).await?;
        let app = Arc::downgrade(&self.0);
        cluster.on_fenced(move || {
            if let Some(app) = app.upgrade() {
                app.sockets
                    .close_all(crate::protocol::close::SERVICE_RESTART);
            }
        });
        if let Some(w) = &self.webhooks {
            cluster.serve_webhooks(w);
        }
        let app = Arc::downgrade(&self.0);
        cluster.on_takeover(move |rec| {
            if let Some(app) = app.upgrade().map(App) {
                let one = std::slice::from_ref(rec);
                app.facades.video.restore(one);
                app.facades.lobby.restore(&app, one);
            }
        });
        Ok(())
    }

    /// Resumes what the store held: rooms first (their actors), then each façade's indexes.
    fn restore(&self, loaded: crate::store::Loaded) {
        if loaded.rooms.is_empty() && loaded.tasks.is_empty() {
            return;
        }
        if self.settings.cluster.is_some() {
            // A cluster's rooms live in Redis, resumed by whichever node takes them over.
            tracing::warn!(
                rooms = loaded.rooms.len(),
                "cluster mode: rooms in the local data dir are not resumed"
            );
            return;
        }
        self.facades.game.restore(&loaded, self.registry.store());
        let rooms = loaded.rooms;
        let (n, members) = (
            rooms.len(),
            rooms.iter().map(|r| r.members.len()).sum::<usize>(),
        );
        self.registry.restore(rooms.clone());
        self.facades.video.restore(&rooms);
        self.facades.lobby.restore(self, &rooms);
        tracing::info!(
            store = %self.registry.store().location(),
            rooms = n,
            members,
            tasks = loaded.tasks.len(),
            "restored from the data dir"
        );
    }
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}
