//! Giving memory back to the operating system after mass disconnects.
//!
//! glibc's allocator keeps freed memory in its arenas: after 19,000 sockets closed, the server's
//! resident memory stayed at its peak (`bench/RESULTS.md`, idle). `malloc_trim(0)` releases the
//! free pages of every arena (measured: 152 MB → 13 MB once the emptied rooms had exited). A
//! background task calls it when the number of open connections (sockets, and connections that
//! never upgraded) plus live rooms has fallen by [`TRIM_AFTER_DROP`] since the last trim or
//! peak (the connection peak is tracked between ticks too) — once after the sockets close, once more
//! after their rooms linger out — and never on a steady server. Other allocators and platforms:
//! nothing to do.

use std::time::Duration;

use crate::app::App;

/// How far the live object count must fall before memory is trimmed.
pub const TRIM_AFTER_DROP: usize = 1000;

/// How often the count is looked at.
const EVERY: Duration = Duration::from_secs(5);

/// Watches the socket and room counts until shutdown; trims after large drops.
pub async fn trim_after_drops(app: App) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peak = 0usize;
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // TCP connections include the sockets, and also those that never upgraded (plain HTTP,
        // timed out by a deadline): their buffers count towards a drop too, and so does a burst
        // that came and went between two ticks.
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        let (sockets, rooms) = (app.sockets.len(), app.registry.len());
        let burst = sockets.max(count(app.stats.take_connection_peak())) + rooms;
        peak = peak.max(burst);
        let live = sockets.max(count(app.stats.connections())) + rooms;
        if due(&mut peak, live) {
            // The trim walks every arena (milliseconds for hundreds of MB): off the workers.
            let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
            tracing::debug!(live, released, "memory trimmed after a drop");
        }
    }
}

/// The policy: `peak` is the highest live count since the last trim; trim when `live` is
/// [`TRIM_AFTER_DROP`] or more below it (and start over from `live`).
fn due(peak: &mut usize, live: usize) -> bool {
    *peak = (*peak).max(live);
    if *peak >= live + TRIM_AFTER_DROP {
        *peak = live;
        return true;
    }
    false
}

/// Returns free heap pages to the OS; true if some were released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the crate's only unsafe: one FFI call, see below
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and locks each arena itself; it is safe to call from
    // any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Growth and small dips never trim; a mass close trims once, and the rooms lingering out
    /// afterwards trim once more.
    #[test]
    fn trims_once_per_large_drop() {
        let mut peak = 0;
        let ticks = [
            0, 5_000, 19_000, 19_000, 18_100, 19_000, 1_900, 1_900, 1_800, 0, 0,
        ];
        let trims: Vec<bool> = ticks.iter().map(|&live| due(&mut peak, live)).collect();
        assert_eq!(
            trims,
            [false, false, false, false, false, false, true, false, false, true, false]
        );
        assert!(!due(&mut peak, 999), "growing again does not trim");
    }
}
