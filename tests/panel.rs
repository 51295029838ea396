//! The participant panel page, in a real headless Chromium driven through WebDriver
//! (`fantoccini` + `chromedriver`, launched by the test on a free port).
//!
//! Without Chromium and chromedriver the browser test prints `SKIPPED` and passes, unless
//! `ROLLCALL_REQUIRE_BROWSER=1` (CI) turns that into a failure. Binaries: `ROLLCALL_CHROMIUM`
//! (default `/usr/bin/chromium`) and `ROLLCALL_CHROMEDRIVER` (default `chromedriver` on `PATH`).
//!
//! Phone callers come and go through [`PhoneBridge`]: today the native room API (the in-process
//! `add_members` the video façade's `phone-participants/joined` calls, and the operator
//! `POST /v1/rooms/{room}/leave`); switching to the video façade's REST calls only changes that
//! type. A TCP proxy between browser and server lets the test cut the page's connection.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use futures::FutureExt;
use rollcall::ids::{MemberId, RoomId};
use rollcall::protocol::MemberKind;
use rollcall::room::NewMember;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// How long the page may take to show a change.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

// ----- the page without a browser ---------------------------------------------------------

/// The page and its assets are served from the binary with a strict CSP; a room name no room
/// can have is a 400, and names with ':' (façade rooms) are fine, encoded or not.
#[tokio::test]
async fn page_and_assets_are_served_from_the_binary() {
    let s = start().await;
    for path in [
        "/panel/video%3Aabc-123",
        "/panel/video:abc-123",
        "/panel/r1",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["referrer-policy"], "no-referrer");
        let body = r.text().await.unwrap();
        assert!(body.contains(r#"src="assets/panel.js""#));
        assert!(
            !body.contains("abc-123"),
            "the room name is never echoed into the HTML"
        );
    }
    let r = s.http.get(s.url("/panel/bad%20name")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    for (path, ct, needle) in [
        ("/panel/assets/panel.js", "text/javascript", "rollcallPanel"),
        ("/panel/assets/panel.css", "text/css", ".member"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ct));
        assert!(r.text().await.unwrap().contains(needle));
    }
}

// ----- helpers ----------------------------------------------------------------------------

/// Adds and removes phone callers. Native today; the video façade's REST calls later.
struct PhoneBridge<'a> {
    s: &'a TestServer,
    room: RoomId,
}

impl PhoneBridge<'_> {
    /// Callers join (what `POST /api/v1/rooms/{room}/phone-participants/joined` does).
    async fn joined(&self, callers: &[(&str, &str)]) {
        let app = &self.s.running.as_ref().unwrap().app;
        let h = app.registry.get(self.room.as_str()).expect("room exists");
        h.add_members(
            callers
                .iter()
                .map(|(id, name)| NewMember {
                    id: MemberId::from(*id),
                    kind: MemberKind::Phone,
                    name: Some((*name).into()),
                    meta: Value::Null,
                })
                .collect(),
        )
        .await
        .expect("callers added");
    }
    /// Callers leave (what `POST /api/v1/rooms/{room}/phone-participants/left` does).
    async fn left(&self, ids: &[&str]) {
        let path = format!("/v1/rooms/{}/leave", encode(self.room.as_str()));
        let (st, body) = self.s.admin_post(&path, json!({ "members": ids })).await;
        assert_eq!(st, 200, "{body}");
    }
}

/// Percent-encodes the one path-special character room names may hold.
fn encode(room: &str) -> String {
    room.replace(':', "%3A")
}

