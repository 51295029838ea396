//! Several real `rollcall` processes on one Redis (issue 12, `protocol/cluster.md`): [`Cluster`]
//! starts a [`RedisServer`] and N nodes (`--ephemeral --redis-url <url> --node-id n<i>
//! --node-ttl-secs 2`, test secrets, no reconnect grace unless asked), numbered from 1 like their ids, and
//! SIGKILLs a node on demand; everything is killed and reaped on drop. [`Peer`] is a socket whose
//! every text frame is recorded in the background (raw text and JSON) while the test keeps
//! sending on it. [`fold`] replays what a socket saw of a room (panels and events) into the
//! member list it implies, asserting the ordering rules on the way (`protocol/README.md`,
//! "Ordering and versions").

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::durable::{self, eventually, token};
use crate::support::process::{Options, Rollcall};
use crate::support::redis::RedisServer;
use crate::support::{ADMIN, SECRET};

/// `--node-ttl-secs` of every test node: a dead node's members leave within TTL + one sweep.
pub const NODE_TTL_SECS: u64 = 2;
/// How long a request on a [`Peer`] may wait for its reply (a command may cross nodes).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis and the nodes sharing it.
pub struct Cluster {
    pub redis: RedisServer,
    /// Node `i` (1-based) at index `i - 1`; `None` once killed.
    nodes: Vec<Option<Rollcall>>,
    addrs: Vec<String>,
}

/// The options of node `n<i>` on `redis_url`, with a reconnect grace of `grace_secs`.
pub fn node_options(redis_url: &str, i: usize, grace_secs: f64) -> Options {
    let mut o = Options::default();
    for a in [
        "--ephemeral",
        "--redis-url",
        redis_url,
        "--node-id",
        &format!("n{i}"),
        "--node-ttl-secs",
        &NODE_TTL_SECS.to_string(),
        "--jwt-secret",
        SECRET,
        "--admin-token",
        ADMIN,
        "--grace-secs",
        &grace_secs.to_string(),
    ] {
        o = o.arg(a);
    }
    o
}

impl Cluster {
    /// A fresh Redis and `n` nodes on it; `None` (after a `SKIPPED:` line) without
    /// `redis-server`, unless `ROLLCALL_REQUIRE_REDIS=1`.
    pub fn start(test: &str, n: usize) -> Option<Cluster> {
        Self::start_with_grace(test, n, 0.0)
    }
    /// [`Self::start`] with nodes whose reconnect grace is `grace_secs`.
    pub fn start_with_grace(test: &str, n: usize, grace_secs: f64) -> Option<Cluster> {
        Self::start_with(test, n, grace_secs, &[])
    }
    /// [`Self::start_with_grace`] with `extra` arguments for every node.
    pub fn start_with(test: &str, n: usize, grace_secs: f64, extra: &[&str]) -> Option<Cluster> {
        let redis = RedisServer::start(test)?;
        let url = redis.url();
        let nodes: Vec<Rollcall> = (1..=n)
            .map(|i| {
                let o = extra
                    .iter()
                    .fold(node_options(&url, i, grace_secs), |o, a| o.arg(*a));
                Rollcall::start(o)
            })
            .collect();
        let addrs = nodes.iter().map(|p| p.addr.clone()).collect();
        Some(Cluster {
            redis,
            nodes: nodes.into_iter().map(Some).collect(),
            addrs,
        })
    }
    /// `ws://<addr>/v1/ws` of node `i` (still known after a kill).
    pub fn ws(&self, i: usize) -> String {
        format!("ws://{}/v1/ws", self.addrs[i - 1])
    }
    /// `http://<addr>` of node `i`.
    pub fn http(&self, i: usize) -> String {
        format!("http://{}", self.addrs[i - 1])
    }
    /// SIGKILLs node `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i - 1].take() {
            p.sigkill();
        }
    }
    /// Sends `signal` (`STOP`, `CONT`, `TERM` ...) to node `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        let p = self.nodes[i - 1].as_ref().expect("the node runs");
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &p.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "SIG{signal} delivered to node {i}");
    }
    /// Waits up to `bound` for node `i` to exit (after a SIGTERM) and reaps it; its exit status.
    pub fn wait_exit(&mut self, i: usize, bound: Duration) -> Option<std::process::ExitStatus> {
        let node = self.nodes[i - 1].as_mut()?;
        // The recording tasks keep running on the other worker meanwhile.
        let status = tokio::task::block_in_place(|| node.wait_exit(bound))?;
        self.nodes[i - 1] = None;
        Some(status)
    }
    /// Every running node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
            .map(|(i, p)| format!("---- n{} ----\n{}{}", i + 1, p.logs(), p.stderr()))
            .collect()
    }
    /// A [`Peer`] for member `sub` on node `i`.
    pub async fn peer(&self, i: usize, sub: &str) -> Peer {
        Peer::connect(&self.ws(i), sub).await
    }
    /// `GET <path>` on node `i` (no credentials), bounded; `None` when no answer came.
    pub async fn get(&self, i: usize, path: &str) -> Option<(u16, Value)> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let r = http
            .get(format!("{}{path}", self.http(i)))
            .send()
            .await
            .ok()?;
        let st = r.status().as_u16();
        Some((st, r.json().await.unwrap_or(Value::Null)))
    }
}

