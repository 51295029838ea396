//! The shipped binary, driven as a new user would: start it on its embedded default, make tokens
//! with `rollcall token`, connect, leave, and stop it with SIGTERM. Also: bad configuration fails
//! fast and names the field.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Client;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_rollcall");

fn token(sub: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--sub", sub])
        .env_remove("ROLLCALL_JWT_SECRET")
        .output()
        .expect("run token");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The README's first command, end to end: three members and a watcher; one leaves; everyone
/// else sees `left` naming it, one version up. SIGTERM stops the process with close 1001.
#[tokio::test]
async fn new_user_scenario_on_the_real_binary() {
    let mut child = Command::new(BIN)
        .env("ROLLCALL_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env_remove("ROLLCALL_JWT_SECRET")
        .env_remove("ROLLCALL_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rollcall");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut logs = String::new();
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("listening log line");
        logs.push_str(&line);
        logs.push('\n');
        if let Some(i) = line.find("ws://") {
            break line[i..].split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        logs.contains("rollcall-dev-secret"),
        "the log says where the dev secret comes from:\n{logs}"
    );
    assert!(
        logs.contains("socket_capacity"),
        "the log gives the socket capacity:\n{logs}"
    );

    let connect = |sub: &'static str| {
        let url = format!("{url}?token={}", token(sub));
        async move {
            let (ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            Client { ws }
        }
    };
    let mut members = Vec::new();
    for sub in ["ann", "ben", "cat"] {
        let mut c = connect(sub).await;
        c.join("r1").await;
        members.push(c);
    }
    let mut watcher = connect("wes").await;
    let panel = watcher.watch("r1").await;
    let version = panel["version"].as_u64().unwrap();
    for c in &mut members {
        c.drain().await;
    }
    members[1]
        .request(json!({"type": "leave", "room": "r1"}))
        .await;
    for c in [&mut members[0], &mut watcher] {
        let left = c.expect("left").await;
        assert_eq!(left["members"], json!(["ben"]));
        assert_eq!(left["version"], version + 1);
    }
    let left = members[2].expect("left").await;
    assert_eq!(left["version"], version + 1);

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(watcher.closed().await, 1001);
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit: {status}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "exits within its shutdown bound"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Invalid configuration fails fast, naming the field, from each source.
#[test]
fn bad_configuration_names_the_field() {
    let out = Command::new(BIN)
        .env("ROLLCALL_GRACE_SECS", "-3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("grace_secs"));

    let dir = std::env::temp_dir().join(format!("rollcall-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`listen`"));

    std::fs::write(&file, "grace = 3\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("grace"));
    let _ = std::fs::remove_dir_all(dir);
}
