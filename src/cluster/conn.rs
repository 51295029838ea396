//! The Redis the cluster talks to: one server (`redis::aio::ConnectionManager`, which
//! reconnects on its own) or a Redis Cluster (`--redis-cluster`: `redis::cluster_async`, which
//! routes each command to the master of its key's slot and follows the topology). Both are a
//! [`Redis`], a [`ConnectionLike`] the rest of `cluster/` uses without knowing which.
//!
//! Every command the cluster sends names one key, or keys that share a hash tag, so it runs
//! unchanged on either; where several keys of different slots are written together (the
//! heartbeat, the sweep, a batch of records) they go as concurrent single commands, never as
//! one pipeline. Pub/sub is `inbox.rs`: classic on one server, sharded (`SSUBSCRIBE` on a
//! connection of its own) on a Redis Cluster.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::ClusterSettings;

/// A connection to the cluster's Redis, cheap to clone (multiplexed).
#[derive(Clone)]
pub(super) enum Redis {
    /// One server.
    Single(redis::aio::ConnectionManager),
    /// A Redis Cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects to the configured Redis (bounded by 10 s); also returns the clients to subscribe
/// with, in the order to try them.
pub(super) async fn connect(
    s: &ClusterSettings,
) -> Result<(Redis, Vec<redis::Client>), RedisError> {
    let clients = s
        .redis_urls()
        .map(redis::Client::open)
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = |e: tokio::time::error::Elapsed| {
        tracing::debug!(error = %e, "connecting to redis timed out");
        RedisError::from((redis::ErrorKind::Io, "connecting to redis timed out"))
    };
    let redis = if s.redis_cluster {
        let client = redis::cluster::ClusterClientBuilder::new(s.redis_urls())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .retries(2)
            .build()?;
        let c = tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
            .await
            .map_err(timeout)??;
        Redis::Cluster(c)
    } else {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let client = clients[0].clone();
        let c = tokio::time::timeout(
            Duration::from_secs(10),
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(timeout)??;
        Redis::Single(c)
    };
    Ok((redis, clients))
}
