//! The participant panel page, in a real headless Chromium driven through WebDriver
//! (`fantoccini` + `chromedriver`, launched by the test on a free port).
//!
//! Without Chromium and chromedriver the browser test prints `SKIPPED` and passes, unless
//! `ROLLCALL_REQUIRE_BROWSER=1` (CI) turns that into a failure. Binaries: `ROLLCALL_CHROMIUM`
//! (default `/usr/bin/chromium`) and `ROLLCALL_CHROMEDRIVER` (default `chromedriver` on `PATH`).
//!
//! The room is a video room of the Digital Samba-style façade (issue 5): created with
//! `POST /api/v1/rooms`, its phone callers come and go through [`PhoneBridge`], the façade's own
//! REST calls (`phone-participants/joined` and `/left`, dev team credentials), and its web
//! participants join over the WebSocket with video room tokens (`td`/`rd`/`ud`/`u`, HS256 with the
//! team's developer key). The host's page uses the host's own room token. A TCP proxy between
//! browser and server lets the test cut the page's connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::panel::*;
use crate::support::*;
use fantoccini::{Client as Browser, Locator};
use futures::FutureExt;
use rollcall::facade::video::{DEV_DEVELOPER_KEY, DEV_TEAM_ID};
use rollcall::ids::RoomId;
use serde_json::{json, Value};

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

/// A video room of the dev team, and its phone callers, through the façade's REST calls exactly
/// as the vendor's telephony middleware sends them.
struct PhoneBridge<'a> {
    s: &'a TestServer,
    /// The room's UUID (the `{room}` of the REST paths, the `rd` of its tokens).
    uuid: String,
}

impl<'a> PhoneBridge<'a> {
    /// A POST with the dev team's developer key (HTTP Basic, the curl `--user` form): status and
    /// raw body.
    async fn post(s: &TestServer, path: &str, body: Value) -> (u16, String) {
        let r = s
            .http
            .post(s.url(path))
            .basic_auth(DEV_TEAM_ID, Some(DEV_DEVELOPER_KEY))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }
    /// `POST /api/v1/rooms`: a new video room (200 with the room object).
    async fn create(s: &'a TestServer) -> Self {
        let (st, body) = Self::post(s, "/api/v1/rooms", json!({"topic": "Panel test"})).await;
        assert_eq!(st, 200, "{body}");
        let room: Value = serde_json::from_str(&body).expect("a room object");
        let uuid = room["id"].as_str().expect("an id").to_owned();
        Self { s, uuid }
    }
    /// The room's key on the WebSocket.
    fn room(&self) -> RoomId {
        RoomId::from(format!("video:{}", self.uuid))
    }
    /// A room token of a web participant (`ud` = member id, `u` = name).
    fn web_token(&self, ud: &str, name: &str) -> String {
        let claims = json!({"td": DEV_TEAM_ID, "rd": self.uuid, "ud": ud, "u": name,
                            "exp": rollcall::auth::unix_now() + 3600});
        rollcall::facade::video::token::sign(DEV_DEVELOPER_KEY, &claims).expect("a room token")
    }
    /// `POST /api/v1/rooms/{room}/phone-participants/joined`: 200, empty body.
    async fn joined(&self, callers: &[(&str, &str)]) {
        let body: Vec<Value> = callers
            .iter()
            .map(|(id, name)| json!({"call_id": id, "name": name}))
            .collect();
        let path = format!("/api/v1/rooms/{}/phone-participants/joined", self.uuid);
        assert_eq!(
            Self::post(self.s, &path, json!(body)).await,
            (200, String::new())
        );
    }
    /// `POST /api/v1/rooms/{room}/phone-participants/left` (a bare array of call ids): 200, empty
    /// body.
    async fn left(&self, ids: &[&str]) {
        let path = format!("/api/v1/rooms/{}/phone-participants/left", self.uuid);
        assert_eq!(
            Self::post(self.s, &path, json!(ids)).await,
            (200, String::new())
        );
    }
}

