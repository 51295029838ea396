//! The durable store's faults against the real binary and a real file (issue 11): a database
//! file that is not SQLite, or whose schema is newer than the binary, stops the start with a
//! message naming the file and leaves it untouched; a data directory that turns read-only, or a
//! disk that fills up, answers writes with 503 in each façade's error shape while reads are still
//! served, and nothing acknowledged before is lost. The read-only and full-disk cases use a small
//! tmpfs (mounting needs root; without it they print `SKIPPED:` and pass).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::durable::*;
use crate::support::process::{Options, Rollcall, TempDir};

/// Starts the binary on `data` with every façade configured; `Err` if it exits before listening.
fn start_on(keys: &SessionKeys, data: &Path) -> Result<Rollcall, crate::support::process::Exited> {
    Rollcall::try_start(
        Options::config(config(keys, "", None))
            .arg("--data-dir")
            .arg(data.display().to_string()),
    )
}

/// Asserts a refused start: a non-zero exit, stderr naming `file`.
fn assert_refused(what: &str, r: Result<Rollcall, crate::support::process::Exited>, file: &Path) {
    let e = match r {
        Ok(p) => panic!(
            "{what}: the server started anyway\n{}\n{}",
            p.logs(),
            p.stderr()
        ),
        Err(e) => e,
    };
    let status = e.status.expect("exits within the start bound");
    assert!(!status.success(), "{what}: exit status {status}");
    assert!(
        e.stderr.contains(&file.display().to_string()),
        "{what}: stderr names {}\nstderr:\n{}\nstdout:\n{}",
        file.display(),
        e.stderr,
        e.stdout
    );
}

/// A file of garbage bytes where the database should be: the start fails naming the file, and
/// the file is left byte for byte as it was (never a silent wipe).
#[test]
fn garbage_database_file_stops_the_start_and_is_left_untouched() {
    let keys = SessionKeys::new();
    let data = TempDir::new("garbage");
    let file = db_file(data.path());
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &garbage).unwrap();
    assert_refused("garbage database file", start_on(&keys, data.path()), &file);
    assert!(
        std::fs::read(&file).unwrap() == garbage,
        "the garbage file is left untouched"
    );
}

/// The `user_version` of an SQLite file: through the `sqlite3` CLI when installed, else the
/// header (offset 60, big-endian u32).
fn user_version(file: &Path) -> u32 {
    if let Some(out) = sqlite3(file, "PRAGMA user_version;") {
        return out.trim().parse().expect("a number");
    }
    let bytes = std::fs::read(file).unwrap();
    u32::from_be_bytes(bytes[60..64].try_into().unwrap())
}

fn set_user_version(file: &Path, v: u32) {
    if sqlite3(file, &format!("PRAGMA user_version = {v};")).is_some() {
        return;
    }
    let mut bytes = std::fs::read(file).unwrap();
    bytes[60..64].copy_from_slice(&v.to_be_bytes());
    std::fs::write(file, bytes).unwrap();
}

