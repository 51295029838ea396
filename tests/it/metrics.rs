//! `GET /metrics`: the exposition is well-formed OpenMetrics text, and every family counts what
//! happened on a real server (sockets, rooms, members, events by type and reason, fan-out,
//! REST requests by route, tasks), with optional admin protection.

use std::time::Duration;

use crate::support::*;
use rollcall::ids::RoomId;
use rollcall::room::{RoomKind, RoomSpec};
use serde_json::json;

/// One parsed sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the exposition's sample lines (label values may contain braces, commas, escapes).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("`name value`");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("a number in {line:?}")),
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut val = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => val.push(chars.next().unwrap_or('\\')),
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    labels.push((key, val));
                }
                (name.to_owned(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the sample `name` whose labels include all of `want`.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    parse(text)
        .into_iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

async fn scrape(s: &TestServer) -> String {
    s.metrics().await
}

/// Joins, every kind of leave and REST calls show up in the right series.
#[tokio::test]
async fn metrics_count_what_happened() {
    let s = start().await;
    let (mut alice, _) = s.joined("alice", "m1").await;
    let (mut bob, _) = s.joined("bob", "m1").await;
    let (mut carol, _) = s.joined("carol", "m1").await;
    alice.drain().await;

    let text = scrape(&s).await;
    assert_eq!(value(&text, "rollcall_members", &[]), Some(3.0));
    assert_eq!(value(&text, "rollcall_sockets", &[]), Some(3.0));
    assert_eq!(value(&text, "rollcall_rooms", &[]), Some(1.0));
    // Three sockets and the scraper's own connection; nothing refused or timed out (the
    // connection families under attack: tests/it/hostile_conn.rs).
    let conns = value(&text, "rollcall_connections", &[]).unwrap_or(0.0);
    assert!((3.0..=5.0).contains(&conns), "{conns}");
    let refused = [("reason", "at_capacity")];
    assert_eq!(
        value(&text, "rollcall_connections_refused_total", &refused),
        Some(0.0)
    );
    let header = [("phase", "header")];
    assert_eq!(
        value(&text, "rollcall_connection_deadlines_total", &header),
        Some(0.0)
    );

    bob.drain().await;
    let msgs = bob.request(json!({"type": "leave", "room": "m1"})).await;
    assert_eq!(msgs.last().unwrap()["type"], "ack", "{msgs:?}");
    let (st, _) = s
        .admin_post("/v1/rooms/m1/leave", json!({"members": ["alice"]}))
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .admin_post("/v1/rooms/m1/kick", json!({"member": "carol"}))
        .await;
    assert_eq!(st, 200);
    carol.drain().await;
    let r = s.http.get(s.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.running.as_ref().unwrap().app.stats.task("PENDING");
    s.running.as_ref().unwrap().app.stats.task("SUCCESS");

    let text = scrape(&s).await;
    let ev = |t: &str| value(&text, "rollcall_events_total", &[("type", t)]);
    let left = |r: &str| {
        value(
            &text,
            "rollcall_events_total",
            &[("type", "left"), ("reason", r)],
        )
    };
    assert_eq!(ev("joined"), Some(3.0));
    assert_eq!(left("leave"), Some(1.0));
    assert_eq!(left("left"), Some(1.0));
    assert_eq!(left("kick"), Some(1.0));
    assert_eq!(left("timeout"), Some(0.0));
    assert_eq!(value(&text, "rollcall_members", &[]), Some(0.0));
    // Joins reach the sockets already there (0 + 1 + 2), leaves reach the room's sockets
    // including the leaver's own (3 + 2 + 1).
    assert_eq!(
        value(&text, "rollcall_deliveries_total", &[]),
        Some(9.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "rollcall_fanout_seconds_count", &[]),
        Some(6.0)
    );
    assert_eq!(
        value(&text, "rollcall_fanout_seconds_bucket", &[("le", "+Inf")]),
        Some(6.0)
    );
    assert!(value(&text, "rollcall_fanout_seconds_sum", &[]).is_some());
    assert_eq!(value(&text, "rollcall_lagging_subscribers", &[]), Some(0.0));
    assert_eq!(value(&text, "rollcall_resyncs_total", &[]), Some(0.0));
    assert_eq!(
        value(&text, "rollcall_slow_consumer_closes_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "rollcall_sockets_opened_total", &[]),
        Some(3.0)
    );
    let req = |route: &str, method: &str, status: &str| {
        value(
            &text,
            "rollcall_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(req("/v1/rooms/{room}/leave", "POST", "200"), Some(1.0));
    assert_eq!(req("/v1/rooms/{room}/kick", "POST", "200"), Some(1.0));
    assert_eq!(req("/v1/ws", "GET", "101"), Some(3.0));
    assert_eq!(req("unmatched", "GET", "404"), Some(1.0));
    assert!(value(
        &text,
        "rollcall_http_request_duration_seconds_count",
        &[("route", "/v1/rooms/{room}/kick")]
    )
    .is_some());
    assert_eq!(
        value(&text, "rollcall_tasks_total", &[("state", "pending")]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "rollcall_tasks_total", &[("state", "success")]),
        Some(1.0)
    );
    drop((alice, bob));
}

/// The members gauge forgets the members of a room that closes with people in it.
#[tokio::test]
async fn closing_a_room_releases_its_members() {
    let s = start().await;
    let app = s.running.as_ref().unwrap().app.clone();
    let id = RoomId::from("closing-room");
    let h = app
        .registry
        .create(
            &id,
            RoomSpec {
                private: serde_json::Value::Null,
                kind: RoomKind::Native,
                max_members: 10,
                linger: None,
                attrs: Default::default(),
            },
        )
        .expect("new room");
    let (mut a, _) = s.joined("a", id.as_str()).await;
    let (_b, _) = s.joined("b", id.as_str()).await;
    assert_eq!(value(&scrape(&s).await, "rollcall_members", &[]), Some(2.0));
    h.close("ended").await.expect("closes");
    a.drain().await;
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        let text = scrape(&s).await;
        if value(&text, "rollcall_members", &[]) == Some(0.0)
            && value(&text, "rollcall_rooms", &[]) == Some(0.0)
        {
            assert_eq!(
                value(&text, "rollcall_events_total", &[("type", "closed")]),
                Some(1.0)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members gauge stuck: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `metrics_require_admin`, a scrape needs the admin bearer token.
#[tokio::test]
async fn metrics_can_require_the_admin_token() {
    let s = start_with(|f| f.metrics_require_admin = true).await;
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("rollcall_sockets"));
}
