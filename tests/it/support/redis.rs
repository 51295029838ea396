//! A real `redis-server` as a child process for the cluster tests (issue 12): [`RedisServer`]
//! starts it on a free 127.0.0.1 port with nothing persisted, waits (bounded) until it answers
//! `PING`, and can be killed (SIGKILL) and started again, fresh and empty, on the same port; it
//! is killed and reaped on drop. [`command`] speaks just enough RESP over a plain TCP socket to
//! ask it things (`DBSIZE`, `KEYS rc:*`, `INFO commandstats`), so the tests need no Redis crate.
//!
//! Without `redis-server` on `PATH`, [`RedisServer::start`] prints a `SKIPPED:` line and returns
//! `None`, unless `ROLLCALL_REQUIRE_REDIS=1` (CI), which turns the skip into a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::TempDir;

/// How long a start may take before it answers `PING`.
pub const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Each RESP command's bound (connect, write, read).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// `redis-server`'s path if it is on `PATH`.
pub fn redis_server_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// True when `redis-server` is on `PATH`. Otherwise fails the test under
/// `ROLLCALL_REQUIRE_REDIS=1`, or prints a `SKIPPED:` line naming `test` and returns false.
pub fn available(test: &str) -> bool {
    if redis_server_path().is_some() {
        return true;
    }
    let why = "redis-server not found on PATH (apt-get install redis-server)";
    if std::env::var("ROLLCALL_REQUIRE_REDIS").as_deref() == Ok("1") {
        panic!("ROLLCALL_REQUIRE_REDIS=1 but {why}");
    }
    // Straight to stderr, not `eprintln!`: the harness captures the macros of passing tests,
    // and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: redis-server not found: {test}: {why} \
         (set ROLLCALL_REQUIRE_REDIS=1 to fail instead)"
    ); // nowhere to report a failed write to stderr
    false
}

/// A running `redis-server`, killed and reaped on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free port; `None` (after a `SKIPPED:` line) when it is not
    /// installed and not required.
    pub fn start(test: &str) -> Option<RedisServer> {
        Self::start_with(test, &[])
    }

    /// [`Self::start`] with `extra` arguments after the test defaults.
    pub fn start_with(test: &str, extra: &[&str]) -> Option<RedisServer> {
        if !available(test) {
            return None;
        }
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: TempDir::new("redis"),
        };
        r.spawn();
        Some(r)
    }

    /// Spawns the server on `self.port` and waits until it answers `PING`; panics with its log
    /// if it exits or stays silent for [`REDIS_START_TIMEOUT`].
    fn spawn(&mut self) {
        let log = self.dir.path().join("redis.log");
        let _ = std::fs::remove_file(&log); // a fresh log per start; none is fine
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        loop {
            if ping(self.port) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let mut stderr = String::new();
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill(); // may have exited already
                    let _ = c.wait();
                    if let Some(mut e) = c.stderr.take() {
                        let _ = e.read_to_string(&mut stderr); // best effort, for the message
                    }
                }
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "redis-server on port {} did not answer PING ({exited:?})\nstderr:\n{stderr}\nlog:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// SIGKILL, then reaps the process (a no-op when it is not running).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // already gone is fine
            let _ = c.wait();
        }
    }
    /// Kills it if running, then starts it again on the same port, fresh and empty (nothing is
    /// persisted), and waits until it answers `PING`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
    /// One command's reply, as [`command`] renders it; panics if it cannot be asked.
    pub fn command(&self, args: &[&str]) -> String {
        command(self.port, args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// True when the server on `port` answers an inline `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

/// Sends `args` as one RESP command to the server on `port` and returns its reply rendered as
/// text: a simple string or bulk string as is, an integer as digits, an error as `-<message>`,
/// a nil as `(nil)`, an array as its elements rendered and joined by `\n`. Blocking, bounded by
/// [`COMMAND_TIMEOUT`] per step.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT)?;
    s.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    s.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    s.write_all(&req)?;
    read_reply(&mut BufReader::new(s))
}

/// Reads one RESP2 reply (the five types `redis-server` answers a RESP2 client with).
fn read_reply(r: &mut impl BufRead) -> std::io::Result<String> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("the connection closed before a reply".into()));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(1.min(line.len()));
    let n = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad length {line:?}")))
    };
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Ok(format!("-{rest}")),
        "$" => {
            let len = n()?;
            if len < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0u8; len as usize + 2]; // the body and its CRLF
            r.read_exact(&mut buf)?;
            buf.truncate(len as usize);
            String::from_utf8(buf).map_err(|e| bad(e.to_string()))
        }
        "*" => {
            let len = n()?;
            if len < 0 {
                return Ok("(nil)".into());
            }
            let items = (0..len)
                .map(|_| read_reply(r))
                .collect::<std::io::Result<Vec<_>>>()?;
            Ok(items.join("\n"))
        }
        _ => Err(bad(format!("not a RESP2 reply: {line:?}"))),
    }
}

/// A 3-master Redis Cluster of real `redis-server`s (`--cluster-enabled yes`), its 16,384 slots
/// split in three (`CLUSTER ADDSLOTSRANGE`) and the masters introduced (`CLUSTER MEET`); ready
/// once every master reports `cluster_state:ok`. Killed and reaped on drop.
pub struct RedisCluster {
    /// The masters, in slot order.
    pub masters: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the cluster; `None` (after a `SKIPPED:` line) without `redis-server`.
    pub fn start(test: &str) -> Option<RedisCluster> {
        if !available(test) {
            return None;
        }
        let buses: Vec<String> = (0..3).map(|_| free_port().to_string()).collect();
        let masters: Vec<RedisServer> = buses
            .iter()
            .map(|bus| {
                // The bus port is set: the default (port + 10,000) may not exist.
                RedisServer::start_with(
                    test,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-port",
                        bus,
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
                .expect("redis-server is available")
            })
            .collect();
        let ranges = [("0", "5460"), ("5461", "10922"), ("10923", "16383")];
        for (m, (from, to)) in masters.iter().zip(ranges) {
            let r = m.command(&["CLUSTER", "ADDSLOTSRANGE", from, to]);
            assert_eq!(r, "OK", "ADDSLOTSRANGE {from} {to} on {}", m.port());
        }
        for (m, bus) in masters.iter().zip(&buses).skip(1) {
            let port = m.port().to_string();
            let r = masters[0].command(&["CLUSTER", "MEET", "127.0.0.1", &port, bus]);
            assert_eq!(r, "OK", "CLUSTER MEET {port} {bus}");
        }
        let deadline = Instant::now() + REDIS_START_TIMEOUT;
        let ok = |m: &RedisServer| {
            let info = m.command(&["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
        };
        while !masters.iter().all(ok) {
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not converge: {}",
                masters[0].command(&["CLUSTER", "INFO"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(RedisCluster { masters })
    }

    /// Every master's URL, comma-separated (the seeds `--redis-url` takes with
    /// `--redis-cluster`).
    pub fn urls(&self) -> String {
        self.masters
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The master whose slots hold `key`'s slot (`CLUSTER KEYSLOT` asked of any master).
    pub fn master_of(&self, key: &str) -> &RedisServer {
        let slot: u32 = self.masters[0]
            .command(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number");
        let i = match slot {
            0..=5460 => 0,
            5461..=10922 => 1,
            _ => 2,
        };
        &self.masters[i]
    }
}
