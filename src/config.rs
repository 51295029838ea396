//! Configuration: defaults, then an optional TOML file, then `ROLLCALL_*` environment variables,
//! then command-line flags (each later source wins).
//!
//! [`Settings`] is the validated result every other module reads; it is built once at start and
//! shared read-only. Invalid input fails fast with a [`ConfigError`] naming the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Defined where it is validated; here for `FileConfig::webhooks` and its old path.
pub use crate::webhook::config::WebhookConfig;

/// The HS256 secret of development mode ([`crate::devmode`]): public, never live beside a
/// configured credential.
pub const DEV_JWT_SECRET: &str = "rollcall-dev-secret";
/// The operator token of development mode ([`crate::devmode`]).
pub const DEV_ADMIN_TOKEN: &str = "rollcall-dev-admin";

/// Everything that can go wrong while building [`Settings`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for rollcall (unknown key, wrong type, ...).
    #[error("config file {path}: {message}")]
    Parse {
        /// The path given.
        path: PathBuf,
        /// What the TOML parser said, including the field.
        message: String,
    },
    /// The data dir cannot be used (unreadable, corrupt, newer schema).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: `{field}`: {reason}")]
    Invalid {
        /// The field, as spelled in the TOML file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A JWT verification key from configuration. The algorithm is part of the key: a token whose
/// header names another algorithm is rejected, whatever it says.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// `ES256` or `RS256`.
    pub alg: String,
    /// Path to a PEM public key (SPKI).
    pub public_key_file: PathBuf,
}

/// The TOML file, and the defaults. Every field is optional in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Explicit development mode: the built-in public credentials are live; refused beside any
    /// configured credential ([`crate::devmode`]). Without it, development mode is implied when
    /// no credential is configured at all.
    pub dev: bool,
    /// Address to listen on.
    pub listen: String,
    /// HS256 secret for socket tokens; unset in production mode = no HS256 token verifies.
    pub jwt_secret: Option<String>,
    /// Extra ES256/RS256 public keys for socket tokens.
    pub jwt_keys: Vec<JwtKeyConfig>,
    /// Bearer token for the operator REST endpoints; unset in production mode = the operator
    /// API refuses every caller.
    pub admin_token: Option<String>,
    /// Seconds a member whose last socket closed may take to reconnect silently.
    pub grace_secs: f64,
    /// Seconds between WebSocket pings.
    pub ping_interval_secs: f64,
    /// Seconds without any frame from a peer before it is declared dead (`timeout`).
    pub heartbeat_timeout_secs: f64,
    /// Seconds a kicked member is barred from rejoining the room.
    pub ban_secs: f64,
    /// Seconds an empty native room lingers before its actor exits.
    pub room_idle_secs: f64,
    /// Largest accepted WebSocket message, bytes (bigger: close 1009).
    pub max_message_bytes: usize,
    /// Largest member `state`, bytes of JSON.
    pub max_state_bytes: usize,
    /// Members per room.
    pub max_members_per_room: usize,
    /// Rooms (joined or watched) per socket.
    pub max_rooms_per_socket: usize,
    /// Frames queued per socket before it counts as lagging.
    pub outbox_capacity: usize,
    /// Seconds a lagging socket may stay behind before it is closed with 4008.
    pub slow_consumer_secs: f64,
    /// Seconds shutdown waits for sockets to close.
    pub shutdown_timeout_secs: f64,
    /// Simultaneous TCP connections; 0 = as many as the open-file limit allows.
    pub max_connections: usize,
    /// PLYR-style game rooms (`[game]`).
    pub game: GameConfig,
    /// PlayFlow-style lobbies (`[lobby]`).
    pub lobby: LobbyConfig,
    /// Digital Samba-style video rooms (`[video]`).
    pub video: VideoConfig,
    /// Signed webhook endpoints (`[[webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// `GET /metrics` requires `Authorization: Bearer <admin_token>` (default: open, for a scraper
    /// on an internal port).
    pub metrics_require_admin: bool,
    /// Room-creation rates and caps (`[limits]`).
    pub limits: crate::limits::LimitsConfig,
    /// Deadlines before the upgrade (`[deadlines]`, see [`crate::deadlines`]).
    pub deadlines: crate::deadlines::DeadlineConfig,
    /// Where durable records live (created at start); `":memory:"` keeps nothing
    /// (`--ephemeral`). See [`crate::store`].
    pub data_dir: String,
    /// Seconds between presence checkpoints (what a crash restart resumes from).
    pub checkpoint_secs: f64,
    /// Several nodes on one Redis (`[cluster]`, see `protocol/cluster.md`).
    pub cluster: crate::cluster::ClusterConfig,
}

