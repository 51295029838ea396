//! The command line: global target options, then one subcommand per scenario.
//!
//! Defaults are small enough to finish in seconds; the target sizes are spelled out in
//! `bench/RESULTS.md` next to each figure.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rollcall-bench: load scenarios against rollcall over real WebSocket clients.
#[derive(Debug, Parser)]
#[command(name = "rollcall-bench", version)]
pub struct Cli {
    /// Where the server is and how to reach it.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write machine-readable results here.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Write an SVG latency histogram here (churn, fanout, storm, rest).
    #[arg(long, global = true)]
    pub svg: Option<PathBuf>,
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The server under test.
#[derive(Debug, Clone, Args, Default)]
pub struct TargetArgs {
    /// Run the real `rollcall` binary (next to this one) as a child process, so its memory and
    /// CPU are measured apart from the load generator's. Default: a server in this process.
    #[arg(long, global = true)]
    pub spawn: bool,
    /// Target an existing deployment instead (`http://host:port`); needs the secrets below.
    #[arg(long, global = true, conflicts_with = "spawn")]
    pub url: Option<String>,
    /// HS256 secret the target verifies socket tokens with.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_JWT_SECRET",
        hide_env_values = true
    )]
    pub token_secret: Option<String>,
    /// The target's operator bearer token.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// With `--url`: the server's pid on this machine, to read its memory and CPU from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Reconnect grace of a server this tool starts (default: the scenario's own).
    #[arg(long, global = true)]
    pub grace_secs: Option<f64>,
    /// With `--spawn`: run N nodes on a fresh `redis-server` (a cluster, `protocol/cluster.md`);
    /// a room's consecutive members connect to consecutive nodes. Needs `redis-server` on PATH.
    #[arg(long, global = true, default_value_t = 1)]
    pub nodes: usize,
    /// Loopback source addresses to spread clients over (127.0.0.1, .2, ...): one address runs
    /// out of ephemeral ports near 28,000 connections to one server port. 0 = automatic.
    #[arg(long, global = true, default_value_t = 0)]
    pub sources: u8,
    /// Client processes (this binary re-executed) for runs above one process's open-file cap
    /// (idle only; other scenarios run their clients in this process).
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: usize,
    /// Connection attempts in flight at once.
    #[arg(long, global = true, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// A shell command run as `sh -c CMD hook start` when the measured phase begins (after setup)
    /// and `sh -c CMD hook end` when it ends, awaited each time; `rest` only. For example
    /// `callgrind_control -z $PID` / `-d` to count a server's instructions for the calls alone.
    #[arg(long, global = true)]
    pub phase_hook: Option<String>,
}

/// The scenarios of issue 4.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// R rooms × M members join at a rate, then leave at a rate through every leave path.
    Churn(ChurnArgs),
    /// A cluster (`--spawn --nodes N`) loses a node to SIGKILL: how long until each of its
    /// members has left every surviving view, once, with `timeout`.
    Failover(FailoverArgs),
    /// One room, N watchers, one member publishing `state` events.
    Fanout(FanoutArgs),
    /// N joined sockets held: server memory per socket, connect rate, memory after close.
    Idle(IdleArgs),
    /// Every socket of a room set drops and reconnects at once.
    Storm(StormArgs),
    /// Sustained REST calls (leaves, or one new record per call): requests per second and latency.
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
pub struct FloorArgs {
    /// Reading sockets.
    #[arg(long, default_value_t = 10_000)]
    pub sockets: usize,
    /// Messages sent to every socket.
    #[arg(long, default_value_t = 50)]
    pub events: usize,
    /// Events per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
}

/// `floor-server` (internal): the same settings, for the child.
#[derive(Debug, Clone, Args)]
pub struct FloorServerArgs {
    /// Connections to accept.
    #[arg(long)]
    pub sockets: usize,
    /// Messages per socket.
    #[arg(long)]
    pub events: usize,
    /// Events per second; 0 = as fast as possible.
    #[arg(long)]
    pub rate: f64,
}

/// How a member leaves in `churn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LeavePath {
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
    pub fn reason(self) -> &'static str {
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
pub struct ChurnArgs {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members per room.
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Joins per second (all rooms together; consecutive joins go to different rooms).
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// Leaves in total (never the host, never below 2 members in a room).
    #[arg(long, default_value_t = 40)]
    pub leaves: usize,
    /// Leaves per second.
    #[arg(long, default_value_t = 100.0)]
    pub leave_rate: f64,
    /// Leave paths, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "leave,close,kick,rest")]
    pub paths: Vec<LeavePath>,
    /// How long to wait for the clients to catch up with the server before judging.
    #[arg(long, default_value_t = 15.0)]
    pub settle_secs: f64,
}

