//! Issue 5's "tried as a new user" scenario, end to end on the façade's real REST calls: a video
//! room is created, two phone callers join, one leaves through `phone-participants/left`. The
//! room's panel (a watching socket) loses it at once, `/metrics` counts exactly one `left` event
//! with reason `left`, and the configured webhook receiver gets exactly one `participant_left`.

use std::time::Duration;

use crate::support::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use rollcall::config::WebhookConfig;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const DEV_BASIC: (&str, &str) = ("dev-team", "dev-developer-key");

/// A webhook receiver on 127.0.0.1:0 that hands every JSON body to the test.
async fn receiver() -> (String, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel(64);
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(tx): State<mpsc::Sender<Value>>, body: Bytes| async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let _ = tx.send(v).await; // the test may have finished reading
                    "ok"
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// The value of one sample (name and labels as exposed) in a scrape, 0 if absent.
fn metric(text: &str, sample_name: &str) -> u64 {
    sample(text, sample_name, "").map_or(0, |v| v as u64)
}

/// Two callers in, one out: the panel, `/metrics` and the webhook each see exactly one leave.
#[tokio::test]
async fn a_phone_caller_leaves_and_everyone_hears_it_once() {
    let (hook_url, mut hooks) = receiver().await;
    let s = start_with(move |f| {
        f.webhooks = vec![WebhookConfig::new(hook_url, "whsec-new-user-0123")];
    })
    .await;
    let api = |path: &str| s.url(&format!("/api/v1{path}"));
    let room: Value = s
        .http
        .post(api("/rooms"))
        .basic_auth(DEV_BASIC.0, Some(DEV_BASIC.1))
        .json(&json!({"friendly_url": "standup"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uuid = room["id"].as_str().expect("room id").to_owned();
    let mut panel = s.connect_token(ADMIN).await;
    panel.watch(&format!("video:{uuid}")).await;

    let joined = s
        .http
        .post(api("/rooms/standup/phone-participants/joined"))
        .basic_auth(DEV_BASIC.0, Some(DEV_BASIC.1))
        .json(&json!([
            {"call_id": "call-1", "name": "Ann (phone)"},
            {"call_id": "call-2", "caller_number": "+15550100"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 200);
    let ev = panel.expect("joined").await;
    assert_eq!(ev["members"].as_array().map(Vec::len), Some(2));

    let left = s
        .http
        .post(api("/rooms/standup/phone-participants/left"))
        .basic_auth(DEV_BASIC.0, Some(DEV_BASIC.1))
        .json(&json!(["call-1"]))
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 200);
    assert_eq!(left.text().await.unwrap(), "", "200 with an empty body");
    let ev = panel.expect("left").await;
    assert_eq!(ev["members"], json!(["call-1"]));
    assert_eq!(ev["reason"], "left");
    panel.silent(Duration::from_millis(200)).await;

    let text = s.metrics().await;
    assert_eq!(
        metric(&text, r#"rollcall_events_total{type="left",reason="left"}"#),
        1,
        "{text}"
    );

    // The receiver gets the two joins and exactly one leave (order per room is kept).
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    while events
        .iter()
        .filter(|e: &&Value| e["event"] == "participant_left")
        .count()
        < 1
    {
        let v = tokio::time::timeout_at(deadline, hooks.recv())
            .await
            .expect("webhooks in time")
            .expect("receiver open");
        events.push(v);
    }
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(300), hooks.recv()).await {
        events.push(v);
    }
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let lefts: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "participant_left")
        .collect();
    assert_eq!(lefts.len(), 1, "{names:?}");
    assert_eq!(lefts[0]["data"]["participant_id"], "call-1");
    assert_eq!(lefts[0]["data"]["reason"], "left");
    assert_eq!(
        names.iter().filter(|n| **n == "participant_joined").count(),
        2,
        "{names:?}"
    );
    let last_join = names
        .iter()
        .rposition(|n| *n == "participant_joined")
        .unwrap();
    let first_left = names.iter().position(|n| *n == "participant_left").unwrap();
    assert!(last_join < first_left, "joins before the leave: {names:?}");
}
