//! Abuse limits on creating rooms (issue #9 item 4): token buckets per identity and per source
//! address for native rooms made by sockets, a bucket per tenant for façade rooms made over REST,
//! the global live-room cap, and the per-tenant caps on façade records. Every refusal is counted
//! by limit in `rollcall_limit_refusals_total{limit}` (`protocol/metrics.md`); the rules and
//! defaults are in `protocol/README.md` ("Limits").
//!
//! A bucket holds up to `burst` tokens and regains `per_sec` a second; creating a room takes one.
//! Full buckets are dropped from the maps now and then (a full bucket is the same as none), so
//! the maps stay as small as the set of recently active creators.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;

use crate::config::ConfigError;

/// `[limits]` in the file. Rates of 0 switch a bucket off; caps of 0 switch the cap off.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Live rooms of every kind in the process; creating one more is refused.
    pub max_rooms: usize,
    /// New native rooms one identity (token member id) may create at once.
    pub identity_room_burst: u32,
    /// ... and per second after that.
    pub identity_rooms_per_sec: f64,
    /// New native rooms all sockets from one source address may create at once.
    pub address_room_burst: u32,
    /// ... and per second after that.
    pub address_rooms_per_sec: f64,
    /// Façade rooms (video rooms, lobbies, game rooms) one tenant may create at once over REST.
    pub tenant_room_burst: u32,
    /// ... and per second after that.
    pub tenant_rooms_per_sec: f64,
    /// Video rooms one team may hold.
    pub max_video_rooms_per_team: usize,
    /// Lobbies one api-key (project) may hold.
    pub max_lobbies_per_key: usize,
    /// Live game rooms one game may hold.
    pub max_game_rooms_per_game: usize,
    /// Largest lobby `settings` object, bytes of JSON.
    pub max_lobby_settings_bytes: usize,
    /// Lobbies one source address may create at once. The lobby api-key ships inside game
    /// clients, so the per-key bucket and cap alone would let one holder fill the project's
    /// quota for everyone; this bucket makes that take many addresses.
    pub lobby_address_burst: u32,
    /// ... and per second after that.
    pub lobby_address_per_sec: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_rooms: 100_000,
            identity_room_burst: 100,
            identity_rooms_per_sec: 10.0,
            address_room_burst: 10_000,
            address_rooms_per_sec: 1_000.0,
            tenant_room_burst: 200,
            tenant_rooms_per_sec: 20.0,
            max_video_rooms_per_team: 1_000,
            max_lobbies_per_key: 1_000,
            max_game_rooms_per_game: 10_000,
            max_lobby_settings_bytes: 8 * 1024,
            lobby_address_burst: 20,
            lobby_address_per_sec: 1.0,
        }
    }
}

impl LimitsConfig {
    /// Checks the rates are finite and not negative.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("limits.identity_rooms_per_sec", self.identity_rooms_per_sec),
            ("limits.address_rooms_per_sec", self.address_rooms_per_sec),
            ("limits.tenant_rooms_per_sec", self.tenant_rooms_per_sec),
            ("limits.lobby_address_per_sec", self.lobby_address_per_sec),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError::Invalid {
                    field,
                    reason: format!("{v} is not a rate >= 0"),
                });
            }
        }
        Ok(())
    }
}

/// Which limit refused; the `limit` label of `rollcall_limit_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `max_rooms`.
    MaxRooms,
    /// The per-identity bucket.
    IdentityRate,
    /// The per-address bucket.
    AddressRate,
    /// The per-tenant REST bucket.
    TenantRate,
    /// `max_video_rooms_per_team`.
    VideoRooms,
    /// `max_lobbies_per_key`.
    Lobbies,
    /// `max_game_rooms_per_game`.
    GameRooms,
    /// `max_lobby_settings_bytes`.
    LobbySettings,
    /// The per-address bucket of lobby creation.
    LobbyAddressRate,
}

impl Limit {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::MaxRooms => "max_rooms",
            Self::IdentityRate => "identity_rate",
            Self::AddressRate => "address_rate",
            Self::TenantRate => "tenant_rate",
            Self::VideoRooms => "video_rooms_per_team",
            Self::Lobbies => "lobbies_per_key",
            Self::GameRooms => "game_rooms_per_game",
            Self::LobbySettings => "lobby_settings_bytes",
            Self::LobbyAddressRate => "lobby_address_rate",
        }
    }
}

