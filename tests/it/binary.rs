//! The shipped binary, driven as a new user would: start it on its embedded default, make tokens
//! with `rollcall token`, connect, leave, and stop it with SIGTERM. Also: bad configuration fails
//! fast and names the field.

use std::process::Command;
use std::time::Duration;

use crate::support::process::{Options, Rollcall};
use crate::support::Client;
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
    let (mut child, url, logs) = spawn_default();
    assert!(
        logs.contains("DEVELOPMENT MODE") && logs.contains("the built-in HS256 secret"),
        "the log says the development secret is live:\n{logs}"
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

    child.sigterm();
    assert_eq!(watcher.closed().await, 1001);
    let status = child
        .wait_exit(Duration::from_secs(8))
        .expect("exits within its shutdown bound");
    assert!(status.success(), "clean exit: {status}");
}

/// Starts the binary on its embedded default (port 0, its own temp data dir); returns it (killed
/// on drop), its ws:// URL and its logs.
fn spawn_default() -> (Rollcall, String, String) {
    let p = Rollcall::start(Options::default());
    let (url, logs) = (p.ws_url(), p.logs());
    (p, url, logs)
}

fn sign(secret: &str, ts: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The game API works out of the box on the dev credentials: create a room with the dev API key,
/// join a player with a session token from `rollcall token --plyr-id`, and the player's socket
/// (opened with the same session token) sees its leave.
#[tokio::test]
async fn game_api_works_on_the_dev_defaults() {
    let (child, url, logs) = spawn_default();
    assert!(logs.contains("the built-in session key pair"), "{logs}");
    let base = url.replace("ws://", "http://").replace("/v1/ws", "");
    let http = reqwest::Client::new();
    let post = |path: &'static str, body: serde_json::Value| {
        let ts = (rollcall::auth::unix_now() * 1000).to_string();
        let text = body.to_string();
        http.post(format!("{base}/api{path}"))
            .header("apikey", "dev-game-key")
            .header("signature", sign("dev-game-secret", &ts, &text))
            .header("timestamp", ts)
            .header("content-type", "application/json")
            .body(text)
    };
    let created: serde_json::Value = post("/game/create", json!({"sync": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room_id = created["roomId"].as_str().expect("roomId").to_owned();
    let out = Command::new(BIN)
        .args(["token", "--plyr-id", "Zoe"])
        .output()
        .unwrap();
    let session = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = post(
        "/game/join",
        json!({"roomId": room_id, "sessionJwts": [session], "sync": true}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={session}"))
        .await
        .unwrap();
    let mut zoe = Client { ws };
    zoe.join(&format!("game:devgame:{room_id}")).await;
    let r = post(
        "/game/leave",
        json!({"roomId": room_id, "sessionJwts": [session], "sync": true}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let left = zoe.expect("left").await;
    assert_eq!(left["members"], json!(["zoe"]));
    drop(child);
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