/// `failover`.
#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// Rooms.
    #[arg(long, default_value_t = 300)]
    pub rooms: usize,
    /// Members per room (spread over the nodes).
    #[arg(long, default_value_t = 30)]
    pub members: usize,
    /// Joins per second.
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// The node to SIGKILL, from 2 to N (node 1 answers the operator snapshots). Default: N.
    #[arg(long)]
    pub kill: Option<usize>,
    /// How long to wait for every dead member to leave every surviving view.
    #[arg(long, default_value_t = 30.0)]
    pub wait_secs: f64,
    /// How long to wait for the clients to catch up with the server before judging.
    #[arg(long, default_value_t = 15.0)]
    pub settle_secs: f64,
}

/// `fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Watchers of the room.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// `state` events to publish.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Events per second; 0 = as fast as the publisher's socket is answered.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Unanswered `state` requests the publisher may have in flight (rate 0).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// How long to wait for the last deliveries.
    #[arg(long, default_value_t = 15.0)]
    pub settle_secs: f64,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Joined sockets to hold at the top.
    #[arg(long, default_value_t = 2000)]
    pub sockets: usize,
    /// Members per room.
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Sample the server's memory every this many sockets.
    #[arg(long, default_value_t = 1000)]
    pub step: usize,
    /// Seconds to hold every socket open at the top before closing.
    #[arg(long, default_value_t = 3.0)]
    pub hold_secs: f64,
    /// Also watch the server's memory this long after the close (rooms linger `room_idle_secs`,
    /// 30 by default, before they exit and their memory can go back to the OS).
    #[arg(long, default_value_t = 0.0)]
    pub after_close_secs: f64,
}

/// `storm`.
#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members per room.
    #[arg(long, default_value_t = 20)]
    pub members: usize,
    /// Give up waiting for true panels after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_secs: f64,
}

/// `rest`.
#[derive(Debug, Clone, Args)]
pub struct RestArgs {
    /// Calls to make: members to remove, one per request (each holds a socket until its
    /// `left`), or records to add (`lobby-create`, `video-joined`).
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Rooms the calls are spread over, made at set-up (`lobby-create` makes one room per call
    /// and ignores this).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Which REST leave call to make.
    #[arg(long, value_enum, default_value = "operator")]
    pub api: RestApi,
    /// `--api game`: the PLYR API key (`apikey` header).
    #[arg(long, default_value = "dev-game-key")]
    pub game_api_key: String,
    /// `--api game`: the key's HMAC secret.
    #[arg(long, default_value = "dev-game-secret", hide_default_value = true)]
    pub game_secret: String,
    /// `--api game`: the key's game id (`gameId` claim of the session tokens).
    #[arg(long, default_value = "devgame")]
    pub game_id: String,
    /// `--api video-joined`: the Digital Samba team id (HTTP Basic user name).
    #[arg(long, default_value = "dev-team")]
    pub video_team: String,
    /// `--api video-joined`: the team's developer key (HTTP Basic password).
    #[arg(long, default_value = "dev-developer-key", hide_default_value = true)]
    pub video_key: String,
    /// `--api lobby-*`: the `api-key` header.
    #[arg(
        long,
        default_value = "rollcall-dev-lobby-key",
        hide_default_value = true
    )]
    pub lobby_api_key: String,
    /// `--api lobby-*`: the lobby configuration (`?name=`).
    #[arg(long, default_value = "default")]
    pub lobby_config: String,
    /// `--api game`: PEM (PKCS#8) ES256 private key that signs the players' session JWTs; the
    /// server must hold its public half (the embedded default's dev pair lives in
    /// `src/facade/game/dev-keys/`).
    #[arg(long)]
    pub session_key: Option<std::path::PathBuf>,
}

/// The REST calls `rest` can make: leaves (`operator`, `game`, `lobby-leave`, `lobby-kick`) and
/// writes that add one new record per call (`lobby-create`, `video-joined`, in
/// `facade_write.rs`). Another façade's call is one more variant here and one more client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestApi {
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
    /// PlayFlow-style `POST /lobbies?name=<config>`: one new lobby per call, each with a new
    /// host player (checked afterwards: every lobby answered exists, holding its host).
    LobbyCreate,
    /// Digital Samba-style `POST /api/v1/rooms/{room}/phone-participants/joined` (HTTP Basic):
    /// one new phone participant per call, spread over `--rooms` video rooms made at set-up,
    /// each watched by one socket that must see every caller in one `joined`.
    VideoJoined,
}

/// `worker` (internal): holds sockets `first .. first + count` for a parent `idle` run and obeys
/// commands on stdin (see `worker.rs`).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// `http://host:port` of the server, or of every node (comma-separated).
    #[arg(long)]
    pub server: String,
    /// Global index of this worker's first socket.
    #[arg(long)]
    pub first: usize,
    /// Members per room.
    #[arg(long)]
    pub room_size: usize,
    /// Run tag (room and member names).
    #[arg(long)]
    pub tag: String,
}
