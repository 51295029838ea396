//! The server under test: started in this process (default), spawned as a child `rollcall`
//! process (`--spawn`, so its memory and CPU are its own), or an existing deployment (`--url`).
//! Also: socket tokens, loopback source addresses, and the operator REST calls scenarios use.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rollcall::config::{FileConfig, Settings};
use rollcall::server::Running;
use serde_json::{json, Value};

use std::sync::Arc;

use super::cli::TargetArgs;
use super::cluster::Nodes;
use super::Error;

/// The secret and admin token of servers this tool starts itself.
const OWN_SECRET: &str = "rollcall-bench-secret-0123456789";
const OWN_ADMIN: &str = "rollcall-bench-admin-0123456789";

enum Server {
    InProcess(Running),
    Child(Child),
    Cluster(Arc<Nodes>),
    External,
}

/// A reachable server plus what clients need to talk to it.
pub struct Target {
    /// `http://host:port`.
    pub base: String,
    /// The server's socket address.
    pub addr: SocketAddr,
    /// HS256 secret for socket tokens.
    pub secret: String,
    /// Operator bearer token.
    pub admin: String,
    /// Shared HTTP client (keep-alive pool).
    pub http: reqwest::Client,
    /// The server process's pid when it is not this process.
    pub pid: Option<u32>,
    /// Loopback source addresses to spread clients over.
    pub sources: u8,
    /// Grace period of the server, when this tool started it.
    pub grace: Option<f64>,
    /// `--nodes N`: the cluster's Redis and nodes (node 0 is `base`).
    pub cluster: Option<Arc<Nodes>>,
    /// Every node's address and base URL (one entry without a cluster).
    nodes: Vec<(SocketAddr, String)>,
    mode: &'static str,
    /// Taken by [`Target::stop`]; a `std` mutex, never held across `.await`.
    server: std::sync::Mutex<Option<Server>>,
}

impl Target {
    /// Starts (or locates) the server. `grace` is the scenario's default reconnect grace for a
    /// server this tool starts; `clients` sizes the automatic source-address count.
    pub async fn start(args: &TargetArgs, grace: f64, clients: usize) -> Result<Self, Error> {
        let grace = args.grace_secs.unwrap_or(grace);
        // A fresh store for each run: what an earlier run left must not be resumed.
        let _ = std::fs::remove_dir_all(bench_data_dir());
        let sources = match args.sources {
            0 => u8::try_from(clients / 25_000 + 1).unwrap_or(u8::MAX),
            n => n,
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .build()?;
        let (base, secret, admin, pid, server, grace) = if let Some(url) = &args.url {
            let secret = args
                .token_secret
                .clone()
                .ok_or("--url needs --token-secret (or ROLLCALL_JWT_SECRET)")?;
            let admin = args
                .admin_token
                .clone()
                .ok_or("--url needs --admin-token (or ROLLCALL_ADMIN_TOKEN)")?;
            let base = url.trim_end_matches('/').to_owned();
            (base, secret, admin, args.server_pid, Server::External, None)
        } else if args.spawn && args.nodes > 1 {
            let nodes =
                Nodes::start(args.nodes, |url, i| spawn_child(grace, Some((url, i)))).await?;
            let nodes = Arc::new(nodes);
            (
                nodes.bases[0].clone(),
                OWN_SECRET.into(),
                OWN_ADMIN.into(),
                Some(nodes.pids[0]),
                Server::Cluster(nodes),
                Some(grace),
            )
        } else if args.nodes > 1 {
            return Err("--nodes needs --spawn (this tool starts the cluster)".into());
        } else if args.spawn {
            let (child, base) = spawn_child(grace, None).await?;
            let pid = child.id();
            let s = Server::Child(child);
            (
                base,
                OWN_SECRET.into(),
                OWN_ADMIN.into(),
                Some(pid),
                s,
                Some(grace),
            )
        } else {
            let running =
                rollcall::server::spawn(Settings::from_file(own_config("127.0.0.1:0", grace))?)
                    .await?;
            let base = format!("http://{}", running.addr);
            let s = Server::InProcess(running);
            (
                base,
                OWN_SECRET.into(),
                OWN_ADMIN.into(),
                None,
                s,
                Some(grace),
            )
        };
        let cluster = match &server {
            Server::Cluster(n) => Some(n.clone()),
            _ => None,
        };
        let bases = match &cluster {
            Some(n) => n.bases.clone(),
            None => vec![base.clone()],
        };
        let mut nodes = Vec::with_capacity(bases.len());
        for b in bases {
            let host = b
                .strip_prefix("http://")
                .ok_or("--url must start with http://")?;
            let addr = tokio::net::lookup_host(host)
                .await?
                .find(SocketAddr::is_ipv4)
                .ok_or("the target has no IPv4 address")?;
            nodes.push((addr, b));
        }
        let addr = nodes[0].0;
        let t = Self {
            base,
            addr,
            secret,
            admin,
            http,
            pid,
            sources,
            grace,
            cluster,
            nodes,
            mode: match server {
                Server::InProcess(_) => "in-process",
                Server::Child(_) => "spawned child process",
                Server::Cluster(_) => "spawned cluster (redis-server + nodes)",
                Server::External => "external (--url)",
            },
            server: std::sync::Mutex::new(Some(server)),
        };
        for (_, b) in &t.nodes {
            t.wait_healthy(b).await?;
        }
        Ok(t)
    }

    /// How the server runs, for the report.
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// `ws://host:port/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws{}/v1/ws", self.base.trim_start_matches("http"))
    }

