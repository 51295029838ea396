//! The shutdown drain (issue 9, finding 6): nothing resumes this process's rooms, so on shutdown
//! every webhook receiver hears that they are gone (`room_closed`, reason `shutdown`, listing the
//! members still inside) before the process exits, and what cannot be delivered within
//! `shutdown_timeout_secs` is counted.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::webhook::*;
use crate::support::*;
use serde_json::{json, Value};

/// Two native rooms with members (kept through their reconnect grace) and an empty one: the
/// receiver gets one `room_closed` `shutdown` per non-empty room naming its members, nothing for
/// the empty one, and the process stops within its bound.
#[tokio::test]
async fn shutdown_tells_webhook_receivers_every_room_is_gone() {
    let mut rx = receiver(vec![], Answer::Status(200), 0).await;
    let url = rx.url();
    let mut s = start_with(move |f| {
        f.webhooks = vec![endpoint(url)];
        f.grace_secs = 30.0;
        f.shutdown_timeout_secs = 5.0;
    })
    .await;
    let (_a, _) = s.joined("ann", "sd1").await;
    let (_b, _) = s.joined("ben", "sd1").await;
    let (_c, _) = s.joined("cat", "sd2").await;
    let (mut e, _) = s.joined("eve", "sd3").await;
    e.request(json!({"type": "leave", "room": "sd3"})).await;
    // joined ×4, host_changed ×3, left ×1 so far.
    for _ in 0..8 {
        rx.next().await;
    }
    let running = s.running.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.shutdown())
        .await
        .expect("stops within its bound")
        .unwrap();
    let mut closed: HashMap<String, Value> = HashMap::new();
    for _ in 0..2 {
        let hit = rx.next().await;
        verify(&hit);
        assert_eq!(hit.event(), "room_closed", "{}", hit.json);
        let d = &hit.json["data"];
        assert_eq!(d["reason"], "shutdown");
        closed.insert(d["room_id"].as_str().unwrap().to_owned(), d.clone());
    }
    assert_eq!(closed["sd1"]["participants"], json!(["ann", "ben"]));
    assert_eq!(closed["sd2"]["participants"], json!(["cat"]));
    rx.silent(Duration::from_millis(300)).await;
}

/// A receiver that never answers in time: shutdown still ends within `shutdown_timeout_secs`,
/// and the undelivered `room_closed` is counted as dropped with reason `shutdown`.
#[tokio::test]
async fn undeliverable_webhooks_at_shutdown_are_counted() {
    let rx = receiver(vec![], Answer::Hang, 0).await;
    let url = rx.url();
    let mut s = start_with(move |f| {
        f.webhooks = vec![rollcall::config::WebhookConfig {
            timeout_secs: 5.0,
            ..endpoint(url)
        }];
        f.grace_secs = 30.0;
        f.shutdown_timeout_secs = 0.5;
    })
    .await;
    let (_a, _) = s.joined("ann", "sd4").await;
    let running = s.running.take().unwrap();
    let app = running.app.clone();
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), running.shutdown())
        .await
        .expect("stops within its bound")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = app.metrics.render().unwrap();
    let lost = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"rollcall_webhook_dropped_total{endpoint="test-hook",reason="shutdown"} "#,
            )
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no shutdown drop series in\n{text}"));
    assert!(lost >= 1.0, "{lost}");
}
