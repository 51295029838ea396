//! This node's inbox, `rc:{n:<node>}:in`: the one channel every other node publishes to this
//! one on, read here and applied in order ([`dispatch`]).
//!
//! - **One Redis server**: classic pub/sub, subscribed on the first configured server that
//!   answers.
//! - **A Redis Cluster** (`--redis-cluster`): sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis
//!   7+). A message stays on the shard that owns the channel's slot, where classic pub/sub is
//!   broadcast over the cluster bus to every master. The subscription is made on a RESP3
//!   cluster connection of its own, which follows resharding and failover and subscribes again
//!   by itself; its pushes reach the reader through a bounded queue.
//!
//! Either way the reader subscribes again (with backoff) when the connection drops, or when the
//! heartbeat's probes say the subscription went deaf.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::link::inbox;
use super::wire::{Envelope, Msg};
use super::{Cluster, Ctl};

/// Messages from other nodes buffered between the sharded subscription and the reader (beyond:
/// dropped and logged, as on a lost connection).
const SHARDED_QUEUE: usize = 65_536;

/// A subscription to our inbox.
pub(super) enum Sub {
    /// Classic pub/sub on one server.
    Classic(redis::aio::PubSub),
    /// Sharded pub/sub on a Redis Cluster; the connection lives as long as the subscription.
    Sharded {
        _conn: redis::cluster_async::ClusterConnection,
        rx: mpsc::Receiver<Vec<u8>>,
    },
}

/// What the reader reads: message payloads, until the subscription ends.
enum Reader {
    Classic(Pin<Box<dyn Stream<Item = redis::Msg> + Send>>),
    Sharded {
        _conn: redis::cluster_async::ClusterConnection,
        rx: mpsc::Receiver<Vec<u8>>,
    },
}

impl Reader {
    fn new(sub: Sub) -> Self {
        match sub {
            Sub::Classic(p) => Self::Classic(Box::pin(p.into_on_message())),
            Sub::Sharded { _conn, rx } => Self::Sharded { _conn, rx },
        }
    }

    async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Self::Classic(s) => s.next().await.map(|m| m.get_payload_bytes().to_vec()),
            Self::Sharded { rx, .. } => rx.recv().await,
        }
    }
}

/// Subscribes to our inbox: sharded on a Redis Cluster, else classic.
pub(super) async fn subscribe(c: &Cluster) -> Result<Sub, redis::RedisError> {
    if c.settings.redis_cluster {
        return sharded(c).await;
    }
    let mut last = None;
    for client in &c.clients {
        let sub = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(inbox(&c.me)).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match sub.await {
            Ok(p) => return Ok(Sub::Classic(p)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| (redis::ErrorKind::Io, "no redis to subscribe to").into()))
}

/// `SSUBSCRIBE` on a RESP3 cluster connection of its own, whose pushes feed a bounded queue.
async fn sharded(c: &Cluster) -> Result<Sub, redis::RedisError> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(SHARDED_QUEUE);
    let push = move |info: redis::PushInfo| -> Result<(), ()> {
        if !matches!(info.kind, redis::PushKind::SMessage) {
            return Ok(()); // (re)subscription confirmations
        }
        if let Some(redis::Value::BulkString(payload)) = info.data.into_iter().nth(1) {
            if tx.try_send(payload).is_err() {
                tracing::error!(
                    "inbox: reader too far behind; a message from another node dropped"
                );
            }
        }
        Ok(())
    };
    let client = redis::cluster::ClusterClientBuilder::new(c.settings.redis_urls())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(push)
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .build()?;
    let mut conn = client.get_async_connection().await?;
    conn.ssubscribe(inbox(&c.me)).await?;
    Ok(Sub::Sharded { _conn: conn, rx })
}

/// Reads the inbox forever, subscribing again (with backoff) when the subscription ends.
pub(super) async fn read(c: Arc<Cluster>, mut first: Option<Sub>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let sub = match first.take() {
            Some(s) => s,
            None => match tokio::time::timeout(Duration::from_secs(5), subscribe(&c))
                .await
                .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "subscribing timed out").into()))
            {
                Ok(s) => {
                    backoff = Duration::from_millis(100);
                    s
                }
                Err(e) => {
                    tracing::debug!(error = %e, "inbox: resubscribing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let mut reader = Reader::new(sub);
        loop {
            let payload = tokio::select! {
                p = reader.next() => p,
                // Our own probes stopped coming back: the subscription is deaf (a master gone
                // without a word); subscribe again.
                _ = c.inbox_deaf.notified() => {
                    tracing::warn!("inbox: our probes stopped arriving; resubscribing");
                    break;
                }
            };
            let Some(payload) = payload else {
                tracing::warn!("inbox: connection to redis lost; resubscribing");
                break;
            };
            c.inbox_heard.fetch_add(1, Ordering::Relaxed);
            match serde_json::from_slice::<Envelope>(&payload) {
                Ok(env) => dispatch(&c, env).await,
                Err(e) => tracing::warn!(error = %e, "inbox: unreadable message dropped"),
            }
        }
    }
}

/// Applies one envelope's messages in order.
async fn dispatch(c: &Arc<Cluster>, env: Envelope) {
    let from: Arc<str> = env.from.into();
    for msg in env.msgs {
        match msg {
            Msg::Call { req, room, call } => {
                super::owner::handle_call(c, &from, req, room, call).await;
            }
            Msg::Answer { req, result } => {
                if matches!(result, Err(crate::room::RoomError::Closed)) {
                    // The node we asked does not own that room (any more): its front finds
                    // the owner and asks again.
                    c.refused(req, &from);
                } else {
                    c.answer(req, result);
                }
            }
            Msg::Frames { conn, frames } => {
                let Some(conn) = c.locals.get(&conn).and_then(|w| w.upgrade()) else {
                    continue;
                };
                for f in frames {
                    if conn.push(crate::frame::Frame::new(f)) == crate::frame::Push::Full {
                        // The socket is behind on what its rooms' owners sent: like a local
                        // slow consumer, it is closed and reconnects to a fresh panel.
                        let _ = conn.close(crate::protocol::close::SLOW_CONSUMER);
                        break;
                    }
                }
            }
            Msg::Detached { conn, room } => {
                if let Some(sock) = c.locals.get(&conn).and_then(|w| w.upgrade()) {
                    sock.detached(&room);
                }
                if let Some(f) = c.fronts.get(&room) {
                    let _ = f.1.try_send(Ctl::Detached(conn)); // best effort
                }
            }
            Msg::Close { conn, code } => {
                if let Some(sock) = c.locals.get(&conn).and_then(|w| w.upgrade()) {
                    let _ = sock.close(code);
                }
            }
        }
    }
}
