//! The `[cluster]` table, its flags, and the validated [`ClusterSettings`].

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// `[cluster]` in the TOML file. Without `redis_url` the node runs alone (the embedded engine).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://host:port/` of the Redis every node of the cluster shares.
    pub redis_url: Option<String>,
    /// This node's id (unique in the cluster); generated at start when unset.
    pub node_id: Option<String>,
    /// Seconds a node's heartbeat lives: a node silent that long is dead, its members leave
    /// with `timeout` and its rooms move to other nodes (default 5).
    pub node_ttl_secs: Option<f64>,
}

/// Validated cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Redis address.
    pub redis_url: String,
    /// This node's id.
    pub node_id: String,
    /// Heartbeat lifetime.
    pub node_ttl: Duration,
}

impl ClusterSettings {
    /// `None` without a Redis URL.
    pub fn from_config(c: &ClusterConfig) -> Result<Option<Self>, ConfigError> {
        let Some(url) = c.redis_url.clone().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if redis::Client::open(url.as_str()).is_err() {
            return Err(ConfigError::Invalid {
                field: "cluster.redis_url",
                reason: format!("{url:?} is not a redis:// URL"),
            });
        }
        let node_id = match &c.node_id {
            Some(id) => {
                let ok = !id.is_empty()
                    && id.len() <= 64
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(ConfigError::Invalid {
                        field: "cluster.node_id",
                        reason: "1-64 characters of [A-Za-z0-9_.-]".into(),
                    });
                }
                id.clone()
            }
            None => format!("n-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
        };
        let node_ttl =
            crate::config::secs("cluster.node_ttl_secs", c.node_ttl_secs.unwrap_or(5.0), 1.0)?;
        Ok(Some(Self {
            redis_url: url,
            node_id,
            node_ttl,
        }))
    }
}
