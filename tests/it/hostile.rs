//! Hostile input against the real binary in a production configuration (issue 9): the holes an
//! outside attack found stay closed. Each test starts `rollcall` as an operator would, with
//! secrets in the environment and real keys in a TOML file, and attacks it from outside.

use std::process::Command;

use crate::support::process::{Options, Rollcall};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_rollcall");
const SECRET: &str = "prod-jwt-secret-0123456789";
const ADMIN: &str = "prod-admin-token-0123456789";
const GAME_KEY: &str = "prod-game-key";
const GAME_SECRET: &str = "prod-game-secret";

/// Starts the binary with `env` and the TOML `config`, keeping nothing on disk (the shared
/// process helper: killed on drop); waits for its listening line.
fn spawn(env: &[(&str, &str)], config: &str) -> Rollcall {
    let mut opts = Options::config(config).arg("--ephemeral");
    for (k, v) in env {
        opts = opts.env(k, v);
    }
    Rollcall::start(opts)
}

/// A production configuration: secrets in the environment, a real game key, no session key.
fn production() -> Rollcall {
    spawn(
        &[
            ("ROLLCALL_JWT_SECRET", SECRET),
            ("ROLLCALL_ADMIN_TOKEN", ADMIN),
        ],
        &format!(
            "[[game.api_keys]]\napi_key = \"{GAME_KEY}\"\nsecret_key = \"{GAME_SECRET}\"\n\
             game_id = \"realgame\"\n"
        ),
    )
}

/// What `rollcall token ARGS` prints.
fn token(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["token"])
        .args(args)
        .env_remove("ROLLCALL_JWT_SECRET")
        .env_remove("ROLLCALL_CONFIG")
        .output()
        .expect("run token");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The status of a WebSocket upgrade with `token`.
async fn upgrade_status(base: &str, token: &str) -> u16 {
    let url = format!("{}/v1/ws?token={token}", base.replace("http://", "ws://"));
    match tokio::time::timeout(
        crate::support::READ_TIMEOUT,
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("answer in time")
    {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

fn hmac_hex(secret: &str, ts: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A signed PLYR call with `key`/`secret`.
async fn game_call(
    base: &str,
    path: &str,
    key: &str,
    secret: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let ts = (rollcall::auth::unix_now() * 1000).to_string();
    let text = body.to_string();
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("apikey", key)
        .header("signature", hmac_hex(secret, &ts, &text))
        .header("timestamp", ts)
        .header("content-type", "application/json")
        .body(text)
        .timeout(crate::support::READ_TIMEOUT)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// Critical finding 1: beside production secrets, no development credential authenticates — not
/// the public session key pair (`rollcall token --plyr-id`) on `/game/join` or `/v1/ws`, not the
/// development HS256 secret, admin token, game key, lobby key or video team.
#[tokio::test]
async fn development_credentials_are_dead_beside_production_secrets() {
    let p = production();
    assert!(p.logs().contains("production mode"), "{}", p.logs());
    let session = token(&["--plyr-id", "alice", "--game", "realgame"]);
    assert_eq!(upgrade_status(&p.base(), &session).await, 401);
    let dev_hs = token(&["--sub", "alice"]);
    assert_eq!(upgrade_status(&p.base(), &dev_hs).await, 401);
    let real = rollcall::auth::sign_hs256(SECRET, "alice", None, 60);
    assert_eq!(upgrade_status(&p.base(), &real).await, 101);

    let (status, created) = game_call(
        &p.base(),
        "/game/create",
        GAME_KEY,
        GAME_SECRET,
        json!({"sync": true}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let room = created["roomId"].clone();
    let (status, body) = game_call(
        &p.base(),
        "/game/join",
        GAME_KEY,
        GAME_SECRET,
        json!({"roomId": room, "sessionJwts": [session], "sync": true}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = game_call(
        &p.base(),
        "/game/create",
        rollcall::facade::game::DEV_API_KEY,
        rollcall::facade::game::DEV_SECRET_KEY,
        json!({"sync": true}),
    )
    .await;
    assert_eq!(status, 401, "the development game key is dead");

    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/v1/rooms", p.base()))
        .bearer_auth(rollcall::config::DEV_ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the development admin token is dead");
    let r = http
        .get(format!("{}/lobbies?name=default", p.base()))
        .header("api-key", rollcall::facade::lobby::DEV_LOBBY_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the development lobby key is dead");
    let r = http
        .get(format!("{}/api/v1/rooms", p.base()))
        .basic_auth(
            rollcall::facade::video::DEV_TEAM_ID,
            Some(rollcall::facade::video::DEV_DEVELOPER_KEY),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the development video team is dead");
}

/// `--dev` beside a configured credential refuses to start, naming both; the start-up warning of
/// development mode lists what is live and never prints a key.
#[test]
fn dev_mode_is_explicit_and_never_prints_a_key() {
    let out = Command::new(BIN)
        .arg("--dev")
        .env("ROLLCALL_JWT_SECRET", SECRET)
        .env_remove("ROLLCALL_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`dev`") && err.contains("jwt_secret"), "{err}");

    let p = spawn(&[], "");
    assert!(p.logs().contains("DEVELOPMENT MODE"), "{}", p.logs());
    for live in rollcall::devmode::DEV_CREDENTIALS {
        assert!(p.logs().contains(live), "{live} missing from\n{}", p.logs());
    }
    for secret in [
        rollcall::config::DEV_JWT_SECRET,
        rollcall::config::DEV_ADMIN_TOKEN,
        rollcall::facade::game::DEV_API_KEY,
        rollcall::facade::game::DEV_SECRET_KEY,
        rollcall::facade::lobby::DEV_LOBBY_KEY,
        rollcall::facade::video::DEV_DEVELOPER_KEY,
    ] {
        assert!(
            !p.logs().contains(secret),
            "{secret} printed:\n{}",
            p.logs()
        );
    }
}
