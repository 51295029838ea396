//! The `[cluster]` table, its flags, and the validated [`ClusterSettings`].

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// `[cluster]` in the TOML file. Without `redis_url` the node runs alone (the embedded engine).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://host:port/` of the Redis every node of the cluster shares; with
    /// `redis_cluster`, one or more (comma-separated) seed nodes of a Redis Cluster.
    pub redis_url: Option<String>,
    /// The Redis is a Redis Cluster (keys routed by slot; default false).
    pub redis_cluster: Option<bool>,
    /// This node's id (unique in the cluster); generated at start when unset.
    pub node_id: Option<String>,
    /// Seconds a node's heartbeat lives: a node silent that long is dead, its members leave
    /// with `timeout` and its rooms move to other nodes (default 5).
    pub node_ttl_secs: Option<f64>,
}

/// Validated cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Redis address (comma-separated seed nodes for a Redis Cluster).
    pub redis_url: String,
    /// A Redis Cluster rather than one server.
    pub redis_cluster: bool,
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
        let redis_cluster = c.redis_cluster.unwrap_or(false);
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        if urls.len() > 1 && !redis_cluster {
            return Err(ConfigError::Invalid {
                field: "cluster.redis_url",
                reason: "several URLs are the seeds of a Redis Cluster: set redis_cluster".into(),
            });
        }
        if let Some(bad) = urls.iter().find(|u| redis::Client::open(**u).is_err()) {
            return Err(ConfigError::Invalid {
                field: "cluster.redis_url",
                reason: format!("{bad:?} is not a redis:// URL"),
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
            redis_cluster,
            node_id,
            node_ttl,
        }))
    }
}

impl ClusterSettings {
    /// Each URL of `redis_url`.
    pub fn redis_urls(&self) -> impl Iterator<Item = &str> + Clone {
        self.redis_url.split(',').map(str::trim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, cluster: Option<bool>) -> Result<Option<ClusterSettings>, ConfigError> {
        ClusterSettings::from_config(&ClusterConfig {
            redis_url: Some(url.into()),
            redis_cluster: cluster,
            node_id: Some("n1".into()),
            node_ttl_secs: None,
        })
    }

    #[test]
    fn several_urls_are_redis_cluster_seeds_only() {
        let two = "redis://127.0.0.1:7001/, redis://127.0.0.1:7002/";
        let e = settings(two, None).unwrap_err().to_string();
        assert!(e.contains("redis_cluster"), "{e}");
        let s = settings(two, Some(true))
            .unwrap()
            .expect("cluster settings");
        assert!(s.redis_cluster);
        assert_eq!(
            s.redis_urls().collect::<Vec<_>>(),
            ["redis://127.0.0.1:7001/", "redis://127.0.0.1:7002/"]
        );
        let e = settings("redis://a/,http://b/", Some(true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://b/"), "{e}");
        assert!(settings("", None).unwrap().is_none(), "no URL: alone");
    }
}
