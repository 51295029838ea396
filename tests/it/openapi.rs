//! `protocol/openapi.yaml` against the real server, both ways.
//!
//! - Every path and method in the document is called with a valid request (its body checked
//!   against the document's request schema first), with the admin token where the operation's
//!   security asks for it and without where it is open: the status must be one the document
//!   lists, the `Content-Type` one of the response's media types, and a JSON body must conform to
//!   the response schema (shared checker, `tests/it/support/contract.rs`) and hold no property the
//!   schema does not name (rollcall owns this document, so it must be complete). Requests without
//!   the token, for an unknown room and with a bad body are checked the same way.
//! - Every operator route is in the document, and every route the router declares (read from
//!   `src/http/mod.rs` and `src/panel/mod.rs`) is either in the document or listed in
//!   [`ELSEWHERE`] with where it is described.

use std::path::Path;

use crate::support::contract::{assert_conforms, Doc, METHODS};
use crate::support::*;
use serde_json::{json, Value};

/// rollcall's operator API document.
fn doc() -> Doc {
    Doc::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/openapi.yaml"))
}

/// The operator surface: each must be in the document.
const OPERATOR_ROUTES: [(&str, &str); 7] = [
    ("GET", "/healthz"),
    ("GET", "/v1/rooms"),
    ("GET", "/v1/rooms/{room}"),
    ("POST", "/v1/rooms/{room}/leave"),
    ("POST", "/v1/rooms/{room}/kick"),
    ("GET", "/metrics"),
    ("GET", "/panel/{room}"),
];

/// Routes of the core router that the document does not describe, and where they are described.
const ELSEWHERE: [(&str, &str); 3] = [
    ("/v1/ws", "the WebSocket upgrade: protocol/README.md"),
    (
        "/panel/assets/panel.css",
        "the panel page's stylesheet, linked by the page",
    ),
    (
        "/panel/assets/panel.js",
        "the panel page's script, linked by the page",
    ),
];

/// The fixture room (a native room the test's sockets create by joining).
const ROOM: &str = "r1";

