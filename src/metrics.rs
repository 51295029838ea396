//! `GET /metrics`: the Prometheus exposition, encoded by `prometheus-client` (OpenMetrics text).
//!
//! Three sources feed one registry:
//! - [`Stats`] (plain atomics the room actors bump) is read at scrape time by a collector, so the
//!   actor never touches an exporter type: sockets, rooms, members, events by type and leave
//!   reason, deliveries, lagging/resyncs/slow-consumer closes, fan-out latency, tasks by state,
//!   TCP connections open, refused and closed by a deadline.
//! - [`HttpMetrics`]: REST requests by route (axum's `MatchedPath`, never the raw path, so room
//!   names cannot blow up the label space), method and status, recorded by [`track`].
//! - [`WebhookMetrics`]: webhook deliveries, failed attempts, drops and queue depth per endpoint.
//!
//! The endpoint is open unless `metrics_require_admin` is set (then it takes the admin bearer
//! token, like the operator API). Spec: `protocol/metrics.md`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::app::App;
use crate::stats::Stats;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a REST request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/rooms/{room}`), or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a request-duration observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
}

/// REST request counters, recorded by the [`track`] middleware.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 4.0, 9))
            }),
        }
    }
}

/// Labels of a webhook endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The endpoint's `name` (default: its URL's host).
    pub endpoint: String,
}

/// Labels of a webhook drop.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// The endpoint's label.
    pub endpoint: String,
    /// `queue_full` (the endpoint's queue was at `max_queue`) or `gave_up` (`max_attempts`
    /// failed attempts).
    pub reason: String,
}

/// Webhook counters, bumped by the delivery workers. Clones share the same series.
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    /// Deliveries acknowledged with a 2xx.
    pub delivered: Family<EndpointLabels, Counter>,
    /// Failed attempts (error, timeout or non-2xx); each is retried unless given up.
    pub failures: Family<EndpointLabels, Counter>,
    /// Deliveries dropped, by reason.
    pub dropped: Family<DropLabels, Counter>,
    /// Deliveries queued or in flight now.
    pub queued: Family<EndpointLabels, Gauge>,
    /// Events the relay could not hand to the dispatcher (its channel was full).
    pub relay_dropped: Counter,
    /// Deliveries taken over from a dead node's outbox (cluster).
    pub adopted: Counter,
    /// Writes to the cluster's outbox that failed (those deliveries cannot be handed over).
    pub outbox_failures: Counter,
}

impl WebhookMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "rollcall_webhook_deliveries",
            "Webhook deliveries acknowledged with a 2xx",
            self.delivered.clone(),
        );
        r.register(
            "rollcall_webhook_failures",
            "Failed webhook attempts (error, timeout or non-2xx status)",
            self.failures.clone(),
        );
        r.register(
            "rollcall_webhook_dropped",
            "Webhook deliveries dropped (queue_full, gave_up)",
            self.dropped.clone(),
        );
        r.register(
            "rollcall_webhook_queue_depth",
            "Webhook deliveries queued or in flight",
            self.queued.clone(),
        );
        r.register(
            "rollcall_webhook_relay_dropped",
            "Room events the webhook dispatcher could not take (its channel was full)",
            self.relay_dropped.clone(),
        );
        r.register(
            "rollcall_webhook_adopted",
            "Webhook deliveries taken over from a dead node's outbox (cluster)",
            self.adopted.clone(),
        );
        r.register(
            "rollcall_webhook_outbox_failures",
            "Failed writes to the cluster's webhook outbox (those deliveries stay with this node)",
            self.outbox_failures.clone(),
        );
    }
}

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every series: the counters in `stats`, the live room count of `rooms`, the
    /// REST request counters and `webhooks`.
    pub fn new(stats: Arc<Stats>, rooms: crate::room::Registry, webhooks: &WebhookMetrics) -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::default();
        registry.register(
            "rollcall_http_requests",
            "REST requests by route template, method and status",
            http.requests.clone(),
        );
        registry.register(
            "rollcall_http_request_duration_seconds",
            "REST request handling time by route template and method",
            http.duration.clone(),
        );
        webhooks.register(&mut registry);
        registry.register_collector(Box::new(StatsCollector { stats, rooms }));
        Self { registry, http }
    }

    /// Adds `rollcall_limit_refusals_total{limit}`.
    pub fn with_limits(mut self, limits: &crate::limits::Limits) -> Self {
        self.registry.register(
            "rollcall_limit_refusals",
            "Room creations refused by a limit (rates, room caps, lobby settings size)",
            limits.refusals().clone(),
        );
        self
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Records one REST request.
    pub fn request(&self, route: &str, method: &str, status: u16, took: std::time::Duration) {
        self.http
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http
            .duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

/// Reads [`Stats`] and the room registry at scrape time.
struct StatsCollector {
    stats: Arc<Stats>,
    rooms: crate::room::Registry,
}

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsCollector").finish_non_exhaustive()
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

impl prometheus_client::collector::Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.stats;
        gauge(
            &mut enc,
            "rollcall_sockets",
            "Open WebSocket connections",
            s.sockets(),
        )?;
        counter(
            &mut enc,
            "rollcall_sockets_opened",
            "WebSocket connections opened",
            s.sockets_total(),
        )?;
        let rooms = i64::try_from(self.rooms.len()).unwrap_or(i64::MAX);
        gauge(&mut enc, "rollcall_rooms", "Live rooms", rooms)?;
        gauge(
            &mut enc,
            "rollcall_members",
            "Members in all rooms",
            s.members(),
        )?;

        let mut family = enc.encode_descriptor(
            "rollcall_events",
            "Room events by type; `left` events also by leave reason",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in s.events() {
            let labels: Vec<(&str, &str)> = match kind {
                "leave" | "kick" | "left" | "disconnect" | "timeout" => {
                    vec![("type", "left"), ("reason", kind)]
                }
                // `other` is what the actor calls `updated` (façade attribute) events.
                "other" => vec![("type", "updated")],
                _ => vec![("type", kind)],
            };
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }

        let store = self.rooms.store();
        let health = store.health();
        gauge(
            &mut enc,
            "rollcall_store_durable",
            "1 when records are kept in a data dir, 0 with --ephemeral",
            i64::from(store.durable()),
        )?;
        gauge(
            &mut enc,
            "rollcall_store_up",
            "0 while the last commit failed (writes answer 503), 1 otherwise",
            i64::from(!health.failing.load(std::sync::atomic::Ordering::Relaxed)),
        )?;
        counter(
            &mut enc,
            "rollcall_store_commits",
            "Store transactions committed (group commits)",
            health.commits.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "rollcall_store_commit_failures",
            "Store commits that failed (each is retried)",
            health.failures.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        if let Some(c) = self.rooms.cluster() {
            crate::cluster::encode_metrics(c, &mut enc, gauge, counter)?;
        }
        counter(
            &mut enc,
            "rollcall_deliveries",
            "Event frames queued to subscriber outboxes",
            s.deliveries(),
        )?;
        gauge(
            &mut enc,
            "rollcall_lagging_subscribers",
            "Subscriptions whose outbox is full now (waiting for a fresh panel)",
            s.lagging(),
        )?;
        counter(
            &mut enc,
            "rollcall_resyncs",
            "Lagging subscriptions resynced with a fresh panel",
            s.resyncs(),
        )?;
        counter(
            &mut enc,
            "rollcall_slow_consumer_closes",
            "Sockets closed with 4008 for staying behind",
            s.slow_closes(),
        )?;

        let h = s.fanout_histogram();
        let metric = enc.encode_descriptor(
            "rollcall_fanout_seconds",
            "Time for a room to push one event into every subscriber's outbox",
            None,
            MetricType::Histogram,
        )?;
        let mut metric = metric;
        metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum, h.count, &h.buckets, None,
        )?;

        let mut family = enc.encode_descriptor(
            "rollcall_tasks",
            "Async tasks (game façade) that reached each state",
            None,
            MetricType::Counter,
        )?;
        for (state, n) in s.tasks() {
            ConstCounter::new(n).encode(family.encode_family(&[("state", state)])?)?;
        }

        gauge(
            &mut enc,
            "rollcall_connections",
            "Open TCP connections (WebSockets included)",
            s.connections(),
        )?;
        let mut family = enc.encode_descriptor(
            "rollcall_connections_refused",
            "TCP connections refused with 503 or dropped, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in s.refusals() {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let mut family = enc.encode_descriptor(
            "rollcall_connection_deadlines",
            "Connections closed by a deadline before the upgrade, by phase",
            None,
            MetricType::Counter,
        )?;
        for (phase, n) in s.deadlines() {
            ConstCounter::new(n).encode(family.encode_family(&[("phase", phase)])?)?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub async fn handler(State(app): State<App>, headers: HeaderMap) -> Response {
    if app.settings.metrics_require_admin {
        if let Err(e) = crate::http::admin::require_admin(&app, &headers) {
            return e.into_response();
        }
    }
    match app.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        // Encoding into a String only fails if a collector reports an error; none does.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Middleware: counts every request by route template, method and status, and times it.
pub async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only the standard methods get their own label: anything else cannot grow the label set.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    app.metrics
        .request(&route, &method, resp.status().as_u16(), started.elapsed());
    resp
}