    /// How many nodes serve the clients (1 without `--nodes`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's base URL.
    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|(_, b)| b.clone()).collect()
    }

    /// The address of node `i` (0-based).
    pub fn addr_of(&self, i: usize) -> SocketAddr {
        self.nodes[i % self.nodes.len()].0
    }

    /// `ws://host:port/v1/ws` of node `i` (0-based).
    pub fn ws_url_of(&self, i: usize) -> String {
        let base = &self.nodes[i % self.nodes.len()].1;
        format!("ws{}/v1/ws", base.trim_start_matches("http"))
    }

    /// A socket token for `sub`, valid for a day.
    pub fn token(&self, sub: &str) -> String {
        rollcall::auth::sign_hs256(&self.secret, sub, None, 86_400)
    }

    /// The loopback source address of client `i` (only when the target is on loopback).
    pub fn source(&self, i: usize) -> Option<IpAddr> {
        if self.sources <= 1 || !self.addr.ip().is_loopback() {
            return None;
        }
        let n = (i % usize::from(self.sources)) as u8;
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n)))
    }

    async fn wait_healthy(&self, base: &str) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.http.get(format!("{base}/healthz")).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(format!("{base} did not answer /healthz within 10 s").into())
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Open sockets as the server counts them (`/healthz`; every live node's, together).
    pub async fn sockets(&self) -> Result<i64, Error> {
        let mut total = 0;
        for (_, base) in &self.nodes {
            let r = self.http.get(format!("{base}/healthz")).send().await;
            let Ok(r) = r else {
                if self.nodes.len() > 1 {
                    continue; // a killed node
                }
                return Err(format!("{base}/healthz does not answer").into());
            };
            let v: Value = r.json().await?;
            total += v["sockets"].as_i64().unwrap_or(-1);
        }
        Ok(total)
    }

    /// `GET /v1/rooms/{room}`: the room's panel, or `None` if it does not exist.
    /// A cluster answers 503 while a room changes owner (a node died): retried for 15 s.
    pub async fn panel(&self, room: &str) -> Result<Option<Value>, Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let r = loop {
            let r = self
                .http
                .get(format!("{}/v1/rooms/{room}", self.base))
                .bearer_auth(&self.admin)
                .send()
                .await?;
            if r.status().as_u16() != 503 || tokio::time::Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(format!("GET /v1/rooms/{room}: {}", r.status()).into());
        }
        Ok(Some(r.json().await?))
    }

    /// `POST /v1/rooms/{room}/leave` for one member; the HTTP status.
    pub async fn rest_leave(&self, room: &str, member: &str) -> Result<u16, Error> {
        let r = self
            .http
            .post(format!("{}/v1/rooms/{room}/leave", self.base))
            .bearer_auth(&self.admin)
            .json(&json!({ "members": [member] }))
            .send()
            .await?;
        let status = r.status().as_u16();
        // Read the body so the connection goes back to the pool.
        let _ = r.bytes().await;
        Ok(status)
    }

    /// `rollcall_store_commits_total` from `/metrics`: the store transactions the server has
    /// committed (one group commit covers every write staged while the previous one ran).
    /// `None` when the server has no such counter (a build before the durable store) or the
    /// metrics cannot be read.
    pub async fn store_commits(&self) -> Option<u64> {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let text = r.text().await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("rollcall_store_commits_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }

    /// Stops a server this tool started (once; later calls do nothing).
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(server) = server else { return };
        match server {
            Server::InProcess(r) => {
                // The server is dropped either way; a failed clean shutdown changes no figure.
                let _ = r.shutdown().await;
                let _ = std::fs::remove_dir_all(bench_data_dir());
            }
            Server::Child(mut c) => {
                // SIGTERM for a clean exit; SIGKILL if it is still there after 5 s.
                let _ = Command::new("kill").arg(c.id().to_string()).status();
                let mut exited = false;
                for _ in 0..50 {
                    if matches!(c.try_wait(), Ok(Some(_))) {
                        exited = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if !exited {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                // Clean exit or not, the run's data dir goes (it is this run's alone).
                let _ = std::fs::remove_dir_all(bench_data_dir());
            }
            Server::Cluster(nodes) => {
                nodes.stop().await;
                let _ = std::fs::remove_dir_all(bench_data_dir());
            }
            Server::External => {}
        }
    }
}

/// Runs `--phase-hook` (if given) for `phase` (`start` or `end`) and waits for it; a hook that
/// fails is reported, the run goes on.
pub async fn phase_hook(args: &TargetArgs, phase: &str) {
    let Some(cmd) = &args.phase_hook else { return };
    let status = tokio::process::Command::new("sh")
        .args(["-c", cmd, "hook", phase])
        .status()
        .await;
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("--phase-hook {phase}: {s}"),
        Err(e) => eprintln!("--phase-hook {phase}: {e}"),
    }
}

/// The settings of a server this tool starts: known secrets, the scenario's grace, the façades'
/// development credentials (game, lobby, video), and room for large rooms.
///
/// Its own secrets put it in production mode, where no development credential is live; the
/// façades get the development values explicitly (the `rest` scenario's defaults), with the
/// public session key of `src/facade/game/dev-keys/`.
fn own_config(listen: &str, grace: f64) -> FileConfig {
    let mut f = FileConfig {
        listen: listen.into(),
        jwt_secret: Some(OWN_SECRET.into()),
        admin_token: Some(OWN_ADMIN.into()),
        grace_secs: grace,
        ban_secs: 600.0,
        max_members_per_room: 20_000,
        data_dir: bench_data_dir().display().to_string(),
        ..FileConfig::default()
    };
    f.game.api_keys = vec![rollcall::config::GameApiKey {
        api_key: rollcall::facade::game::DEV_API_KEY.into(),
        secret_key: rollcall::facade::game::DEV_SECRET_KEY.into(),
        role: "user".into(),
        game_id: rollcall::facade::game::DEV_GAME_ID.into(),
    }];
    f.game.session_public_key_file = Some(session_public_key());
    f.lobby.api_keys = vec![rollcall::facade::lobby::DEV_LOBBY_KEY.into()];
    f.video.teams = vec![rollcall::config::VideoTeam {
        team_id: rollcall::facade::video::DEV_TEAM_ID.into(),
        developer_key: rollcall::facade::video::DEV_DEVELOPER_KEY.into(),
    }];
    // `rest --api lobby-create` makes one lobby per call, thousands per run: the per-key cap
    // (1,000 by default) is raised to the process's room cap rather than switched off.
    f.limits.max_lobbies_per_key = f.limits.max_rooms;
    // A load generator creates rooms from one address as fast as it can: the creation buckets
    // that stop one abusive client would only measure themselves here (caps stay on).
    for (burst, rate) in [
        (
            &mut f.limits.address_room_burst,
            &mut f.limits.address_rooms_per_sec,
        ),
        (
            &mut f.limits.tenant_room_burst,
            &mut f.limits.tenant_rooms_per_sec,
        ),
        (
            &mut f.limits.lobby_address_burst,
            &mut f.limits.lobby_address_per_sec,
        ),
    ] {
        (*burst, *rate) = (0, 0.0);
    }
    f
}

/// The public half of the development session key pair, in the server's source tree (this
/// package's parent directory).
fn session_public_key() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../src/facade/game/dev-keys/session-public.pem")
}

/// The spawned server's data dir: fresh for each run (the durable store, as deployed), removed
/// when the server is stopped.
fn bench_data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rollcall-bench-data-{}", std::process::id()))
}