/// The data dir of a plain start.
pub const DEFAULT_DATA_DIR: &str = "./rollcall-data";
/// The `data_dir` value that keeps nothing.
pub const EPHEMERAL: &str = ":memory:";

/// One PLYR API key: who may call `/game/*` and for which game.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GameApiKey {
    /// The `apikey` header value.
    pub api_key: String,
    /// The HMAC secret.
    pub secret_key: String,
    /// `user`, `game` or `admin`.
    #[serde(default = "default_role")]
    pub role: String,
    /// The game's PLYR id (`gameId` of every call made with this key).
    pub game_id: String,
}

fn default_role() -> String {
    "user".into()
}

/// `[game]`: PLYR-style game rooms.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GameConfig {
    /// API keys; empty = one dev key (logged at start).
    pub api_keys: Vec<GameApiKey>,
    /// PEM (SPKI) ES256 public key that verifies `sessionJwts` (and game clients' socket tokens).
    /// Unset: no session JWT verifies (join/leave answer 401), nothing fake is generated.
    pub session_public_key_file: Option<PathBuf>,
    /// Seconds a finished or pending task stays pollable by `GET /task/status/{id}`.
    pub task_ttl_secs: u64,
    /// Tasks kept at most; the oldest is evicted first (it then polls as `NOT_FOUND`).
    pub max_tasks: usize,
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            session_public_key_file: None,
            task_ttl_secs: 3600,
            max_tasks: 10_000,
        }
    }
}

/// `[lobby]`: PlayFlow-style lobbies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LobbyConfig {
    /// Accepted `api-key` header values; empty = one dev key (logged at start). Each key is one
    /// project: it sees only the lobbies created with it.
    pub api_keys: Vec<String>,
    /// Lobby configuration names accepted in `?name=`; empty = `default`.
    pub configs: Vec<String>,
    /// Smallest accepted lobby `timeout` in seconds. PlayFlow's range is 60–3600, so the default
    /// is 60; lowering it (tests, demos) lets lobbies expire sooner. 1–3600.
    pub min_timeout_secs: u64,
    /// Strict requesters (opt-in): every call that acts as a player (create as `host`, join,
    /// heartbeat, update, leave, kick, delete) must prove it with `client-auth-token`, the
    /// player's socket token naming that id. Off = PlayFlow's behaviour: ids are trusted, and
    /// anyone holding the api-key (shipped inside game clients) can act as any player.
    pub strict_requester: bool,
}

impl Default for LobbyConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            configs: Vec::new(),
            min_timeout_secs: 60,
            strict_requester: false,
        }
    }
}

/// One video team.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VideoTeam {
    /// Team id (the Basic user name).
    pub team_id: String,
    /// Developer key (the Basic password, the Bearer token, the room-token HS256 secret).
    pub developer_key: String,
}

/// `[video]`: Digital Samba-style video rooms.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Teams; empty = one dev team (logged at start).
    pub teams: Vec<VideoTeam>,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            dev: false,
            listen: "127.0.0.1:7700".into(),
            jwt_secret: None,
            jwt_keys: Vec::new(),
            admin_token: None,
            grace_secs: 5.0,
            ping_interval_secs: 15.0,
            heartbeat_timeout_secs: 45.0,
            ban_secs: 60.0,
            room_idle_secs: 30.0,
            max_message_bytes: 64 * 1024,
            max_state_bytes: 4 * 1024,
            max_members_per_room: 10_000,
            max_rooms_per_socket: 32,
            outbox_capacity: 256,
            slow_consumer_secs: 5.0,
            shutdown_timeout_secs: 5.0,
            max_connections: 0,
            game: GameConfig::default(),
            lobby: LobbyConfig::default(),
            video: VideoConfig::default(),
            webhooks: Vec::new(),
            metrics_require_admin: false,
            limits: crate::limits::LimitsConfig::default(),
            deadlines: Default::default(),
            data_dir: DEFAULT_DATA_DIR.into(),
            checkpoint_secs: 5.0,
            cluster: Default::default(),
        }
    }
}