/// A TCP proxy in front of the server whose connections the test can cut.
struct Proxy {
    addr: SocketAddr,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = broadcast::channel::<()>(4);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut stop = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.recv() => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }
    /// Drops every open connection (new ones still go through).
    fn cut(&self) {
        // No receiver means no open connection: nothing to cut.
        let _ = self.cut.send(());
    }
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// chromedriver (killed on drop) and a scratch Chromium profile (removed on drop).
struct Driver {
    child: tokio::process::Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Best effort: the process may have exited already.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// Chromium and chromedriver, or why not.
fn browser_binaries() -> Result<(PathBuf, PathBuf), String> {
    let chromium =
        std::env::var("ROLLCALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("ROLLCALL_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let chromium = which(&chromium).ok_or(format!("no Chromium at {chromium}"))?;
    let driver = which(&driver).ok_or(format!("chromedriver not found ({driver})"))?;
    Ok((chromium, driver))
}

async fn launch(chromium: &Path, driver: &Path) -> (Driver, Browser) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let profile = std::env::temp_dir().join(format!(
        "rollcall-panel-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let d = Driver {
        child,
        port,
        profile,
    };
    let status = format!("http://127.0.0.1:{}/status", d.port);
    let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
    while reqwest::get(&status).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--window-size=1100,760", "--lang=en-US",
                format!("--user-data-dir={}", d.profile.display()),
            ],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a WebDriver session");
    (d, browser)
}

/// Polls `check` until it returns `Some`, or fails with `what`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The member ids shown, in order.
async fn rows(b: &Browser) -> Vec<String> {
    let v = b
        .execute(
            "return [...document.querySelectorAll('#members li')].map(li => li.dataset.id);",
            vec![],
        )
        .await
        .expect("script runs");
    serde_json::from_value(v).unwrap_or_default()
}

async fn rows_become(b: &Browser, want: &[&str]) {
    until(&format!("rows {want:?}"), || async {
        (rows(b).await == want).then_some(())
    })
    .await;
}

async fn text(b: &Browser, css: &str) -> String {
    match b.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn js(b: &Browser, script: &str) -> Value {
    b.execute(script, vec![]).await.expect("script runs")
}

async fn page_state(b: &Browser) -> String {
    js(
        b,
        "return window.rollcallPanel ? window.rollcallPanel.state : '';",
    )
    .await
    .as_str()
    .unwrap_or("")
    .to_owned()
}

async fn server_version(s: &TestServer, room: &RoomId) -> u64 {
    let app = &s.running.as_ref().unwrap().app;
    app.registry
        .get(room.as_str())
        .expect("room")
        .snapshot()
        .await
        .expect("snapshot")
        .version
}

async fn page_version_becomes(b: &Browser, want: u64) {
    until(&format!("version {want}"), || async {
        (js(b, "return window.rollcallPanel.version;").await == json!(want)
            && text(b, "#version").await == want.to_string())
        .then_some(())
    })
    .await;
}

/// Clicks a row's kick button twice (arm, then confirm).
async fn kick_from_page(b: &Browser, member: &str) {
    let css = format!(r#"button.kick[data-id="{member}"]"#);
    let button = b.find(Locator::Css(&css)).await.expect("a kick button");
    button.click().await.expect("arm");
    until("the armed button", || async {
        (text(b, &css).await == "Confirm").then_some(())
    })
    .await;
    let button = b.find(Locator::Css(&css)).await.expect("the armed button");
    button.click().await.expect("confirm");
}

fn screenshot_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&dir).expect("target/ exists");
    dir.join(name)
}

// ----- the browser test ----------------------------------------------------------------------

/// A room with players and phone callers shows live: rows appear, a caller removed by the
/// backend disappears, a kick clicked by the host reaches the other sockets as `left` `kick`,
/// a cut connection reconnects and resyncs, a version gap triggers `sync`, and an operator
/// token gets kick buttons through the REST API.
#[tokio::test]
async fn panel_shows_the_room_live_in_chromium() {
    let (chromium, driver) = match browser_binaries() {
        Ok(b) => b,
        Err(why) => {
            if std::env::var("ROLLCALL_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("ROLLCALL_REQUIRE_BROWSER=1 but {why} (apt-get install chromium chromium-driver)");
            }
            eprintln!(
                "SKIPPED panel_shows_the_room_live_in_chromium: {why}; \
                 install chromium and chromium-driver (set ROLLCALL_REQUIRE_BROWSER=1 to fail instead)"
            );
            return;
        }
    };
    let s = start().await;
    let proxy = Proxy::start(s.addr).await;
    let (driver, browser) = launch(&chromium, &driver).await;
    let outcome = std::panic::AssertUnwindSafe(scenario(&s, &proxy, &browser))
        .catch_unwind()
        .await;
    // Always end the session so Chromium exits, even when the scenario failed.
    let _ = browser.close().await; // the browser may already be gone
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(s: &TestServer, proxy: &Proxy, b: &Browser) {
    let room = RoomId::from(format!(
        "studio:{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let token = |sub: &str, name: &str| rollcall::auth::sign_hs256(SECRET, sub, Some(name), 3600);
    let mut alice = s.connect_token(&token("alice", "Alice Martin")).await;
    alice.join(room.as_str()).await;
    let mut bob = s.connect_token(&token("bob", "Bruno Costa")).await;
    bob.join(room.as_str()).await;
    let msgs = bob
        .request(
            json!({"type": "state", "room": room.as_str(), "state": {"mic": "on", "cam": "off"}}),
        )
        .await;
    assert_eq!(msgs.last().unwrap()["type"], "ack");
    let bridge = PhoneBridge {
        s,
        room: room.clone(),
    };
    bridge
        .joined(&[("call-1", "+1 555 0101"), ("call-2", "Reception desk")])
        .await;
    // A web participant, added as the video façade adds one (for the kind column).
    let app = &s.running.as_ref().unwrap().app;
    app.registry
        .get(room.as_str())
        .unwrap()
        .add_members(vec![NewMember {
            id: MemberId::from("dana"),
            kind: MemberKind::Web,
            name: Some("Dana Lee".into()),
            meta: Value::Null,
        }])
        .await
        .unwrap();
    alice.drain().await;
    bob.drain().await;

    // The host's own view: kick buttons through the socket.
    let page = format!(
        "/panel/{}#token={}",
        encode(room.as_str()),
        token("alice", "Alice Martin")
    );
    b.goto(&proxy.url(&page)).await.expect("page loads");
    rows_become(b, &["alice", "bob", "call-1", "call-2", "dana"]).await;
    until("live", || async {
        (page_state(b).await == "live").then_some(())
    })
    .await;
    page_version_becomes(b, server_version(s, &room).await).await;
    assert_eq!(text(b, "#room").await, room.as_str());
    assert_eq!(text(b, "#count").await, "5");
    assert_eq!(text(b, "#kinds").await, "2 players · 1 web · 2 phones");
    let alice_row = text(b, r#"li[data-id="alice"]"#).await;
    assert!(
        alice_row.contains("Alice Martin")
            && alice_row.contains("Host")
            && alice_row.contains("You"),
        "{alice_row}"
    );
    let bob_row = text(b, r#"li[data-id="bob"]"#).await;
    assert!(
        bob_row.contains("Bruno Costa")
            && bob_row.contains("player")
            && bob_row.contains("mic: on"),
        "{bob_row}"
    );
    assert!(!bob_row.contains("Host"));
    assert!(text(b, r#"li[data-id="call-1"]"#).await.contains("phone"));
    assert!(text(b, r#"li[data-id="dana"]"#).await.contains("web"));
    let kick_buttons = js(
        b,
        "return [...document.querySelectorAll('button.kick')].map(x => x.dataset.id);",
    )
    .await;
    assert_eq!(
        kick_buttons,
        json!(["bob", "call-1", "call-2", "dana"]),
        "the host may kick all but itself"
    );

    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_path("panel-screenshot.png"), png).expect("screenshot saved");
    b.set_window_size(390, 844).await.expect("phone width");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_path("panel-screenshot-phone.png"), png).expect("screenshot saved");
    b.set_window_size(1100, 760).await.expect("desktop width");

    // The backend says a caller left: the row goes, every socket sees `left` `left`.
    bridge.left(&["call-1"]).await;
    rows_become(b, &["alice", "bob", "call-2", "dana"]).await;
    let ev = alice.expect("left").await;
    assert_eq!(
        (ev["members"].clone(), ev["reason"].clone()),
        (json!(["call-1"]), json!("left"))
    );
    assert_eq!(bob.expect("left").await["members"], json!(["call-1"]));
    assert_eq!(text(b, "#count").await, "4");

    // The host kicks from the page: the other sockets see `left` `kick` by alice.
    kick_from_page(b, "bob").await;
    let ev = bob.expect("left").await;
    assert_eq!(ev["reason"], "kick");
    assert_eq!(ev["by"], "alice");
    assert_eq!(ev["members"], json!(["bob"]));
    assert_eq!(bob.expect("kicked").await["by"], "alice");
    let ev = alice.expect("left").await;
    assert_eq!(
        (ev["reason"].clone(), ev["by"].clone()),
        (json!("kick"), json!("alice"))
    );
    rows_become(b, &["alice", "call-2", "dana"]).await;

    // The connection drops; a caller joins meanwhile; the page reconnects and resyncs.
    let before = js(b, "return window.rollcallPanel.diag.reconnects;").await;
    proxy.cut();
    bridge.joined(&[("call-3", "+44 20 7946 0000")]).await;
    rows_become(b, &["alice", "call-2", "dana", "call-3"]).await;
    assert_eq!(alice.expect("joined").await["members"][0]["id"], "call-3");
    until("live again", || async {
        (page_state(b).await == "live").then_some(())
    })
    .await;
    let after = js(b, "return window.rollcallPanel.diag.reconnects;").await;
    assert!(
        after.as_u64() > before.as_u64(),
        "the page reconnected ({before} → {after})"
    );
    page_version_becomes(b, server_version(s, &room).await).await;

    // A version gap: the page must not apply the event, and must fetch a fresh panel.
    let v = server_version(s, &room).await;
    let gap = json!({"type": "state", "room": room.as_str(), "version": v + 5, "member": "alice", "state": {"bogus": true}});
    b.execute(
        "window.rollcallPanel.handle(arguments[0]); return null;",
        vec![gap],
    )
    .await
    .expect("inject");
    until("a resync after the gap", || async {
        let d = js(b, "return window.rollcallPanel.diag;").await;
        (d["gaps"].as_u64() >= Some(1) && page_state(b).await == "live").then_some(())
    })
    .await;
    page_version_becomes(b, v).await;
    assert!(!text(b, r#"li[data-id="alice"]"#).await.contains("bogus"));

    // Someone who is neither host nor operator gets no kick buttons.
    let carol = token("carol", "Carol");
    b.goto(&proxy.url(&format!(
        "/panel/{}?viewer=carol#token={carol}",
        encode(room.as_str())
    )))
    .await
    .expect("page loads");
    rows_become(b, &["alice", "call-2", "dana", "call-3"]).await;
    assert_eq!(
        js(b, "return document.querySelectorAll('button.kick').length;").await,
        json!(0)
    );

    // An operator token in the fragment: kick through the REST API (no `by`).
    b.goto(&proxy.url(&format!(
        "/panel/{}?viewer=operator#token={carol}&admin={ADMIN}",
        encode(room.as_str())
    )))
    .await
    .expect("page loads");
    rows_become(b, &["alice", "call-2", "dana", "call-3"]).await;
    kick_from_page(b, "call-2").await;
    let ev = alice.expect("left").await;
    assert_eq!(ev["reason"], "kick");
    assert_eq!(ev["members"], json!(["call-2"]));
    assert!(ev.get("by").is_none(), "an operator kick has no `by`: {ev}");
    rows_become(b, &["alice", "dana", "call-3"]).await;
    assert!(text(b, "#viewer").await.contains("operator"));
}
