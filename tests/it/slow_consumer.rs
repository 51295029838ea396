//! A socket that stops reading: it is closed with 4008, the close frame reaches it once it reads
//! again (past everything already written to it), and the slow-consumer counter counts it once.

use std::time::Duration;

use crate::support::{start_with, TestServer};
use serde_json::json;

/// The value of `rollcall_slow_consumer_closes_total` in one scrape.
async fn slow_closes(s: &TestServer) -> u64 {
    let v = s.metric("rollcall_slow_consumer_closes_total", "").await;
    v.expect("the slow-consumer counter is exposed") as u64
}

/// A client that stops reading while a publisher floods its room is closed for lag; when it reads
/// again (after longer than the old one-second close bound) it finds close 4008 after the data,
/// not a dropped connection (1006), and the counter rose by exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_gets_4008_and_is_counted_once() {
    let s = start_with(|f| {
        f.outbox_capacity = 8;
        f.slow_consumer_secs = 0.2;
    })
    .await;
    let (mut stalled, _) = s.joined("stalled", "flood").await;
    let (mut publisher, _) = s.joined("publisher", "flood").await;
    let blob = "x".repeat(3000);

    // Flood until the stalled socket's kernel buffers and outbox are full and it is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0u64;
    loop {
        let msgs = publisher
            .request(json!({"type": "state", "room": "flood", "state": {"n": n, "blob": blob}}))
            .await;
        assert_eq!(msgs.last().map(|m| m["type"].clone()), Some(json!("ack")));
        n += 1;
        if n.is_multiple_of(50) && slow_closes(&s).await > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket was never closed"
        );
    }

    // The reader stays away a while, then reads everything up to the close frame.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let code = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            use futures::StreamExt;
            use tokio_tungstenite::tungstenite::Message;
            match stalled.ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return 1006,
            }
        }
    })
    .await
    .expect("the stalled socket reads to its end in time");
    assert_eq!(
        code, 4008,
        "closed as a slow consumer, with the close frame"
    );
    assert_eq!(slow_closes(&s).await, 1, "one socket, one count");
}