/// Validated settings, read by every layer.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Whether the built-in development credentials are live (and every façade falls back to
    /// its development credential) or only configured ones authenticate.
    pub mode: crate::devmode::Mode,
    /// HS256 secret for socket tokens: the configured one, the development one, or none
    /// (production mode without one: no HS256 token verifies).
    pub jwt_secret: Option<String>,
    /// Asymmetric socket-token keys.
    pub jwt_keys: Vec<JwtKeyConfig>,
    /// Operator bearer token: configured, the development one, or none (the operator API
    /// refuses every caller).
    pub admin_token: Option<String>,
    /// Reconnect grace.
    pub grace: Duration,
    /// Ping cadence.
    pub ping_interval: Duration,
    /// Dead-peer bound.
    pub heartbeat_timeout: Duration,
    /// Kick ban.
    pub ban: Duration,
    /// Idle room linger.
    pub room_idle: Duration,
    /// WebSocket message limit.
    pub max_message_bytes: usize,
    /// State limit.
    pub max_state_bytes: usize,
    /// Members per room.
    pub max_members_per_room: usize,
    /// Rooms per socket.
    pub max_rooms_per_socket: usize,
    /// Outbound queue per socket.
    pub outbox_capacity: usize,
    /// Lag bound before close 4008.
    pub slow_consumer: Duration,
    /// Shutdown bound.
    pub shutdown_timeout: Duration,
    /// Connection cap (0 = open-file limit).
    pub max_connections: usize,
    /// Commands queued per room before senders wait (not in the file: a tuning constant).
    pub room_mailbox: usize,
    /// `[game]`.
    pub game: GameConfig,
    /// `[lobby]`.
    pub lobby: LobbyConfig,
    /// `[video]`.
    pub video: VideoConfig,
    /// `[[webhooks]]`, validated.
    pub webhooks: Vec<WebhookConfig>,
    /// `/metrics` needs the admin token.
    pub metrics_require_admin: bool,
    /// `[limits]`, validated.
    pub limits: crate::limits::LimitsConfig,
    /// Connection deadlines before the upgrade.
    pub deadlines: crate::deadlines::Deadlines,
    /// The data dir; `None`: ephemeral (nothing kept).
    pub data_dir: Option<PathBuf>,
    /// Presence checkpoint period.
    pub checkpoint: Duration,
    /// `Some`: this node is a cluster member on Redis.
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl Default for Settings {
    /// The defaults, ephemeral: a `Settings` built in code (tests, benches, embedding) keeps
    /// nothing on disk unless it names a data dir.
    fn default() -> Self {
        // The defaults are valid by construction; a failure here is a bug caught by the tests.
        Self::from_file(FileConfig {
            data_dir: EPHEMERAL.into(),
            ..FileConfig::default()
        })
        .expect("default configuration is valid")
    }
}

pub(crate) fn secs(field: &'static str, v: f64, min: f64) -> Result<Duration, ConfigError> {
    if !v.is_finite() || v < min || v > 86_400.0 {
        return Err(ConfigError::Invalid {
            field,
            reason: format!("{v} is not a number of seconds in [{min}, 86400]"),
        });
    }
    Ok(Duration::from_secs_f64(v))
}

pub(crate) fn at_least(field: &'static str, v: usize, min: usize) -> Result<usize, ConfigError> {
    if v < min {
        return Err(ConfigError::Invalid {
            field,
            reason: format!("{v} is below the minimum {min}"),
        });
    }
    Ok(v)
}