/// A refusal: which limit, and when to try again (`None`: not until something is deleted).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The limit.
    pub limit: Limit,
    /// How long until a retry can succeed, for rates.
    pub retry_after: Option<Duration>,
    /// Human-readable detail.
    pub message: String,
}

impl Refused {
    /// The REST answer: 503 for the global cap, else 429; `Retry-After` always; `body` is the
    /// façade's own error shape.
    pub fn response(&self, body: serde_json::Value) -> axum::response::Response {
        use axum::http::{header, StatusCode};
        use axum::response::IntoResponse;
        let status = match self.limit {
            Limit::MaxRooms => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        };
        let after = self.retry_after_secs().to_string();
        (status, [(header::RETRY_AFTER, after)], axum::Json(body)).into_response()
    }

    /// `Retry-After` seconds for REST (rates: rounded up; caps: 60).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .unwrap_or(60)
            .max(1)
    }
}

/// Labels of `rollcall_limit_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// [`Limit::label`].
    pub limit: String,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
struct Buckets<K: Eq + Hash> {
    map: DashMap<K, Bucket>,
    burst: f64,
    per_sec: f64,
    pruned: Mutex<Instant>,
}

/// Buckets are pruned when the map is larger than this, at most once per [`PRUNE_EVERY`].
const PRUNE_ABOVE: usize = 1_024;
const PRUNE_EVERY: Duration = Duration::from_secs(5);

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(burst: u32, per_sec: f64) -> Self {
        Self {
            map: DashMap::new(),
            burst: f64::from(burst),
            per_sec,
            pruned: Mutex::new(Instant::now()),
        }
    }

    fn off(&self) -> bool {
        self.burst < 1.0 && self.per_sec <= 0.0
    }

    /// Takes one token for `key`, or says how long until one is there.
    fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.off() {
            return Ok(());
        }
        self.prune(now);
        let (burst, rate) = (self.burst.max(1.0), self.per_sec);
        let mut b = self.map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = if rate > 0.0 {
            (1.0 - b.tokens) / rate
        } else {
            86_400.0
        };
        Err(Duration::from_secs_f64(wait))
    }

    /// Drops the buckets that have refilled (they are the same as no bucket).
    fn prune(&self, now: Instant) {
        if self.map.len() <= PRUNE_ABOVE {
            return;
        }
        {
            // A poisoned lock only means a panic mid-update of an Instant; it is still usable.
            let mut last = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
            if now.saturating_duration_since(*last) < PRUNE_EVERY {
                return;
            }
            *last = now;
        }
        let (burst, rate) = (self.burst.max(1.0), self.per_sec);
        self.map.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * rate < burst
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The process's limits: settings, buckets and the refusal counters.
#[derive(Debug)]
pub struct Limits {
    /// The settings.
    pub cfg: LimitsConfig,
    identities: Buckets<String>,
    addresses: Buckets<IpAddr>,
    tenants: Buckets<String>,
    lobby_addresses: Buckets<IpAddr>,
    refusals: Family<LimitLabels, Counter>,
}

impl Limits {
    /// Limits from validated settings.
    pub fn new(cfg: LimitsConfig) -> Self {
        Self {
            identities: Buckets::new(cfg.identity_room_burst, cfg.identity_rooms_per_sec),
            addresses: Buckets::new(cfg.address_room_burst, cfg.address_rooms_per_sec),
            tenants: Buckets::new(cfg.tenant_room_burst, cfg.tenant_rooms_per_sec),
            lobby_addresses: Buckets::new(cfg.lobby_address_burst, cfg.lobby_address_per_sec),
            refusals: Family::default(),
            cfg,
        }
    }

    /// The refusal counters, for `/metrics`.
    pub fn refusals(&self) -> &Family<LimitLabels, Counter> {
        &self.refusals
    }

    /// Counts and builds a refusal.
    pub fn refuse(
        &self,
        limit: Limit,
        retry_after: Option<Duration>,
        message: impl Into<String>,
    ) -> Refused {
        self.refusals
            .get_or_create(&LimitLabels {
                limit: limit.label().into(),
            })
            .inc();
        Refused {
            limit,
            retry_after,
            message: message.into(),
        }
    }

    /// The global cap: may one more room exist beside `live`?
    pub fn room_cap(&self, live: usize) -> Result<(), Refused> {
        let max = self.cfg.max_rooms;
        if max > 0 && live >= max {
            return Err(self.refuse(
                Limit::MaxRooms,
                None,
                format!("the server holds its maximum of {max} rooms; try again later"),
            ));
        }
        Ok(())
    }

    /// A socket of `identity` from `address` is about to create a native room (`live` rooms
    /// exist): the global cap, then the identity's bucket, then the address's.
    pub fn native_room(
        &self,
        identity: &str,
        address: Option<IpAddr>,
        live: usize,
    ) -> Result<(), Refused> {
        self.room_cap(live)?;
        let now = Instant::now();
        if let Err(wait) = self.identities.take(&identity.to_owned(), now) {
            return Err(self.rate(Limit::IdentityRate, wait, "this token"));
        }
        if let Some(ip) = address {
            if let Err(wait) = self.addresses.take(&source(ip), now) {
                return Err(self.rate(Limit::AddressRate, wait, "this address"));
            }
        }
        Ok(())
    }

    /// A tenant (`video:<team>`, `lobby:<key>`, `game:<gameId>`) is about to create a façade
    /// room over REST (`live` rooms exist, `held` of them the tenant's, against `cap`).
    pub fn facade_room(
        &self,
        tenant: &str,
        live: usize,
        held: usize,
        cap: (Limit, usize),
    ) -> Result<(), Refused> {
        self.room_cap(live)?;
        let (limit, max) = cap;
        if max > 0 && held >= max {
            return Err(self.tenant_full(limit, max));
        }
        if let Err(wait) = self.tenants.take(&tenant.to_owned(), Instant::now()) {
            return Err(self.rate(Limit::TenantRate, wait, "this account"));
        }
        Ok(())
    }

    /// The refusal of a tenant's room beyond its cap of `max` (`limit`).
    pub fn tenant_full(&self, limit: Limit, max: usize) -> Refused {
        self.refuse(
            limit,
            None,
            format!("this account holds its maximum of {max} rooms; delete some first"),
        )
    }

    /// A client at `address` is about to create a lobby: its address's bucket (before the
    /// tenant's, so one address cannot drain the project's).
    pub fn lobby_create(&self, address: Option<IpAddr>) -> Result<(), Refused> {
        if let Some(ip) = address {
            if let Err(wait) = self.lobby_addresses.take(&source(ip), Instant::now()) {
                return Err(self.rate(Limit::LobbyAddressRate, wait, "this address"));
            }
        }
        Ok(())
    }

    fn rate(&self, limit: Limit, wait: Duration, who: &str) -> Refused {
        self.refuse(
            limit,
            Some(wait),
            format!(
                "{who} is creating rooms too fast; retry in {:.1} s",
                wait.as_secs_f64()
            ),
        )
    }
}

/// The bucket key of a source address: IPv4 as is, IPv6 by its /64 (one host's usual share).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket admits its burst, then refuses with the time to the next token, then refills.
    #[test]
    fn bucket_admits_burst_then_refills() {
        let b = Buckets::new(3, 2.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(&"k", t0).is_ok());
        }
        let wait = b.take(&"k", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(&"k", t0 + Duration::from_millis(500)).is_ok());
        assert!(b.take(&"other", t0).is_ok());
    }

    /// Buckets that refilled are pruned once the map is large.
    #[test]
    fn refilled_buckets_are_pruned() {
        let b = Buckets::new(1, 100.0);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            assert!(b.take(&i, t0).is_ok());
        }
        assert_eq!(b.len(), PRUNE_ABOVE + 1);
        let later = t0 + PRUNE_EVERY + Duration::from_secs(1);
        assert!(b.take(&usize::MAX, later).is_ok());
        assert_eq!(b.len(), 1);
    }

    /// IPv6 sources share a bucket per /64; IPv4-mapped addresses count as their IPv4.
    #[test]
    fn ipv6_sources_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(source(mapped), "10.0.0.7".parse::<IpAddr>().unwrap());
    }

    /// Rates and caps of 0 switch a limit off.
    #[test]
    fn zero_switches_off() {
        let l = Limits::new(LimitsConfig {
            max_rooms: 0,
            identity_room_burst: 0,
            identity_rooms_per_sec: 0.0,
            ..LimitsConfig::default()
        });
        for _ in 0..1_000 {
            assert!(l.native_room("a", None, usize::MAX - 1).is_ok());
        }
    }
}