/// Everything a socket received: each text frame raw and parsed, then how it ended.
#[derive(Debug, Default, Clone)]
pub struct Tape {
    pub raw: Vec<String>,
    pub msgs: Vec<Value>,
    /// The close code (1005 without one, 1006 for a broken connection); `None` while open.
    pub close: Option<u16>,
}

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A socket recorded in the background; requests go out on it while the tape runs.
pub struct Peer {
    pub sub: String,
    sink: Sink,
    tape: Arc<Mutex<Tape>>,
}

impl Peer {
    /// Connects to `ws_url` as `sub` (native token signed with [`SECRET`]) and starts recording.
    pub async fn connect(ws_url: &str, sub: &str) -> Peer {
        Self::try_connect(ws_url, sub)
            .await
            .unwrap_or_else(|| panic!("{sub}: the socket to {ws_url} connects"))
    }
    /// [`Self::connect`], `None` if refused or not in time ([`durable::REST_TIMEOUT`]).
    pub async fn try_connect(ws_url: &str, sub: &str) -> Option<Peer> {
        let c = durable::try_connect(ws_url, &token(sub)).await?;
        let (sink, mut stream) = c.ws.split();
        let tape = Arc::new(Mutex::new(Tape::default()));
        let out = tape.clone();
        tokio::spawn(async move {
            loop {
                let code = match stream.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        let mut tape = out.lock().unwrap();
                        tape.raw.push(t.as_str().to_owned());
                        tape.msgs.push(v);
                        continue;
                    }
                    Some(Ok(Message::Close(Some(f)))) => u16::from(f.code),
                    Some(Ok(Message::Close(None))) => 1005,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => 1006,
                };
                out.lock().unwrap().close = Some(code);
                return;
            }
        });
        Some(Peer {
            sub: sub.to_owned(),
            sink,
            tape,
        })
    }
    /// A copy of what it received so far.
    pub fn tape(&self) -> Tape {
        self.tape.lock().unwrap().clone()
    }
    /// The parsed messages so far.
    pub fn msgs(&self) -> Vec<Value> {
        self.tape.lock().unwrap().msgs.clone()
    }
    /// Sends `v`; false if the socket is gone.
    pub async fn send(&mut self, v: Value) -> bool {
        self.sink.send(Message::text(v.to_string())).await.is_ok()
    }
    /// Sends `req` with a fresh `ref` and waits up to `bound` for its reply (`ack`, `error` or
    /// `pong`); `None` when none came.
    pub async fn try_request(&mut self, mut req: Value, bound: Duration) -> Option<Value> {
        let r = format!("{}-{}", self.sub, next_ref());
        req["ref"] = json!(r);
        if !self.send(req).await {
            return None;
        }
        let mut reply = None;
        eventually(bound, || {
            reply = self
                .tape
                .lock()
                .unwrap()
                .msgs
                .iter()
                .find(|m| m["ref"] == json!(r))
                .cloned();
            std::future::ready(reply.is_some())
        })
        .await;
        reply
    }
    /// [`Self::try_request`] bounded by [`REPLY_TIMEOUT`]; panics without a reply.
    pub async fn request(&mut self, req: Value) -> Value {
        let what = req.to_string();
        self.try_request(req, REPLY_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{}: no reply to {what} in time", self.sub))
    }
    /// A request that must be acknowledged.
    pub async fn ok(&mut self, req: Value) -> Value {
        let reply = self.request(req.clone()).await;
        assert_eq!(reply["type"], "ack", "{}: {req} refused: {reply}", self.sub);
        reply
    }
    pub async fn join(&mut self, room: &str) -> Value {
        self.ok(json!({"type": "join", "room": room})).await
    }
    pub async fn watch(&mut self, room: &str) -> Value {
        self.ok(json!({"type": "watch", "room": room})).await
    }
    /// Closes the socket cleanly (a close frame, 1000), as a client going away does.
    pub async fn close(mut self) {
        let _ = self.sink.close().await; // already gone: nothing to close
    }
    /// The close code once the socket has closed, waiting up to `bound`.
    pub async fn closed_with(&self, bound: Duration) -> Option<u16> {
        eventually(bound, || std::future::ready(self.tape().close.is_some())).await;
        self.tape().close
    }
    /// Waits up to `bound` until some received message satisfies `pred`.
    pub async fn saw(&self, bound: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        eventually(bound, || {
            std::future::ready(self.tape.lock().unwrap().msgs.iter().any(&pred))
        })
        .await
    }
    /// Waits up to `bound` until its view of `room` ([`fold`]) lists exactly `members`.
    pub async fn sees(&self, bound: Duration, room: &str, members: &[&str]) -> bool {
        let want: BTreeSet<String> = members.iter().map(|s| s.to_string()).collect();
        eventually(bound, || {
            let msgs = self.msgs();
            std::future::ready(fold(&msgs, room).is_some_and(|v| v.members == want))
        })
        .await
    }
}

