//! rollcall: a real-time WebSocket presence server.
//!
//! Each room is an actor task that owns its member set; every leave, kick, "left", disconnect and
//! timeout reaches it as a command and leaves it as exactly one versioned event, serialized once
//! and pushed to every subscriber's bounded outbox.
//!
//! # Layout
//! - [`cli`]: command-line flags and the helper commands (`rollcall token`).
//! - [`config`]: defaults < TOML file < `ROLLCALL_*` env < flags, validated into [`config::Settings`].
//! - [`devmode`]: when the built-in public development credentials are live (never beside a
//!   configured one).
//! - [`ids`]: newtype ids (`RoomId`, `MemberId`, `ConnId`).
//! - [`protocol`]: the WebSocket wire types, error codes and close codes (spec in `protocol/`).
//! - [`frame`]: a serialized server message shared by every outbox, with its kind and version.
//! - [`room`]: the room actor, its handle, the member set and the registry.
//! - [`conn`]: the subscriber seam: what a room may do to a socket (push, close, attach).
//! - [`outbox`]: a connection's bounded frame queue, the fan-out hot path.
//! - [`relay`]: the cluster seam: where events go beyond this node (webhooks; later a cluster).
//! - [`auth`]: who a socket is ([`auth::Identity`]); JWT verification with pinned algorithms;
//!   constant-time secret comparison.
//! - [`ws`]: `GET /v1/ws`: authentication, our own upgrade handshake (`ws::upgrade`), the
//!   per-connection task (`ws::session`) and its socket writer (`ws::socket`: batched small frames,
//!   large ones written from shared bytes, nothing buffered between writes).
//! - [`http`]: the router and the operator REST API (`http::admin`).
//! - [`facade`]: the three vendor APIs (game rooms, lobbies, video rooms) over the room core;
//!   each façade's rules in its `rules` module, applied inside the room through [`room::Ops`].
//! - [`limits`]: room-creation rate limits and room caps (issue #9), counted in `/metrics`.
//! - [`listener`]: the TCP listener with a connection cap and clean refusal on fd exhaustion.
//! - [`connection`]: serving each accepted connection (hyper HTTP/1.1) with its deadlines.
//! - [`deadlines`]: the `[deadlines]` settings: header read, body read, upgrade.
//! - [`server`]: bind, serve, graceful shutdown.
//! - [`drain`]: the shutdown drain: rooms closed with reason `shutdown`, webhooks flushed.
//! - [`store`]: durable records (rooms, tasks, counters, the webhook queue): a group-commit
//!   writer over a [`store::Backend`] (SQLite in `--data-dir`; in memory with `--ephemeral`).
//! - [`stats`]: process-wide counters (plain atomics the room actors bump).
//! - [`memory`]: gives freed heap back to the OS after mass disconnects (glibc `malloc_trim`).
//! - [`metrics`]: `GET /metrics` (Prometheus/OpenMetrics via `prometheus-client`) and the REST
//!   request middleware.
//! - [`webhook`]: signed leave webhooks: a relay, a dispatcher and per-endpoint delivery workers.
//! - [`panel`]: `GET /panel/{room}`, the live participant panel page (embedded HTML/CSS/JS).
//! - [`app`]: the shared state handed to every handler.
//! - [`fuzzing`]: the properties the fuzz targets (`fuzz/`) and the corpus replay test check.

// No `unwrap()` in the server's own code: an `expect` says why it cannot fail, or the case is
// handled. Scoped to src/ (here, not in Cargo.toml's [lints], which would reach the test and
// bench crates too); `#[cfg(test)]` code may unwrap (clippy.toml: allow-unwrap-in-tests).
#![warn(clippy::unwrap_used)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod connection;
pub mod deadlines;
pub mod devmode;
pub mod drain;
pub mod facade;
pub mod frame;
pub mod fuzzing;
pub mod http;
pub mod ids;
pub mod limits;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod outbox;
pub mod panel;
pub mod protocol;
pub mod relay;
pub mod room;
pub mod server;
pub mod stats;
pub mod store;
pub mod webhook;
pub mod ws;