/// An answer: status, media type (`Content-Type` without parameters), body text.
struct Answer {
    status: u16,
    media: String,
    text: String,
}

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    admin: bool,
    body: Option<&Value>,
) -> Answer {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut r = s.http.request(m, s.url(path));
    if admin {
        r = r.bearer_auth(ADMIN);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = tokio::time::timeout(READ_TIMEOUT, r.send())
        .await
        .expect("an answer in time")
        .expect("request");
    let status = resp.status().as_u16();
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_owned();
    let text = resp.text().await.expect("body");
    Answer {
        status,
        media,
        text,
    }
}

/// Checks `a` against the document's description of `method template`.
fn check(doc: &Doc, method: &str, template: &str, a: &Answer) {
    let what = format!("{method} {template} → {}", a.status);
    let statuses = doc.statuses(method, template);
    let response = doc
        .response(method, template, a.status)
        .unwrap_or_else(|| panic!("{what}: the document lists {statuses:?}; body {}", a.text));
    let media = doc.media_types(response);
    if media.is_empty() {
        assert_eq!(a.text, "", "{what}: no content documented");
        return;
    }
    assert!(
        media.contains(&a.media),
        "{what}: {:?} is not one of {media:?}",
        a.media
    );
    match doc.json_schema(method, template, a.status) {
        Some(schema) if a.media == "application/json" => {
            let body: Value = serde_json::from_str(&a.text)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", a.text));
            assert_conforms(doc, schema, &body, &what);
            let extra = doc.undocumented(schema, &body);
            assert!(
                extra.is_empty(),
                "{what}: undocumented properties {extra:?} in {body}"
            );
        }
        _ => assert!(!a.text.is_empty(), "{what}: an empty {} body", a.media),
    }
}

/// Who may call an operation: open (no credentials), the admin token, or either.
fn access(doc: &Doc, method: &str, template: &str) -> (bool, bool) {
    let op = doc.operation(method, template);
    let reqs = op
        .get("security")
        .unwrap_or(&doc.0["security"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    let open = reqs.is_empty()
        || reqs
            .iter()
            .any(|r| r.as_object().is_some_and(|m| m.is_empty()));
    let admin = reqs.iter().any(|r| r.get("admin").is_some());
    (open, admin)
}

/// A valid request for each documented operation, on [`ROOM`] (members alice, bob, carol). An
/// operation without one here fails the test: a newly documented operation needs a fixture.
fn fixture(method: &str, template: &str) -> (String, Option<Value>) {
    let path = template.replace("{room}", ROOM);
    let body = match (method, template) {
        ("GET", "/healthz" | "/v1/rooms" | "/v1/rooms/{room}" | "/metrics" | "/panel/{room}") => {
            None
        }
        ("POST", "/v1/rooms/{room}/leave") => Some(json!({"members": ["carol"], "reason": "left"})),
        ("POST", "/v1/rooms/{room}/kick") => Some(json!({"member": "bob"})),
        _ => panic!("no fixture for {method} {template}: add one"),
    };
    (path, body)
}

/// Every documented operation, called as documented, answers as documented; a request without
/// the token where one is needed is a documented 401, and the room's sockets see the changes.
#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let doc = doc();
    let s = start().await;
    let (mut alice, _) = s.joined("alice", ROOM).await;
    let (_bob, _) = s.joined("bob", ROOM).await;
    let (_carol, _) = s.joined("carol", ROOM).await;
    alice.drain().await;
    let ops = doc.operations();
    assert!(ops.len() >= OPERATOR_ROUTES.len());
    for (m, t) in &ops {
        let (path, body) = fixture(m, t);
        if let (Some(b), Some(schema)) = (&body, doc.request_schema(m, t)) {
            assert_conforms(&doc, schema, b, &format!("the test's {m} {t} request"));
        }
        let (open, admin) = access(&doc, m, t);
        assert!(open || admin, "{m} {t}: no usable security requirement");
        let bare = send(&s, m, &path, false, body.as_ref()).await;
        check(&doc, m, t, &bare);
        if open {
            assert!((200..300).contains(&bare.status), "{m} {t}: {}", bare.text);
        } else {
            assert_eq!(bare.status, 401, "{m} {t} without the token");
        }
        if admin {
            let a = send(&s, m, &path, true, body.as_ref()).await;
            check(&doc, m, t, &a);
            assert!((200..300).contains(&a.status), "{m} {t}: {}", a.text);
        }
    }
    let ev = alice.expect("left").await;
    assert_eq!(
        (&ev["members"], &ev["reason"]),
        (&json!(["carol"]), &json!("left"))
    );
    let ev = alice.expect("left").await;
    assert_eq!(
        (&ev["members"], &ev["reason"]),
        (&json!(["bob"]), &json!("kick"))
    );
}

/// Refusals are documented too: an unknown room, a bad body, a name no room can have.
#[tokio::test]
async fn refusals_answer_as_documented() {
    let doc = doc();
    let s = start().await;
    let (_alice, _) = s.joined("alice", ROOM).await;
    for (m, t) in doc.operations() {
        if !t.contains("{room}") {
            continue;
        }
        let (path, body) = fixture(&m, &t);
        let path = path.replace(ROOM, "no-such-room");
        let a = send(&s, &m, &path, true, body.as_ref()).await;
        check(&doc, &m, &t, &a);
        let want = if t.starts_with("/panel/") { 200 } else { 404 };
        assert_eq!(a.status, want, "{m} {t} for an unknown room: {}", a.text);
    }
    for (t, body) in [
        ("/v1/rooms/{room}/leave", json!({"members": []})),
        (
            "/v1/rooms/{room}/leave",
            json!({"members": ["alice"], "reason": "kick"}),
        ),
        ("/v1/rooms/{room}/kick", json!({"who": "alice"})),
    ] {
        let a = send(&s, "POST", &t.replace("{room}", ROOM), true, Some(&body)).await;
        check(&doc, "POST", t, &a);
        assert_eq!(a.status, 400, "{t} {body}: {}", a.text);
    }
    let a = send(&s, "GET", "/panel/bad%20name", false, None).await;
    check(&doc, "GET", "/panel/{room}", &a);
    assert_eq!((a.status, a.media.as_str()), (400, "text/plain"));
}

/// With `metrics_require_admin`, `/metrics` answers the documented 401 without the token and
/// the OpenMetrics text with it.
#[tokio::test]
async fn metrics_behind_the_admin_switch_answer_as_documented() {
    let doc = doc();
    let s = start_with(|f| f.metrics_require_admin = true).await;
    let bare = send(&s, "GET", "/metrics", false, None).await;
    check(&doc, "GET", "/metrics", &bare);
    assert_eq!(bare.status, 401);
    let a = send(&s, "GET", "/metrics", true, None).await;
    check(&doc, "GET", "/metrics", &a);
    assert_eq!(
        (a.status, a.media.as_str()),
        (200, "application/openmetrics-text")
    );
    assert!(a.text.trim_end().ends_with("# EOF"));
}

/// The routes a router source file declares, as (`METHOD`, path).
fn declared_routes(file: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    for chunk in text.split(".route(").skip(1) {
        let route = chunk.split('"').nth(1).expect("a path literal").to_owned();
        // The route call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = chunk
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(chunk.len(), |(i, _)| i);
        let args = &chunk[..end];
        for m in METHODS {
            let called = args.match_indices(&format!("{m}(")).any(|(i, _)| {
                let before = if i == 0 { b' ' } else { args.as_bytes()[i - 1] };
                !(before.is_ascii_alphanumeric() || before == b'_')
            });
            if called {
                out.push((m.to_uppercase(), route.clone()));
            }
        }
    }
    out
}

/// Each operator route is in the document, and every route the core router and the panel
/// declare is documented here or listed in [`ELSEWHERE`].
#[test]
fn the_operator_surface_is_documented() {
    let doc = doc();
    let documented = doc.operations();
    let has = |m: &str, p: &str| documented.iter().any(|(dm, dp)| dm == m && dp == p);
    for (m, p) in OPERATOR_ROUTES {
        assert!(has(m, p), "{m} {p} is not in protocol/openapi.yaml");
    }
    let mut declared = declared_routes("src/http/mod.rs");
    declared.extend(declared_routes("src/panel/mod.rs"));
    for (m, p) in OPERATOR_ROUTES {
        assert!(
            declared.iter().any(|(dm, dp)| dm == m && dp == p),
            "the route reader missed {m} {p}: {declared:?}"
        );
    }
    for (m, p) in &declared {
        assert!(
            has(m, p) || ELSEWHERE.iter().any(|(e, _)| e == p),
            "{m} {p} is served but neither in protocol/openapi.yaml nor in ELSEWHERE"
        );
    }
    for (p, _) in ELSEWHERE {
        assert!(
            declared.iter().any(|(_, dp)| dp == p),
            "{p} is no longer a route"
        );
    }
}
