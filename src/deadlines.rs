//! Connection deadlines: the `[deadlines]` settings, and what each one bounds.
//!
//! A connection that has not become a WebSocket yet holds a slot of the connection cap, so every
//! phase before the upgrade has a deadline (spec: `protocol/README.md`, Connecting):
//! - `header_read_secs`: from the moment the server waits for a request head until the head is
//!   complete. It covers a silent new connection, a half-sent head (including a half-sent
//!   upgrade request) and the idle gap between requests on a kept-alive connection: hyper starts
//!   this clock when it begins waiting for the next head. On expiry the connection is closed.
//! - `body_read_secs`: from the head until the last byte of the request body; a trickled body
//!   gets `408 request_timeout` and the connection is closed ([`crate::http::deadline`]).
//! - `upgrade_secs`: from the `101` answer until the connection is handed to its WebSocket task.
//! - `write_stall_secs`: how long a response write may wait for a client that does not read
//!   (pipelined requests whose answers are never read would hold the slot forever otherwise);
//!   [`WriteStall`], on the connection's stream, until the upgrade.
//!
//! After the upgrade the WebSocket heartbeat (`heartbeat_timeout_secs`) bounds a silent socket.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Sleep;

use crate::config::{secs, ConfigError};

/// `[deadlines]` as written in the file; seconds, each at least 0.01 (default 10).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlineConfig {
    /// Waiting for a request head: idle new connections, half-sent heads, idle keep-alive.
    pub header_read_secs: f64,
    /// Receiving a request body after its head.
    pub body_read_secs: f64,
    /// Completing an upgrade after its `101`.
    pub upgrade_secs: f64,
    /// A response write waiting for the client to read.
    pub write_stall_secs: f64,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        Self {
            header_read_secs: 10.0,
            body_read_secs: 10.0,
            upgrade_secs: 10.0,
            write_stall_secs: 10.0,
        }
    }
}

/// The validated deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// See [`DeadlineConfig::header_read_secs`].
    pub header_read: Duration,
    /// See [`DeadlineConfig::body_read_secs`].
    pub body_read: Duration,
    /// See [`DeadlineConfig::upgrade_secs`].
    pub upgrade: Duration,
    /// See [`DeadlineConfig::write_stall_secs`].
    pub write_stall: Duration,
}

impl DeadlineConfig {
    /// Validates each value (0.01 to 86400 seconds), naming the field on error.
    pub fn validate(&self) -> Result<Deadlines, ConfigError> {
        Ok(Deadlines {
            header_read: secs("deadlines.header_read_secs", self.header_read_secs, 0.01)?,
            body_read: secs("deadlines.body_read_secs", self.body_read_secs, 0.01)?,
            upgrade: secs("deadlines.upgrade_secs", self.upgrade_secs, 0.01)?,
            write_stall: secs("deadlines.write_stall_secs", self.write_stall_secs, 0.01)?,
        })
    }
}

/// The phases a deadline can close a connection in (the `phase` label of
/// `rollcall_connection_deadlines_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head, including keep-alive idle.
    Header,
    /// Receiving a request body.
    Body,
    /// Between the `101` and the WebSocket task.
    Upgrade,
    /// A response write waiting for a client that does not read.
    Write,
}

impl Phase {
    /// Every phase, in label order.
    pub const ALL: [Phase; 4] = [Phase::Header, Phase::Body, Phase::Upgrade, Phase::Write];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Header => "header",
            Phase::Body => "body",
            Phase::Upgrade => "upgrade",
            Phase::Write => "write",
        }
    }
}

/// The write-stall deadline of one connection's stream: a write that stays pending for
/// `limit` fails with `TimedOut`. Off once `upgraded` is set: a WebSocket's stalled writes are
/// the slow-consumer rule's (close 4008 after `slow_consumer_secs`).
#[derive(Debug)]
pub struct WriteStall {
    limit: Duration,
    upgraded: Arc<AtomicBool>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl WriteStall {
    /// A guard of `limit`, switched off by `upgraded`.
    pub fn new(limit: Duration, upgraded: Arc<AtomicBool>) -> Self {
        Self {
            limit,
            upgraded,
            timer: None,
        }
    }

    /// Looks at a write's outcome: progress clears the clock; a pending write starts it, and
    /// once it has run out the write fails instead.
    pub fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if r.is_ready() || self.upgraded.load(Ordering::Relaxed) {
            self.timer = None;
            return r;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.timer = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read its answer in time",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zero, negative and absurd deadlines are refused with the field's name.
    #[test]
    fn out_of_range_deadlines_name_their_field() {
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            let c = DeadlineConfig {
                body_read_secs: bad,
                ..DeadlineConfig::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("deadlines.body_read_secs"), "{e}");
        }
        let d = DeadlineConfig::default().validate().unwrap();
        assert_eq!(d.header_read, Duration::from_secs(10));
    }
}
