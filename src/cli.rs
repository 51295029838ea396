//! The command line: flags (each also read from `ROLLCALL_<NAME>`) and the helper commands.
//! [`crate::config::Settings::load`] layers these over the TOML file and the defaults.

use std::path::PathBuf;

use clap::Parser;

/// Command line and environment. Every flag also reads `ROLLCALL_<NAME>`.
#[derive(Debug, Parser)]
#[command(
    name = "rollcall",
    version,
    about = "A real-time WebSocket presence server"
)]
pub struct Cli {
    /// TOML configuration file (see rollcall.example.toml).
    #[arg(long, env = "ROLLCALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Development mode: the built-in public credentials are live (refused beside any configured
    /// credential; implied when none is configured).
    #[arg(long, env = "ROLLCALL_DEV")]
    pub dev: bool,
    /// Address to listen on [default: 127.0.0.1:7700].
    #[arg(long, env = "ROLLCALL_LISTEN")]
    pub listen: Option<String>,
    /// HS256 secret for socket tokens [default: the dev secret in development mode].
    #[arg(long, env = "ROLLCALL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Bearer token for the operator REST endpoints [default: the dev token in development mode].
    #[arg(long, env = "ROLLCALL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Reconnect grace period in seconds (0 = leave at once).
    #[arg(long, env = "ROLLCALL_GRACE_SECS")]
    pub grace_secs: Option<f64>,
    /// Seconds between WebSocket pings.
    #[arg(long, env = "ROLLCALL_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<f64>,
    /// Seconds of silence before a peer is declared dead.
    #[arg(long, env = "ROLLCALL_HEARTBEAT_TIMEOUT_SECS")]
    pub heartbeat_timeout_secs: Option<f64>,
    /// Seconds a kick bars the member from the room.
    #[arg(long, env = "ROLLCALL_BAN_SECS")]
    pub ban_secs: Option<f64>,
    /// Simultaneous TCP connections (0 = the open-file limit decides).
    #[arg(long, env = "ROLLCALL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Members per room.
    #[arg(long, env = "ROLLCALL_MAX_MEMBERS_PER_ROOM")]
    pub max_members_per_room: Option<usize>,
    /// Where durable records live (rooms, lobbies, tasks, bans, the webhook queue) [default:
    /// ./rollcall-data].
    #[arg(long, env = "ROLLCALL_DATA_DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<String>,
    /// Keep nothing on disk: every record is lost when the process exits (tests, throwaway dev).
    #[arg(long, env = "ROLLCALL_EPHEMERAL")]
    pub ephemeral: bool,
    /// Seconds between presence checkpoints (what a restart after a crash resumes from).
    #[arg(long, env = "ROLLCALL_CHECKPOINT_SECS")]
    pub checkpoint_secs: Option<f64>,
    /// Join a cluster of nodes sharing this Redis (`redis://host:port/`); see protocol/cluster.md.
    #[arg(long, env = "ROLLCALL_REDIS_URL")]
    pub redis_url: Option<String>,
    /// The Redis of `--redis-url` is a Redis Cluster (its URLs, comma-separated, are seeds).
    #[arg(long, env = "ROLLCALL_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// This node's id in the cluster [default: generated at start].
    #[arg(long, env = "ROLLCALL_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds a silent node stays alive for the cluster (its members then leave with `timeout`).
    #[arg(long, env = "ROLLCALL_NODE_TTL_SECS")]
    pub node_ttl_secs: Option<f64>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "ROLLCALL_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// A helper command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Helper commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a development token: an HS256 socket token (`--sub`), a PLYR-style session token
    /// (`--plyr-id`), or a video room token (`--video-room`).
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["sub", "plyr_id", "video_room"])))]
    Token {
        /// The member id (`sub` claim) of an HS256 socket token signed with the configured secret.
        #[arg(long)]
        sub: Option<String>,
        /// A PLYR-style ES256 session token for this player, signed with the built-in
        /// development key pair (accepted in development mode only).
        #[arg(long)]
        plyr_id: Option<String>,
        /// The session token's `gameId` [default: the first game API key's game, or `devgame`].
        #[arg(long, requires = "plyr_id")]
        game: Option<String>,
        /// A video room token (HS256 with the team's developer key) for this room UUID.
        #[arg(long)]
        video_room: Option<String>,
        /// The video room's team [default: the first configured team, or `dev-team`].
        #[arg(long, requires = "video_room")]
        team: Option<String>,
        /// The video participant's user id (`ud` claim) [default: the server assigns one].
        #[arg(long, requires = "video_room")]
        user_id: Option<String>,
        /// Display name (`name` claim; `u` for video room tokens).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
}
