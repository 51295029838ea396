//! `[[webhooks]]` configuration: [`WebhookConfig`], its defaults, its validation (errors name
//! the field) and a `Debug` that never prints the secret.

use serde::Deserialize;

use crate::config::{at_least, secs, ConfigError};

/// Webhook event names an endpoint may subscribe to (`events = [...]`).
pub const EVENTS: [&str; 4] = [
    "participant_joined",
    "participant_left",
    "host_changed",
    "room_closed",
];

pub(crate) fn default_timeout() -> f64 {
    5.0
}
pub(crate) fn default_max_queue() -> usize {
    1000
}
pub(crate) fn default_concurrency() -> usize {
    4
}
pub(crate) fn default_max_attempts() -> u32 {
    12
}
pub(crate) fn default_backoff_initial() -> f64 {
    0.5
}
pub(crate) fn default_backoff_max() -> f64 {
    60.0
}

/// One `[[webhooks]]` endpoint: where signed event POSTs go, and how hard to try.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL that receives the POSTs.
    pub url: String,
    /// HMAC-SHA256 key of the `X-Rollcall-Signature` header (at least 16 bytes).
    pub secret: String,
    /// Label in metrics and logs; default: the URL's host (never its path or query, which may
    /// carry credentials).
    #[serde(default)]
    pub name: Option<String>,
    /// Event names to send (see [`EVENTS`]); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Seconds one POST may take before it counts as failed (and is retried).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Deliveries queued (or in flight) for this endpoint; beyond it new ones are dropped and
    /// counted.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Deliveries in flight at once; events of one room always use the same lane, in order.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per delivery before it is given up (and counted); 0 = retry forever.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay, seconds; doubled after each failure up to `backoff_max_secs`.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_secs: f64,
    /// Largest retry delay, seconds.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: f64,
}

impl std::fmt::Debug for WebhookConfig {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.label())
            .field("events", &self.events)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_queue", &self.max_queue)
            .field("concurrency", &self.concurrency)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// An endpoint for `url` signed with `secret`, every other field at its default.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            name: None,
            events: Vec::new(),
            timeout_secs: default_timeout(),
            max_queue: default_max_queue(),
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            backoff_initial_secs: default_backoff_initial(),
            backoff_max_secs: default_backoff_max(),
        }
    }

    /// The label used in metrics and logs: `name`, else the URL's host[:port].
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        // Drop `user:password@` if the URL carries credentials.
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, h)| h)
            .to_owned()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&self.url).is_err() {
            return bad(
                "webhooks.url",
                format!("{:?} is not an http(s) URL", self.label()),
            );
        }
        if self.secret.len() < 16 {
            return bad("webhooks.secret", "must be at least 16 bytes".into());
        }
        if let Some(e) = self.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return bad("webhooks.events", format!("{e:?} is not one of {EVENTS:?}"));
        }
        secs("webhooks.timeout_secs", self.timeout_secs, 0.001)?;
        secs(
            "webhooks.backoff_initial_secs",
            self.backoff_initial_secs,
            0.001,
        )?;
        secs("webhooks.backoff_max_secs", self.backoff_max_secs, 0.001)?;
        if self.backoff_max_secs < self.backoff_initial_secs {
            return bad(
                "webhooks.backoff_max_secs",
                "must be at least backoff_initial_secs".into(),
            );
        }
        at_least("webhooks.max_queue", self.max_queue, 1)?;
        if !(1..=64).contains(&self.concurrency) {
            return bad(
                "webhooks.concurrency",
                format!("{} is not in [1, 64]", self.concurrency),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Settings};

    /// A webhook with a bad URL, event name or short secret names its field.
    #[test]
    fn invalid_webhook_names_the_field() {
        let check = |w: WebhookConfig, field: &str| {
            let f = FileConfig {
                webhooks: vec![w],
                ..FileConfig::default()
            };
            let e = Settings::from_file(f).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        };
        let good = WebhookConfig::new("https://hooks.example/rollcall", "0123456789abcdef");
        check(
            WebhookConfig {
                url: "ftp://x".into(),
                ..good.clone()
            },
            "webhooks.url",
        );
        check(
            WebhookConfig {
                secret: "short".into(),
                ..good.clone()
            },
            "webhooks.secret",
        );
        check(
            WebhookConfig {
                events: vec!["participant_gone".into()],
                ..good.clone()
            },
            "webhooks.events",
        );
        check(
            WebhookConfig {
                concurrency: 0,
                ..good.clone()
            },
            "webhooks.concurrency",
        );
        assert_eq!(good.label(), "hooks.example");
        let creds = WebhookConfig::new("https://u:p@h.example:8443/x?key=1", "0123456789abcdef");
        assert_eq!(creds.label(), "h.example:8443");
        assert!(!format!("{good:?}").contains("0123456789abcdef"));
    }
}
