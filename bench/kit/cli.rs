//! The command line: global target options, then one subcommand per scenario.
//!
//! Defaults are small enough to finish in seconds; the target sizes are spelled out in
//! `bench/RESULTS.md` next to each figure.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rollcall-bench: load scenarios against rollcall over real WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "rollcall-bench", version)]
pub(crate) struct Cli {
    /// Where the server is and how to reach it.
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Write machine-readable results here.
    #[arg(long, global = true)]
    pub(crate) json: Option<PathBuf>,
    /// Write an SVG latency histogram here (churn, fanout, storm, rest).
    #[arg(long, global = true)]
    pub(crate) svg: Option<PathBuf>,
    /// The scenario.
    #[command(subcommand)]
    pub(crate) scenario: Scenario,
}

/// The server under test.
#[derive(Debug, Clone, Args, Default)]
pub(crate) struct TargetArgs {
    /// Run the real `rollcall` binary (next to this one) as a child process, so its memory and
    /// CPU are measured apart from the load generator's. Default: a server in this process.
    #[arg(long, global = true)]
    pub(crate) spawn: bool,
    /// Target an existing deployment instead (`http://host:port`); needs the secrets below.
    #[arg(long, global = true, conflicts_with = "spawn")]
    pub(crate) url: Option<String>,
    /// HS256 secret the target verifies socket tokens with.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_JWT_SECRET",
        hide_env_values = true
    )]
    pub(crate) token_secret: Option<String>,
    /// The target's operator bearer token.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub(crate) admin_token: Option<String>,
    /// With `--url`: the server's pid on this machine, to read its memory and CPU from /proc.
    #[arg(long, global = true)]
    pub(crate) server_pid: Option<u32>,
    /// Reconnect grace of a server this tool starts (default: the scenario's own).
    #[arg(long, global = true)]
    pub(crate) grace_secs: Option<f64>,
    /// Loopback source addresses to spread clients over (127.0.0.1, .2, ...): one address runs
    /// out of ephemeral ports near 28,000 connections to one server port. 0 = automatic.
    #[arg(long, global = true, default_value_t = 0)]
    pub(crate) sources: u8,
    /// Client processes (this binary re-executed) for runs above one process's open-file cap
    /// (idle only; other scenarios run their clients in this process).
    #[arg(long, global = true, default_value_t = 1)]
    pub(crate) workers: usize,
    /// Connection attempts in flight at once.
    #[arg(long, global = true, default_value_t = 256)]
    pub(crate) connect_concurrency: usize,
}

/// The scenarios of issue 4.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// R rooms × M members join at a rate, then leave at a rate through every leave path.
    Churn(ChurnArgs),
    /// One room, N watchers, one member publishing `state` events.
    Fanout(FanoutArgs),
    /// N joined sockets held: server memory per socket, connect rate, memory after close.
    Idle(IdleArgs),
    /// Every socket of a room set drops and reconnects at once.
    Storm(StormArgs),
    /// Sustained REST leave calls: requests per second and latency.
    Rest(RestArgs),
    /// This machine's floor: a raw TCP fan-out (no WebSocket, no JSON, no server logic) of the
    /// same shape as `fanout`, to compare latency and delivery-rate targets against.
    Floor(FloorArgs),
    /// (internal) a worker process holding a share of the sockets.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// (internal) the writing side of `floor`.
    #[command(hide = true)]
    FloorServer(FloorServerArgs),
}

/// `floor`.
#[derive(Debug, Clone, Args)]
pub(crate) struct FloorArgs {
    /// Reading sockets.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) sockets: usize,
    /// Messages sent to every socket.
    #[arg(long, default_value_t = 50)]
    pub(crate) events: usize,
    /// Events per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) rate: f64,
}

/// `floor-server` (internal): the same settings, for the child.
#[derive(Debug, Clone, Args)]
pub(crate) struct FloorServerArgs {
    /// Connections to accept.
    #[arg(long)]
    pub(crate) sockets: usize,
    /// Messages per socket.
    #[arg(long)]
    pub(crate) events: usize,
    /// Events per second; 0 = as fast as possible.
    #[arg(long)]
    pub(crate) rate: f64,
}

/// How a member leaves in `churn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LeavePath {
    /// The member's socket sends `leave`.
    Leave,
    /// The member's socket drops without a close frame (`disconnect` after the grace period).
    Close,
    /// The room's host kicks the member over its socket.
    Kick,
    /// The operator REST API: `POST /v1/rooms/{room}/leave`.
    Rest,
}

impl LeavePath {
    /// The `reason` the `left` event must carry.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Leave => "leave",
            Self::Close => "disconnect",
            Self::Kick => "kick",
            Self::Rest => "left",
        }
    }
}