/// Percent-encodes the one path-special character room names may hold.
fn encode(room: &str) -> String {
    room.replace(':', "%3A")
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

/// The room's version, from the operator API.
async fn server_version(s: &TestServer, room: &RoomId) -> u64 {
    let (st, panel) = s
        .admin_get(&format!("/v1/rooms/{}", encode(room.as_str())))
        .await;
    assert_eq!(st, 200, "{panel}");
    panel["version"].as_u64().expect("a version")
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

/// A video room with web participants and phone callers shows live: rows appear, a caller
/// added through the façade's `phone-participants/joined` appears and one removed by `/left`
/// disappears, a kick clicked by the host reaches the other sockets as `left` `kick`,
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
            // Straight to stderr: the harness captures `eprintln!` of passing tests.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: panel_shows_the_room_live_in_chromium: {why}; \
                 install chromium and chromium-driver (set ROLLCALL_REQUIRE_BROWSER=1 to fail instead)"
            ); // nowhere to report a failed write to stderr
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
    let bridge = PhoneBridge::create(s).await;
    let room = bridge.room();
    let alice_token = bridge.web_token("alice", "Alice Martin");
    let mut alice = s.connect_token(&alice_token).await;
    alice.join(room.as_str()).await;
    let mut bob = s
        .connect_token(&bridge.web_token("bob", "Bruno Costa"))
        .await;
    bob.join(room.as_str()).await;
    let msgs = bob
        .request(
            json!({"type": "state", "room": room.as_str(), "state": {"mic": "on", "cam": "off"}}),
        )
        .await;
    assert_eq!(msgs.last().unwrap()["type"], "ack");
    bridge
        .joined(&[("call-1", "+1 555 0101"), ("call-2", "Reception desk")])
        .await;
    let mut dana = s.connect_token(&bridge.web_token("dana", "Dana Lee")).await;
    dana.join(room.as_str()).await;
    alice.drain().await;
    bob.drain().await;

    // The host's own view: kick buttons through the socket.
    let page = format!("/panel/{}#token={alice_token}", encode(room.as_str()));
    b.goto(&proxy.url(&page)).await.expect("page loads");
    rows_become(b, &["alice", "bob", "call-1", "call-2", "dana"]).await;
    until("live", || async {
        (page_state(b).await == "live").then_some(())
    })
    .await;
    page_version_becomes(b, server_version(s, &room).await).await;
    assert_eq!(text(b, "#room").await, room.as_str());
    assert_eq!(text(b, "#count").await, "5");
    assert_eq!(text(b, "#kinds").await, "3 web · 2 phones");
    let alice_row = text(b, r#"li[data-id="alice"]"#).await;
    assert!(
        alice_row.contains("Alice Martin")
            && alice_row.contains("Host")
            && alice_row.contains("You"),
        "{alice_row}"
    );
    let bob_row = text(b, r#"li[data-id="bob"]"#).await;
    assert!(
        bob_row.contains("Bruno Costa") && bob_row.contains("web") && bob_row.contains("mic: on"),
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
    let shot = screenshot_path("panel-screenshot.png");
    std::fs::write(&shot, png).expect("screenshot saved");
    eprintln!("panel screenshots: {} (and -phone.png)", shot.display());
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
    assert_eq!(dana.expect("left").await["members"], json!(["call-1"]));
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

    // Someone who is neither host nor operator gets no kick buttons. (A video room admits only its
    // own room tokens and the operator's: carol watches with a room token of her own.)
    let carol = bridge.web_token("carol", "Carol");
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

    // An operator token in the fragment: kick through the REST API (no `by`). The operator token
    // also opens the socket.
    b.goto(&proxy.url(&format!(
        "/panel/{}?viewer=operator#token={ADMIN}&admin={ADMIN}",
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