fn next_ref() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What a socket's messages imply about one room.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub epoch: String,
    pub version: u64,
    pub members: BTreeSet<String>,
    /// How many panels it took (the first, then resyncs and new epochs).
    pub panels: usize,
}

/// The versioned messages of `room` among `msgs`, in order.
pub fn versioned<'a>(msgs: &'a [Value], room: &str) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| m["room"] == room && durable::is_versioned(m))
        .collect()
}

/// Replays `msgs` for `room` from its first `panel`: a panel replaces the view; an event must
/// carry the view's epoch and version + 1 (panics otherwise, naming the message) and is applied
/// (`joined` adds its rows, `left` removes its ids). `None` before the first panel.
pub fn fold(msgs: &[Value], room: &str) -> Option<View> {
    let mut view: Option<View> = None;
    for m in versioned(msgs, room) {
        let version = m["version"].as_u64().expect("a numeric version");
        let epoch = durable::epoch(m);
        if m["type"] == "panel" {
            let panels = view.as_ref().map_or(0, |v| v.panels) + 1;
            view = Some(View {
                epoch,
                version,
                members: crate::support::ids(m).into_iter().collect(),
                panels,
            });
            continue;
        }
        let Some(v) = view.as_mut() else {
            panic!("an event before the first panel: {m}");
        };
        assert_eq!(v.epoch, epoch, "a new epoch must start with a panel: {m}");
        assert_eq!(v.version + 1, version, "versions are contiguous: {m}");
        v.version = version;
        match m["type"].as_str() {
            Some("joined") => {
                for row in m["members"].as_array().expect("joined rows") {
                    v.members
                        .insert(row["id"].as_str().unwrap_or("").to_owned());
                }
            }
            Some("left") => {
                for id in m["members"].as_array().expect("left ids") {
                    v.members.remove(id.as_str().unwrap_or(""));
                }
            }
            _ => {}
        }
    }
    view
}

/// The `left` events of `room` among `msgs` that name `member`.
pub fn lefts_of<'a>(msgs: &'a [Value], room: &str, member: &str) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| m["type"] == "left" && m["room"] == room)
        .filter(|m| {
            m["members"]
                .as_array()
                .is_some_and(|a| a.iter().any(|id| id == member))
        })
        .collect()
}