/// Runs one statement with the `sqlite3` CLI; `None` if it is not installed.
fn sqlite3(file: &Path, sql: &str) -> Option<String> {
    let out = Command::new("sqlite3").arg(file).arg(sql).output().ok()?;
    assert!(out.status.success(), "sqlite3 {sql}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A database whose schema is newer than this binary's (its `user_version` raised by one): the
/// start fails naming the file, and the file is unchanged.
#[tokio::test]
async fn newer_schema_stops_the_start_and_is_left_untouched() {
    let keys = SessionKeys::new();
    let data = TempDir::new("newer");
    let file = db_file(data.path());
    {
        let mut p = start_on(&keys, data.path()).expect("starts on an empty data dir");
        let api = Api::new(p.base());
        let (st, v) = api
            .video(
                Method::POST,
                "/rooms",
                Some(json!({"friendly_url": "kept-room"})),
            )
            .await
            .expect("an answer");
        assert_eq!(st, 200, "{v}");
        p.sigterm();
        assert!(p.wait_exit(Duration::from_secs(10)).is_some(), "stops");
    }
    assert!(file.exists(), "the database file is {}", file.display());
    let current = user_version(&file);
    assert!(current > 0, "a versioned schema (user_version {current})");
    set_user_version(&file, current + 1);
    let before = std::fs::read(&file).unwrap();
    assert_refused("newer schema", start_on(&keys, data.path()), &file);
    assert!(
        std::fs::read(&file).unwrap() == before,
        "the newer database is left untouched"
    );
    // Put back the known version: it starts again, the room is still there.
    set_user_version(&file, current);
    let p = start_on(&keys, data.path()).expect("starts on its own schema");
    let (st, v) = Api::new(p.base())
        .video(Method::GET, "/rooms/kept-room", None)
        .await
        .expect("an answer");
    assert_eq!(st, 200, "{v}");
}

/// A small tmpfs mounted for one test, unmounted (lazily, so a process still holding it cannot
/// block it) on drop.
struct Mount {
    dir: TempDir,
}

impl Mount {
    /// `None` (after printing `SKIPPED:` with the reason) when mounting is not permitted.
    fn tmpfs(name: &str, size: &str, test: &str) -> Option<Mount> {
        let dir = TempDir::new(name);
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount { dir }),
            Ok(o) => {
                println!(
                    "SKIPPED: {test}: cannot mount a tmpfs ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: {test}: cannot run mount ({e})");
                None
            }
        }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Best effort: the directory is removed by the TempDir afterwards.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// What the three façades hold: video rooms, lobbies (with a joined player), game rooms.
#[derive(Default, Debug)]
struct Acked {
    videos: Vec<String>,
    lobbies: Vec<(String, Vec<String>)>,
    games: Vec<String>,
}

/// One write of each façade; each answered 2xx is recorded in `acked`, each answer is returned
/// as (façade, status, body).
async fn write_each(api: &Api, n: usize, acked: &mut Acked) -> Vec<(&'static str, u16, Value)> {
    let mut out = Vec::new();
    let (st, v) = api
        .video(
            Method::POST,
            "/rooms",
            Some(json!({"friendly_url": format!("room-{n}"), "description": "x".repeat(400)})),
        )
        .await
        .expect("video answers");
    if st == 200 {
        acked.videos.push(v["id"].as_str().unwrap().to_owned());
    }
    out.push(("video create", st, v));
    let host = format!("host{n}");
    let (st, v) = api.lobby_create(&host, true).await.expect("lobby answers");
    if st == 201 {
        acked
            .lobbies
            .push((v["id"].as_str().unwrap().to_owned(), vec![host.clone()]));
        let id = v["id"].as_str().unwrap().to_owned();
        let (st, v) = api
            .lobby_join(&id, &format!("guest{n}"))
            .await
            .expect("lobby join answers");
        if st == 200 {
            acked
                .lobbies
                .last_mut()
                .unwrap()
                .1
                .push(format!("guest{n}"));
        }
        out.push(("lobby join", st, v));
    }
    out.push(("lobby create", st, v));
    let (st, v) = api
        .game("/game/create", json!({"sync": true}))
        .await
        .expect("game answers");
    if st == 200 && v["status"] == "SUCCESS" {
        acked.games.push(v["roomId"].as_str().unwrap().to_owned());
    }
    out.push(("game create", st, v));
    out
}

/// Every acknowledged record is served.
async fn assert_acked_present(api: &Api, acked: &Acked, when: &str) {
    for id in &acked.videos {
        let (st, v) = api
            .video(Method::GET, &format!("/rooms/{id}"), None)
            .await
            .expect("answers");
        assert_eq!(st, 200, "{when}: video room {id}: {v}");
    }
    for (id, players) in &acked.lobbies {
        let (st, v) = api
            .lobby(Method::GET, &format!("/lobbies/{id}"), None)
            .await
            .expect("answers");
        assert_eq!(st, 200, "{when}: lobby {id}: {v}");
        let mut got: Vec<String> = v["players"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        let mut want = players.clone();
        want.sort();
        assert_eq!(got, want, "{when}: lobby {id} players");
    }
    for id in &acked.games {
        assert!(
            api.members(&format!("game:{GAME}:{id}")).await.is_some(),
            "{when}: game room {id}"
        );
    }
}

/// A 503 in the façade's own error shape, with a clear message.
fn assert_storage_refusal(facade: &str, st: u16, body: &Value) {
    assert_eq!(
        st, 503,
        "{facade}: a write that cannot be committed: {body}"
    );
    let text = body.to_string().to_lowercase();
    let shaped = match facade.split(' ').next().unwrap() {
        "video" => body["message"].is_string(),
        "lobby" => body["statusCode"] == 503 && body["message"].is_string(),
        _ => body["error"].is_string() || body["errorMessage"].is_string(),
    };
    assert!(shaped, "{facade}: the façade's error shape: {body}");
    assert!(
        text.contains("storage") || text.contains("unavailable"),
        "{facade}: the body says storage is unavailable: {body}"
    );
}

/// A data directory holding acknowledged records turns read-only (remounted while the server is
/// stopped: a file system with files open for writing cannot be remounted read-only): the next
/// start is either a clear error naming the directory, or a server whose writes answer 503 (each
/// façade's shape) while reads are still served. Writable again, everything acknowledged is there.
#[tokio::test]
async fn read_only_data_dir_refuses_writes_and_keeps_serving_reads() {
    let Some(mount) = Mount::tmpfs("ro", "16m", "read_only_data_dir") else {
        return;
    };
    let keys = SessionKeys::new();
    let data = mount.path().join("data");
    let mut acked = Acked::default();
    {
        let mut p = start_on(&keys, &data).expect("starts");
        let api = Api::new(p.base());
        for n in 0..3 {
            for (what, st, v) in write_each(&api, n, &mut acked).await {
                assert!((200..300).contains(&st), "{what}: {st} {v}");
            }
        }
        p.sigterm();
        assert!(p.wait_exit(Duration::from_secs(10)).is_some(), "stops");
    }
    mount.remount("ro");
    match start_on(&keys, &data) {
        Err(e) => {
            assert!(e.status.is_some_and(|s| !s.success()), "{e:?}");
            assert!(
                e.stderr.contains(&data.display().to_string()),
                "stderr names the data dir {}:\n{}",
                data.display(),
                e.stderr
            );
            println!("read-only data dir: start refused: {}", e.stderr.trim());
        }
        Ok(p) => {
            let api = Api::new(p.base());
            assert_acked_present(&api, &acked, "read-only").await;
            let before = acked.videos.len() + acked.lobbies.len() + acked.games.len();
            for n in 3..5 {
                for (what, st, v) in write_each(&api, n, &mut acked).await {
                    assert_storage_refusal(what, st, &v);
                }
            }
            let after = acked.videos.len() + acked.lobbies.len() + acked.games.len();
            assert_eq!(before, after, "nothing acknowledged on a read-only dir");
        }
    }
    mount.remount("rw");
    let p = start_on(&keys, &data).expect("restarts");
    let api = Api::new(p.base());
    assert_acked_present(&api, &acked, "writable again").await;
    for (what, st, v) in write_each(&api, 9, &mut acked).await {
        assert!((200..300).contains(&st), "{what} writable again: {st} {v}");
    }
}

/// Started on a read-only data directory: either a clear start-up error naming it, or a server
/// whose writes answer 503.
#[tokio::test]
async fn read_only_data_dir_at_start_is_a_clear_error_or_503() {
    let Some(mount) = Mount::tmpfs("ro-start", "4m", "read_only_data_dir_at_start") else {
        return;
    };
    let keys = SessionKeys::new();
    let data = mount.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    mount.remount("ro");
    match start_on(&keys, &data) {
        Err(e) => {
            assert!(e.status.is_some_and(|s| !s.success()), "{e:?}");
            assert!(
                e.stderr.contains(&data.display().to_string()),
                "stderr names the data dir {}:\n{}",
                data.display(),
                e.stderr
            );
        }
        Ok(p) => {
            let api = Api::new(p.base());
            let mut acked = Acked::default();
            for (what, st, v) in write_each(&api, 0, &mut acked).await {
                assert_storage_refusal(what, st, &v);
            }
        }
    }
}

/// Fills the file system of `dir` with one big file until it is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = vec![0xA5u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.flush(); // full: it may fail, which is the point
    path
}

/// The disk fills up under a running server: writes keep answering (2xx while SQLite still has
/// room in its files, then 503 in each façade's shape, never a 500 or a hang); after the space is
/// freed and the server restarts, every write acknowledged before and during the fill is there.
#[tokio::test]
async fn full_disk_refuses_writes_and_loses_nothing_acknowledged() {
    let Some(mount) = Mount::tmpfs("full", "8m", "full_disk") else {
        return;
    };
    let keys = SessionKeys::new();
    let data = mount.path().join("data");
    let mut acked = Acked::default();
    let mut refusals = Vec::new();
    {
        let p = start_on(&keys, &data).expect("starts");
        let api = Api::new(p.base());
        for n in 0..5 {
            for (what, st, v) in write_each(&api, n, &mut acked).await {
                assert!((200..300).contains(&st), "{what}: {st} {v}");
            }
        }
        let ballast = fill(&mount.path());
        // SQLite reuses space already in its files, so the first writes may still commit.
        for n in 5..200 {
            for (what, st, v) in write_each(&api, n, &mut acked).await {
                // A game task that could not commit must not hide as `200 FAILED` either.
                let failed_task = what.starts_with("game") && v["status"] != "SUCCESS";
                if !(200..300).contains(&st) || failed_task {
                    assert_storage_refusal(what, st, &v);
                    refusals.push(what);
                }
            }
            if refusals.len() >= 3 {
                break;
            }
        }
        assert!(
            !refusals.is_empty(),
            "a full disk refuses writes with 503 (none refused in 200 rounds)"
        );
        assert_acked_present(&api, &acked, "disk full, same process").await;
        std::fs::remove_file(ballast).unwrap();
        drop(p);
    }
    let p = start_on(&keys, &data).expect("restarts after space is freed");
    let api = Api::new(p.base());
    assert_acked_present(&api, &acked, "after freeing space and restarting").await;
    for (what, st, v) in write_each(&api, 500, &mut acked).await {
        assert!((200..300).contains(&st), "{what} after freeing: {st} {v}");
    }
}

/// Creates a video room and checks it is served; returns its id.
async fn one_room(p: &Rollcall, name: &str) -> String {
    let (st, v) = Api::new(p.base())
        .video(Method::POST, "/rooms", Some(json!({"friendly_url": name})))
        .await
        .expect("an answer");
    assert_eq!(st, 200, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// The status of `GET /api/v1/rooms/{id}`.
async fn room_status(p: &Rollcall, id: &str) -> u16 {
    Api::new(p.base())
        .video(Method::GET, &format!("/rooms/{id}"), None)
        .await
        .expect("an answer")
        .0
}

/// Where data lives: `./rollcall-data/rollcall.db` by default (created at start), the TOML
/// `data_dir` when set; `--ephemeral` and `data_dir = ":memory:"` write nothing and keep nothing
/// across a restart.
#[tokio::test]
async fn data_dir_default_toml_and_ephemeral_modes() {
    let keys = SessionKeys::new();
    let toml = config(&keys, "", None);

    // Default: ./rollcall-data under the working directory.
    let cwd = TempDir::new("cwd-default");
    let opts = Options {
        cwd: Some(cwd.path().to_owned()),
        default_data_dir: true,
        ..Options::config(toml.clone())
    };
    let id = {
        let p = Rollcall::start(opts.clone());
        one_room(&p, "default-dir").await
    };
    let file = cwd.path().join("rollcall-data").join("rollcall.db");
    assert!(file.exists(), "the default database is {}", file.display());
    let p = Rollcall::start(opts);
    assert_eq!(room_status(&p, &id).await, 200, "kept in the default dir");
    drop(p);

    // TOML `data_dir`.
    let dir = TempDir::new("toml-dir");
    let data = dir.path().join("nested").join("data");
    let cwd = TempDir::new("cwd-toml");
    let with_dir = format!("data_dir = \"{}\"\n{toml}", data.display());
    let opts = Options {
        cwd: Some(cwd.path().to_owned()),
        default_data_dir: true,
        ..Options::config(with_dir)
    };
    let id = {
        let p = Rollcall::start(opts.clone());
        one_room(&p, "toml-dir").await
    };
    assert!(db_file(&data).exists(), "{}", db_file(&data).display());
    assert!(
        !cwd.path().join("rollcall-data").exists(),
        "not the default"
    );
    let p = Rollcall::start(opts);
    assert_eq!(room_status(&p, &id).await, 200, "kept in the TOML data_dir");
    drop(p);

    // `--ephemeral` and `data_dir = ":memory:"`: nothing written, nothing kept.
    for (name, opts) in [
        (
            "--ephemeral",
            Options::config(toml.clone()).arg("--ephemeral"),
        ),
        (
            "data_dir = \":memory:\"",
            Options {
                default_data_dir: true,
                ..Options::config(format!("data_dir = \":memory:\"\n{toml}"))
            },
        ),
    ] {
        let cwd = TempDir::new("cwd-ephemeral");
        let opts = Options {
            cwd: Some(cwd.path().to_owned()),
            ..opts
        };
        let id = {
            let p = Rollcall::start(opts.clone());
            one_room(&p, "ephemeral").await
        };
        let left: Vec<_> = std::fs::read_dir(cwd.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{name} writes nothing: {left:?}");
        let p = Rollcall::start(opts);
        assert_eq!(room_status(&p, &id).await, 404, "{name} keeps nothing");
    }
}
