//! `/proc` readings: resident memory and CPU time of a process, and the machine's load average.
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat`, plus `cutime + cstime` for this process so
//! the worker processes it waited for count as the load generator's. Ticks are converted with
//! `getconf CLK_TCK` (100 on Linux in practice).

use std::sync::OnceLock;
use std::time::Instant;

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn ticks_per_sec() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds used by `pid` (user + system); with `children`, plus its waited-for children's.
pub fn cpu_secs(pid: u32, children: bool) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After ')': index 0 = state (field 3), so utime (14) = 11, stime = 12, cutime = 13, cstime = 14.
    let mut t = f.get(11)? + f.get(12)?;
    if children {
        t += f.get(13)? + f.get(14)?;
    }
    Some(t as f64 / ticks_per_sec())
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU used by the load generator and by the server between two points in time.
pub struct CpuMeter {
    wall: Instant,
    own: f64,
    server_pid: Option<u32>,
    server: Option<f64>,
}

/// What a [`CpuMeter`] measured.
pub struct CpuUse {
    /// Wall-clock seconds.
    pub wall: f64,
    /// This process (and its workers), CPU seconds.
    pub bench: f64,
    /// The server process, CPU seconds (None: same process or unknown pid).
    pub server: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring; `server_pid` is `None` when the server runs in this process.
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            wall: Instant::now(),
            own: cpu_secs(std::process::id(), true).unwrap_or(0.0),
            server_pid,
            server: server_pid.and_then(|p| cpu_secs(p, false)),
        }
    }

    /// CPU used since [`CpuMeter::start`].
    pub fn stop(&self) -> CpuUse {
        let own = cpu_secs(std::process::id(), true).unwrap_or(0.0) - self.own;
        let server = match (self.server_pid, self.server) {
            (Some(p), Some(before)) => cpu_secs(p, false).map(|now| now - before),
            _ => None,
        };
        CpuUse {
            wall: self.wall.elapsed().as_secs_f64(),
            bench: own,
            server,
        }
    }
}