/// `churn`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChurnArgs {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub(crate) rooms: usize,
    /// Members per room.
    #[arg(long, default_value_t = 10)]
    pub(crate) members: usize,
    /// Joins per second (all rooms together; consecutive joins go to different rooms).
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) connect_rate: f64,
    /// Leaves in total (never the host, never below 2 members in a room).
    #[arg(long, default_value_t = 40)]
    pub(crate) leaves: usize,
    /// Leaves per second.
    #[arg(long, default_value_t = 100.0)]
    pub(crate) leave_rate: f64,
    /// Leave paths, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "leave,close,kick,rest")]
    pub(crate) paths: Vec<LeavePath>,
    /// How long to wait for the clients to catch up with the server before judging.
    #[arg(long, default_value_t = 15.0)]
    pub(crate) settle_secs: f64,
}

/// `fanout`.
#[derive(Debug, Clone, Args)]
pub(crate) struct FanoutArgs {
    /// Watchers of the room.
    #[arg(long, default_value_t = 100)]
    pub(crate) watchers: usize,
    /// `state` events to publish.
    #[arg(long, default_value_t = 200)]
    pub(crate) events: usize,
    /// Events per second; 0 = as fast as the publisher's socket is answered.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Unanswered `state` requests the publisher may have in flight (rate 0).
    #[arg(long, default_value_t = 32)]
    pub(crate) window: usize,
    /// How long to wait for the last deliveries.
    #[arg(long, default_value_t = 15.0)]
    pub(crate) settle_secs: f64,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub(crate) struct IdleArgs {
    /// Joined sockets to hold at the top.
    #[arg(long, default_value_t = 2000)]
    pub(crate) sockets: usize,
    /// Members per room.
    #[arg(long, default_value_t = 10)]
    pub(crate) room_size: usize,
    /// Sample the server's memory every this many sockets.
    #[arg(long, default_value_t = 1000)]
    pub(crate) step: usize,
    /// Seconds to hold every socket open at the top before closing.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) hold_secs: f64,
    /// Also watch the server's memory this long after the close (rooms linger `room_idle_secs`,
    /// 30 by default, before they exit and their memory can go back to the OS).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) after_close_secs: f64,
}

/// `storm`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StormArgs {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub(crate) rooms: usize,
    /// Members per room.
    #[arg(long, default_value_t = 20)]
    pub(crate) members: usize,
    /// Give up waiting for true panels after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) timeout_secs: f64,
}

/// `rest`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RestArgs {
    /// Members to remove, one per request (each holds a socket until its `left`).
    #[arg(long, default_value_t = 500)]
    pub(crate) requests: usize,
    /// Rooms the members are spread over.
    #[arg(long, default_value_t = 10)]
    pub(crate) rooms: usize,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: usize,
    /// Which REST leave call to make.
    #[arg(long, value_enum, default_value = "operator")]
    pub(crate) api: RestApi,
    /// `--api game`: the PLYR API key (`apikey` header).
    #[arg(long, default_value = "dev-game-key")]
    pub(crate) game_api_key: String,
    /// `--api game`: the key's HMAC secret.
    #[arg(long, default_value = "dev-game-secret", hide_default_value = true)]
    pub(crate) game_secret: String,
    /// `--api game`: the key's game id (`gameId` claim of the session tokens).
    #[arg(long, default_value = "devgame")]
    pub(crate) game_id: String,
    /// `--api lobby-*`: the `api-key` header.
    #[arg(
        long,
        default_value = "rollcall-dev-lobby-key",
        hide_default_value = true
    )]
    pub(crate) lobby_api_key: String,
    /// `--api lobby-*`: the lobby configuration (`?name=`).
    #[arg(long, default_value = "default")]
    pub(crate) lobby_config: String,
    /// `--api game`: PEM (PKCS#8) ES256 private key that signs the players' session JWTs; the
    /// server must hold its public half (the embedded default's dev pair lives in
    /// `src/facade/game/dev-keys/`).
    #[arg(long)]
    pub(crate) session_key: Option<std::path::PathBuf>,
}

/// The REST leave calls `rest` can make. Another façade's call is one more variant here and
/// one more client in `facade_rest.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RestApi {
    /// `POST /v1/rooms/{room}/leave` with the operator token (members hold sockets).
    Operator,
    /// PLYR-style `POST /game/leave` with `sync: true`, HMAC-signed, one session JWT per call
    /// (players added by `/game/create` + `/game/join`; one watcher socket per room).
    Game,
    /// PlayFlow-style `DELETE /lobbies/{id}/players/{player}?requesterId={player}`: a player
    /// leaves (lobbies made by `POST /lobbies`, players added by `POST /lobbies/{id}/players`).
    LobbyLeave,
    /// The same route with `requesterId={host}&isKick=true`: the host kicks a player.
    LobbyKick,
}

/// `worker` (internal): holds sockets `first .. first + count` for a parent `idle` run and obeys
/// commands on stdin (see `worker.rs`).
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkerArgs {
    /// `http://host:port` of the server.
    #[arg(long)]
    pub(crate) server: String,
    /// Global index of this worker's first socket.
    #[arg(long)]
    pub(crate) first: usize,
    /// Members per room.
    #[arg(long)]
    pub(crate) room_size: usize,
    /// Run tag (room and member names).
    #[arg(long)]
    pub(crate) tag: String,
}
