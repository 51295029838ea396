//! Shared helpers of the webhook tests: a scripted HTTP receiver on 127.0.0.1:0 that records
//! every request, fast-retry endpoint settings, signature checks, metric polling, and a video
//! room with phone callers as the video façade would create it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use rollcall::config::WebhookConfig;
use rollcall::ids::{MemberId, RoomId};
use rollcall::protocol::MemberKind;
use rollcall::room::{NewMember, RoomHandle, RoomKind, RoomSpec};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

pub const HOOK_SECRET: &str = "whsec-0123456789abcdef";

/// What the receiver answers to one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Sleep longer than the endpoint's timeout, then 200 (too late).
    Hang,
}

/// One request the receiver got.
#[derive(Debug)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
    /// What it answered (0: it hung past the client's timeout).
    pub status: u16,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn event(&self) -> &str {
        self.json["event"].as_str().unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Script {
    pub answers: Arc<Mutex<VecDeque<Answer>>>,
    /// Answer when the script is empty.
    pub default: Answer,
    /// Fail (500) every n-th request (0 = never), after the script.
    pub fail_every: usize,
    pub seen: Arc<Mutex<usize>>,
    pub hits: mpsc::Sender<Hit>,
    /// While set, every request is answered 503 (after the script).
    pub refusing: Arc<AtomicBool>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub hits: mpsc::Receiver<Hit>,
    refusing: Arc<AtomicBool>,
}

impl Receiver {
    /// From now on answers every request 503 (`true`), or as scripted again (`false`).
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
    /// The next request, within the read timeout.
    pub async fn next(&mut self) -> Hit {
        tokio::time::timeout(READ_TIMEOUT, self.hits.recv())
            .await
            .expect("a webhook request in time")
            .expect("receiver alive")
    }
    /// The next request answered with a 2xx.
    pub async fn next_ok(&mut self) -> Hit {
        loop {
            let h = self.next().await;
            if (200..300).contains(&h.status) {
                return h;
            }
        }
    }
    /// Asserts no request arrives for `wait`.
    pub async fn silent(&mut self, wait: Duration) {
        if let Ok(Some(h)) = tokio::time::timeout(wait, self.hits.recv()).await {
            panic!("unexpected webhook: {}", h.json);
        }
    }
}

pub async fn hook(State(s): State<Script>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answer = {
        let scripted = s.answers.lock().unwrap().pop_front();
        let mut seen = s.seen.lock().unwrap();
        *seen += 1;
        match scripted {
            Some(a) => a,
            None if s.refusing.load(Ordering::SeqCst) => Answer::Status(503),
            None if s.fail_every > 0 && *seen % s.fail_every == 0 => Answer::Status(500),
            None => s.default,
        }
    };
    let status = match answer {
        Answer::Status(c) => c,
        Answer::Hang => 0,
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Recorded on arrival, so records follow the order requests came in. The test may have
    // stopped listening; then nobody needs the record.
    let _ = s
        .hits
        .send(Hit {
            headers,
            body,
            json,
            status,
        })
        .await;
    if status == 0 {
        tokio::time::sleep(Duration::from_millis(2500)).await; // past the client's timeout
        return StatusCode::OK;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub async fn receiver(script: Vec<Answer>, default: Answer, fail_every: usize) -> Receiver {
    let (tx, rx) = mpsc::channel(1024);
    let refusing = Arc::new(AtomicBool::new(false));
    let state = Script {
        answers: Arc::new(Mutex::new(script.into())),
        default,
        fail_every,
        seen: Arc::new(Mutex::new(0)),
        hits: tx,
        refusing: refusing.clone(),
    };
    let app = Router::new().route("/hook", post(hook)).with_state(state);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        // Ends with the test's runtime.
        let _ = axum::serve(tcp, app).await;
    });
    Receiver {
        addr,
        hits: rx,
        refusing,
    }
}

/// An endpoint with fast retries, for tests.
pub fn endpoint(url: String) -> WebhookConfig {
    WebhookConfig {
        name: Some("test-hook".into()),
        timeout_secs: 1.0,
        backoff_initial_secs: 0.02,
        backoff_max_secs: 0.1,
        max_attempts: 0,
        ..WebhookConfig::new(url, HOOK_SECRET)
    }
}

pub fn verify(hit: &Hit) {
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&hit.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hit.header("x-rollcall-signature"), want, "signature");
}

/// The value of `name` with `labels` in a fresh scrape (see [`TestServer::metric`]).
pub async fn metric(s: &TestServer, name: &str, labels: &str) -> Option<f64> {
    s.metric(name, labels).await
}

/// Polls a metric until it equals `want` (the workers count asynchronously).
pub async fn metric_becomes(s: &TestServer, name: &str, labels: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        let v = metric(s, name, labels).await;
        if v == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}{labels} is {v:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A video room as the video façade would create it, with phone callers added the way its
/// `phone-participants/joined` call does.
pub async fn video_room_with_phones(
    s: &TestServer,
    phones: &[(&str, &str)],
) -> (RoomId, RoomHandle) {
    let app = &s.running.as_ref().unwrap().app;
    let id = RoomId::from(format!("video:{}", uuid::Uuid::new_v4()));
    let h = app
        .registry
        .create(
            &id,
            RoomSpec {
                private: serde_json::Value::Null,
                kind: RoomKind::Video,
                max_members: 100,
                linger: None,
                attrs: Default::default(),
            },
        )
        .expect("a new room");
    h.add_members(
        phones
            .iter()
            .map(|(call, name)| NewMember {
                id: MemberId::from(*call),
                kind: MemberKind::Phone,
                name: Some((*name).into()),
                meta: Value::Null,
            })
            .collect(),
    )
    .await
    .expect("phones added");
    (id, h)
}