/// Runs the `rollcall` binary found next to this one on a free loopback port; `cluster`: as
/// node `b<i>` on that Redis, with its own data dir.
async fn spawn_child(
    grace: f64,
    cluster: Option<(String, usize)>,
) -> Result<(Child, String), Error> {
    let exe = std::env::current_exe()?;
    let server = exe.with_file_name("rollcall");
    if !server.exists() {
        return Err(format!(
            "--spawn needs {} (build both: cargo build --release --workspace)",
            server.display()
        )
        .into());
    }
    // Pick a free port, release it, hand it to the child (a tiny race, fine for a bench).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let f = own_config(&listen, grace);
    let toml = format!(
        "listen = {:?}\njwt_secret = {:?}\nadmin_token = {:?}\ngrace_secs = {}\nban_secs = {}\n\
         max_members_per_room = {}\n[game]\nsession_public_key_file = {:?}\n\
         [[game.api_keys]]\napi_key = {:?}\nsecret_key = {:?}\ngame_id = {:?}\n\
         [lobby]\napi_keys = [{:?}]\n[[video.teams]]\nteam_id = {:?}\ndeveloper_key = {:?}\n\
         [limits]\naddress_room_burst = 0\naddress_rooms_per_sec = 0.0\n\
         tenant_room_burst = 0\ntenant_rooms_per_sec = 0.0\nlobby_address_burst = 0\n\
         lobby_address_per_sec = 0.0\nmax_lobbies_per_key = {}\n",
        f.listen,
        OWN_SECRET,
        OWN_ADMIN,
        f.grace_secs,
        f.ban_secs,
        f.max_members_per_room,
        session_public_key().display().to_string(),
        rollcall::facade::game::DEV_API_KEY,
        rollcall::facade::game::DEV_SECRET_KEY,
        rollcall::facade::game::DEV_GAME_ID,
        rollcall::facade::lobby::DEV_LOBBY_KEY,
        rollcall::facade::video::DEV_TEAM_ID,
        rollcall::facade::video::DEV_DEVELOPER_KEY,
        f.limits.max_lobbies_per_key,
    );
    let path = std::env::temp_dir().join(format!("rollcall-bench-{}.toml", std::process::id()));
    let path = match &cluster {
        Some((_, i)) => path.with_extension(format!("n{i}.toml")),
        None => path,
    };
    std::fs::write(&path, toml)?;
    let data_dir = match &cluster {
        Some((_, i)) => std::path::Path::new(&f.data_dir).join(format!("n{i}")),
        None => std::path::PathBuf::from(&f.data_dir),
    };
    let mut cmd = Command::new(&server);
    if let Some((url, i)) = &cluster {
        cmd.args(["--redis-url", url, "--node-id", &format!("b{i}")]);
    }
    let child = cmd
        .arg("--config")
        .arg(&path)
        .env_remove("ROLLCALL_JWT_SECRET")
        .env_remove("ROLLCALL_ADMIN_TOKEN")
        .env_remove("ROLLCALL_LISTEN")
        .env_remove("ROLLCALL_GRACE_SECS")
        // The environment, not the file: a server built before data dirs existed ignores it,
        // so the same tool measures builds from before and after the durable store.
        .env("ROLLCALL_DATA_DIR", &data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    eprintln!(
        "spawned {} (pid {}) on {listen}",
        server.display(),
        child.id()
    );
    Ok((child, format!("http://{listen}")))
}