impl Settings {
    /// Loads the file (if any), applies the environment and flags, validates.
    pub fn load(cli: &crate::cli::Cli) -> Result<Self, ConfigError> {
        let mut file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = cli.$f.clone() { file.$f = v; } )* };
        }
        over!(
            listen,
            grace_secs,
            ping_interval_secs,
            heartbeat_timeout_secs,
            ban_secs,
            max_connections,
            max_members_per_room
        );
        if cli.jwt_secret.is_some() {
            file.jwt_secret = cli.jwt_secret.clone();
        }
        if cli.admin_token.is_some() {
            file.admin_token = cli.admin_token.clone();
        }
        file.dev |= cli.dev;
        if let Some(dir) = &cli.data_dir {
            file.data_dir = dir.clone();
        }
        if cli.ephemeral {
            file.data_dir = EPHEMERAL.into();
        }
        if let Some(s) = cli.checkpoint_secs {
            file.checkpoint_secs = s;
        }
        if cli.redis_url.is_some() {
            file.cluster.redis_url = cli.redis_url.clone();
        }
        if cli.redis_cluster {
            file.cluster.redis_cluster = Some(true);
        }
        if cli.node_id.is_some() {
            file.cluster.node_id = cli.node_id.clone();
        }
        if cli.node_ttl_secs.is_some() {
            file.cluster.node_ttl_secs = cli.node_ttl_secs;
        }
        Self::from_file(file)
    }

    /// Validates a [`FileConfig`].
    pub fn from_file(f: FileConfig) -> Result<Self, ConfigError> {
        let listen = f.listen.parse().map_err(|e| ConfigError::Invalid {
            field: "listen",
            reason: format!("{:?} is not host:port ({e})", f.listen),
        })?;
        if let Some(s) = &f.jwt_secret {
            if s.len() < 8 {
                return Err(ConfigError::Invalid {
                    field: "jwt_secret",
                    reason: "must be at least 8 bytes".into(),
                });
            }
        }
        if let Some(s) = &f.admin_token {
            if s.len() < 8 {
                return Err(ConfigError::Invalid {
                    field: "admin_token",
                    reason: "must be at least 8 bytes".into(),
                });
            }
        }
        for k in &f.jwt_keys {
            if k.alg != "ES256" && k.alg != "RS256" {
                return Err(ConfigError::Invalid {
                    field: "jwt_keys.alg",
                    reason: format!("{:?}: expected ES256 or RS256", k.alg),
                });
            }
        }
        for w in &f.webhooks {
            w.validate()?;
        }
        f.limits.validate()?;
        let ping_interval = secs("ping_interval_secs", f.ping_interval_secs, 0.01)?;
        let heartbeat_timeout = secs("heartbeat_timeout_secs", f.heartbeat_timeout_secs, 0.01)?;
        if heartbeat_timeout < ping_interval {
            return Err(ConfigError::Invalid {
                field: "heartbeat_timeout_secs",
                reason: "must be at least ping_interval_secs".into(),
            });
        }
        let mode = crate::devmode::mode(&f)?;
        let dev = |v: &str| mode.is_dev().then(|| v.to_owned());
        Ok(Self {
            listen,
            mode,
            jwt_secret: f.jwt_secret.or_else(|| dev(DEV_JWT_SECRET)),
            jwt_keys: f.jwt_keys,
            admin_token: f.admin_token.or_else(|| dev(DEV_ADMIN_TOKEN)),
            grace: secs("grace_secs", f.grace_secs, 0.0)?,
            ping_interval,
            heartbeat_timeout,
            ban: secs("ban_secs", f.ban_secs, 0.0)?,
            room_idle: secs("room_idle_secs", f.room_idle_secs, 0.0)?,
            max_message_bytes: at_least("max_message_bytes", f.max_message_bytes, 1024)?,
            max_state_bytes: at_least("max_state_bytes", f.max_state_bytes, 2)?,
            max_members_per_room: at_least("max_members_per_room", f.max_members_per_room, 1)?,
            max_rooms_per_socket: at_least("max_rooms_per_socket", f.max_rooms_per_socket, 1)?,
            outbox_capacity: at_least("outbox_capacity", f.outbox_capacity, 4)?,
            slow_consumer: secs("slow_consumer_secs", f.slow_consumer_secs, 0.01)?,
            shutdown_timeout: secs("shutdown_timeout_secs", f.shutdown_timeout_secs, 0.0)?,
            max_connections: f.max_connections,
            room_mailbox: 1024,
            game: f.game,
            lobby: f.lobby,
            video: f.video,
            webhooks: f.webhooks,
            metrics_require_admin: f.metrics_require_admin,
            limits: f.limits,
            deadlines: f.deadlines.validate()?,
            data_dir: match f.data_dir.as_str() {
                EPHEMERAL => None,
                "" => {
                    return Err(ConfigError::Invalid {
                        field: "data_dir",
                        reason: "empty (use \":memory:\" or --ephemeral to keep nothing)".into(),
                    })
                }
                dir => Some(PathBuf::from(dir)),
            },
            checkpoint: secs("checkpoint_secs", f.checkpoint_secs, 0.1)?,
            cluster: crate::cluster::ClusterSettings::from_config(&f.cluster)?,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commented example file shipped in the repo parses and validates.
    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../rollcall.example.toml");
        let f: FileConfig = toml::from_str(text).expect("example parses");
        Settings::from_file(f).expect("example validates");
    }

    /// A bad value names its field.
    #[test]
    fn invalid_value_names_the_field() {
        let f = FileConfig {
            grace_secs: -1.0,
            ..FileConfig::default()
        };
        let e = Settings::from_file(f).unwrap_err().to_string();
        assert!(e.contains("grace_secs"), "{e}");
        let e = toml::from_str::<FileConfig>("gracesecs = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gracesecs"), "{e}");
    }
}
