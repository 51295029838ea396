//! The real `rollcall` binary as a child process: start it with arguments, environment, a TOML
//! configuration file and a data directory; wait (bounded) for its listening line; give its
//! address; stop it with SIGTERM or SIGKILL. [`Rollcall`] kills and reaps the child on drop, so a
//! failing test never leaves a process behind. [`TempDir`] is a directory removed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rollcall");
/// How long a start may take before its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A fresh directory under the system temp directory, removed (best effort) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory named after `name`, unique to this call.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "rollcall-{name}-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0); // best effort: a temp dir
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos ^ (N.fetch_add(1, Ordering::Relaxed) << 48)
}

/// How to start the binary. Every inherited `ROLLCALL_*` variable is removed first, so only what
/// is given here configures it.
#[derive(Default, Clone)]
pub struct Options {
    /// Command-line arguments (after `--config` when there is a configuration file).
    pub args: Vec<String>,
    /// Environment variables, set after the inherited `ROLLCALL_*` ones are removed.
    pub env: Vec<(String, String)>,
    /// TOML written to a file passed as `--config`, after `listen = "127.0.0.1:0"`. Without
    /// one, `ROLLCALL_LISTEN=127.0.0.1:0` is set instead.
    pub config: Option<String>,
    /// The data directory (`ROLLCALL_DATA_DIR`); without one, a fresh temp directory owned by
    /// the process handle (removed on drop), so no test writes into the working directory.
    /// Neither with `--ephemeral` among the arguments, nor with `default_data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Leave the data directory to the binary's own default (`./rollcall-data`, or what the
    /// configuration file says); use with `cwd`.
    pub default_data_dir: bool,
    /// The working directory (default: the test's).
    pub cwd: Option<PathBuf>,
}

impl Options {
    pub fn config(toml: impl Into<String>) -> Self {
        Options {
            config: Some(toml.into()),
            ..Options::default()
        }
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }
}

/// A process that exited before it listened.
#[derive(Debug)]
pub struct Exited {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// A running `rollcall`, killed and reaped on drop.
pub struct Rollcall {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _config: Option<TempDir>,
    _data: Option<TempDir>,
}

impl Rollcall {
    /// Starts the binary and waits for its listening line; panics (with its output) if it exits
    /// or stays silent for [`START_TIMEOUT`].
    pub fn start(opts: Options) -> Rollcall {
        match Self::try_start(opts) {
            Ok(p) => p,
            Err(e) => panic!(
                "rollcall did not start ({:?})\nstdout:\n{}\nstderr:\n{}",
                e.status, e.stdout, e.stderr
            ),
        }
    }

    /// Starts the binary; `Err` with its exit status and output if it exits (or stays silent
    /// for [`START_TIMEOUT`], then it is killed) before its listening line.
    // The returned `Rollcall` kills and reaps the child on drop; the error path reaps it here.
    #[allow(clippy::zombie_processes)]
    pub fn try_start(opts: Options) -> Result<Rollcall, Exited> {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ROLLCALL_") {
                cmd.env_remove(k);
            }
        }
        let config = opts.config.as_ref().map(|toml| {
            let dir = TempDir::new("config");
            let file = dir.path().join("rollcall.toml");
            std::fs::write(&file, format!("listen = \"127.0.0.1:0\"\n{toml}\n")).unwrap();
            cmd.arg("--config").arg(&file);
            dir
        });
        if config.is_none() {
            cmd.env("ROLLCALL_LISTEN", "127.0.0.1:0");
        }
        let ephemeral = opts.args.iter().any(|a| a == "--ephemeral");
        let data = match &opts.data_dir {
            _ if ephemeral || opts.default_data_dir => None,
            Some(d) => {
                cmd.env("ROLLCALL_DATA_DIR", d);
                None
            }
            None => {
                let d = TempDir::new("data");
                cmd.env("ROLLCALL_DATA_DIR", d.path());
                Some(d)
            }
        };
        if let Some(dir) = &opts.cwd {
            cmd.current_dir(dir);
        }
        cmd.args(&opts.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rollcall");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
                let _ = tx.send(line); // the starter may have stopped listening
            }
        });
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(i) = line.find("ws://") {
                        let url = line[i + 5..].split_whitespace().next().unwrap();
                        let addr = url.trim_end_matches("/v1/ws").to_owned();
                        return Ok(Rollcall {
                            child,
                            addr,
                            stdout,
                            stderr,
                            _config: config,
                            _data: data,
                        });
                    }
                }
                Err(e) => {
                    let status = if matches!(e, std::sync::mpsc::RecvTimeoutError::Timeout) {
                        let _ = child.kill(); // silent too long
                        child.wait().ok()
                    } else {
                        wait_bounded(&mut child, Duration::from_secs(5))
                    };
                    // Let the stderr reader finish its last read.
                    std::thread::sleep(Duration::from_millis(50));
                    let stdout = stdout.lock().unwrap().clone();
                    let stderr = stderr.lock().unwrap().clone();
                    return Err(Exited {
                        status,
                        stdout,
                        stderr,
                    });
                }
            }
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `ws://127.0.0.1:port/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }
    /// One `/metrics` scrape (read with [`crate::support::sample`]).
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
    /// Everything it printed on stdout so far (its log).
    pub fn logs(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Sends SIGTERM (a graceful stop); does not wait.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "SIGTERM delivered");
    }
    /// SIGKILL (`kill -9`), then reaps the process.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill(); // already gone is fine
        let _ = self.child.wait();
    }
    /// Waits up to `bound` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        wait_bounded(&mut self.child, bound)
    }
}

fn wait_bounded(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if t.elapsed() >= bound {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Rollcall {
    fn drop(&mut self) {
        let _ = self.child.kill(); // already gone is fine
        let _ = self.child.wait();
    }
}
