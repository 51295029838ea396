//! The `rollcall-bench` binary end to end, on tiny runs judged on correctness only (never on
//! time): a `fanout` against a spawned `rollcall` (the publisher pipelines 32 `state` requests,
//! so every watcher must still see every event once and in order), the raw-TCP `floor`
//! (a re-executed child writes, the tool reads every message), and the `rest` façade calls
//! (signed game leave, lobby create, video phone-participant join).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Makes sure the `rollcall` server binary sits next to `rollcall-bench`, where `--spawn` looks
/// for it. `cargo test --workspace` has built it already (the server package's own tests need
/// it); `cargo test -p rollcall-bench` has not, so build it here with the cargo that built us
/// (once per test binary; cargo's own lock serialises the concurrent callers).
fn server_binary() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let bench = Path::new(env!("CARGO_BIN_EXE_rollcall-bench"));
        let server = bench.with_file_name("rollcall");
        if server.exists() {
            return;
        }
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", "rollcall", "--bin", "rollcall"]);
        if bench.parent().and_then(Path::file_name) == Some("release".as_ref()) {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the rollcall binary failed");
        assert!(server.exists(), "{} after the build", server.display());
    });
}

fn run(args: &[&str], name: &str) -> Value {
    if args.contains(&"--spawn") {
        server_binary();
    }
    let json: PathBuf =
        std::env::temp_dir().join(format!("rollcall-{name}-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall-bench"))
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("rollcall-bench runs");
    assert!(
        out.status.success(),
        "rollcall-bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("the --json file");
    let _ = std::fs::remove_file(&json);
    serde_json::from_str(&text).expect("JSON results")
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing or not a count in {v:#}"))
}

#[test]
fn pipelined_fanout_delivers_every_event_once_in_order() {
    let r = run(
        &["--spawn", "fanout", "--watchers", "20", "--events", "200"],
        "fanout",
    );
    assert_eq!(num(&r, "deliveries"), 4000, "{r:#}");
    for key in [
        "conn_failures",
        "missing_events",
        "duplicates",
        "out_of_order",
        "unfinished",
        "errors",
    ] {
        assert_eq!(num(&r, key), 0, "{key} in {r:#}");
    }
}

#[test]
fn floor_reads_every_message() {
    let r = run(
        &[
            "floor",
            "--sockets",
            "20",
            "--events",
            "30",
            "--rate",
            "200",
        ],
        "floor",
    );
    assert_eq!(num(&r, "deliveries"), 600, "{r:#}");
    assert_eq!(num(&r, "missing"), 0, "{r:#}");
}

/// The signed game `rest` scenario against a spawned server: the tool's own server is in
/// production mode (its own secrets), so it must configure the façade keys the scenario uses.
/// `--phase-hook` runs once as the calls start and once as they end.
#[test]
fn game_rest_scenario_runs_against_a_spawned_server() {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../src/facade/game/dev-keys/session-private.pem"
    );
    let phases = std::env::temp_dir().join(format!("rollcall-phases-{}", std::process::id()));
    let hook = format!("echo \"$1\" >> '{}'", phases.display());
    let r = run(
        &[
            "--spawn",
            "--phase-hook",
            &hook,
            "rest",
            "--api",
            "game",
            "--session-key",
            key,
            "--requests",
            "20",
            "--rooms",
            "2",
        ],
        "rest-game",
    );
    assert_eq!(num(&r, "left_seen"), 20, "{r:#}");
    for key in ["errors", "missing_left", "ghosts", "conn_failures"] {
        assert_eq!(num(&r, key), 0, "{key} in {r:#}");
    }
    let ran = std::fs::read_to_string(&phases).expect("the hook wrote its phases");
    let _ = std::fs::remove_file(&phases);
    assert_eq!(ran, "start\nend\n");
}

/// The samples of a run's request-latency histogram.
fn samples(v: &Value) -> u64 {
    v["request_latency"]["samples"]
        .as_u64()
        .unwrap_or_else(|| panic!("request_latency.samples missing in {v:#}"))
}

/// `rest --api lobby-create` against a spawned server: every call makes one lobby (201 with an
/// id), and every lobby answered exists afterwards holding its host alone. The server has the
/// durable store, so its commit counter moved.
#[test]
fn lobby_create_rest_scenario_runs_against_a_spawned_server() {
    let r = run(
        &[
            "--spawn",
            "rest",
            "--api",
            "lobby-create",
            "--requests",
            "12",
            "--concurrency",
            "4",
        ],
        "rest-lobby-create",
    );
    assert_eq!(samples(&r), 12, "{r:#}");
    for key in ["errors", "lost", "extra"] {
        assert_eq!(num(&r, key), 0, "{key} in {r:#}");
    }
    assert!(num(&r, "store_commits") >= 1, "{r:#}");
}

/// `rest --api video-joined` against a spawned server: 12 new phone participants over 3 video
/// rooms, each seen once by its room's watcher in a `joined`, each on the server afterwards.
#[test]
fn video_joined_rest_scenario_runs_against_a_spawned_server() {
    let r = run(
        &[
            "--spawn",
            "rest",
            "--api",
            "video-joined",
            "--requests",
            "12",
            "--rooms",
            "3",
            "--concurrency",
            "4",
        ],
        "rest-video-joined",
    );
    assert_eq!(samples(&r), 12, "{r:#}");
    assert_eq!(num(&r, "joined_seen"), 12, "{r:#}");
    for key in [
        "errors",
        "missing_joined",
        "lost",
        "extra",
        "missing_events",
        "duplicates",
        "conn_failures",
    ] {
        assert_eq!(num(&r, key), 0, "{key} in {r:#}");
    }
    assert!(num(&r, "store_commits") >= 1, "{r:#}");
}
