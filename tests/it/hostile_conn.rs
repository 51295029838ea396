//! Hostile connections against the real binary (connection counting is process-wide): silent
//! connections, half-sent heads, trickled bodies and idle keep-alive connections are closed by
//! their deadlines; with the connection cap full, `/healthz` still answers, upgrades get 503,
//! refusals are counted in `/metrics`, and the slots come back once the deadline has passed.

use std::time::{Duration, Instant};

use crate::support::process::{Options, Rollcall};
use crate::support::{ADMIN, READ_TIMEOUT, SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the binary with `extra` TOML appended to a test configuration (port 0, known secrets);
/// returns once it logs its address; keeps nothing on disk (the shared process helper: killed on
/// drop).
fn spawn(_name: &str, extra: &str) -> Rollcall {
    Rollcall::start(
        Options::config(format!(
            "jwt_secret = \"{SECRET}\"\nadmin_token = \"{ADMIN}\"\n{extra}"
        ))
        .arg("--ephemeral"),
    )
}

async fn dial(s: &Rollcall) -> TcpStream {
    tokio::time::timeout(READ_TIMEOUT, TcpStream::connect(&s.addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until the server closes the connection; panics if it is still open after
/// `READ_TIMEOUT`. Returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {READ_TIMEOUT:?}; read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request on a fresh connection (`connection: close`); returns the status and body.
async fn get(s: &Rollcall, path: &str) -> (u16, String) {
    let mut c = dial(s).await;
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let text = read_until_closed(&mut c).await;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

const TINY: &str =
    "[deadlines]\nheader_read_secs = 0.3\nbody_read_secs = 0.3\nupgrade_secs = 0.3\n\
                    write_stall_secs = 0.3";

/// A connection that never sends a byte is closed after the header deadline.
#[tokio::test]
async fn silent_connection_is_closed_after_the_header_deadline() {
    let s = spawn("silent", TINY);
    let mut c = dial(&s).await;
    assert_eq!(
        read_until_closed(&mut c).await,
        "",
        "closed without an answer"
    );
}

/// A half-sent request head (a plain request, and an upgrade request) is closed after the header
/// deadline.
#[tokio::test]
async fn half_sent_heads_are_closed_after_the_header_deadline() {
    let s = spawn("half", TINY);
    let mut plain = dial(&s).await;
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut upgrade = dial(&s).await;
    upgrade
        .write_all(
            b"GET /v1/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
              sec-websocket-version: 13\r\n",
        )
        .await
        .unwrap();
    read_until_closed(&mut plain).await;
    read_until_closed(&mut upgrade).await;
}

/// A body trickled slower than the body deadline gets 408 `request_timeout`, and the connection
/// is closed.
#[tokio::test]
async fn trickled_body_gets_408_and_is_closed() {
    let s = spawn("trickle", TINY);
    let mut c = dial(&s).await;
    let head = format!(
        "POST /v1/rooms/r1/leave HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"members\""
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // One more byte every 100 ms, never the whole body, until the server answers.
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
            Err(_) => {
                if c.write_all(b" ").await.is_err() {
                    break;
                }
            }
            Ok(Ok(n)) => {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                break;
            }
            Ok(Err(_)) => break,
        }
    }
    text.push_str(&read_until_closed(&mut c).await);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
}

/// A kept-alive connection that sends nothing after its first answer is closed after the header
/// deadline.
#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let s = spawn("keepalive", TINY);
    let mut c = dial(&s).await;
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until_closed(&mut c).await;
    assert!(text.starts_with("HTTP/1.1 200"), "answered first: {text}");
}

/// A client that pipelines requests and never reads the answers is closed once a write has
/// waited `write_stall_secs` for it, and counted.
#[tokio::test]
async fn client_that_never_reads_its_answers_is_closed() {
    let s = spawn("noread", TINY);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(s.addr.parse().unwrap()).await.unwrap();
    let pipelined = "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(2000);
    tokio::time::timeout(READ_TIMEOUT, c.write_all(pipelined.as_bytes()))
        .await
        .expect("the server takes the requests")
        .unwrap();
    // Read nothing; ask another connection when the stalled one has been counted.
    let end = Instant::now() + READ_TIMEOUT;
    loop {
        let (_, metrics) = get(&s, "/metrics").await;
        if metrics.contains("rollcall_connection_deadlines_total{phase=\"write\"} 1") {
            break;
        }
        assert!(
            Instant::now() < end,
            "not closed for a stalled write:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c);
}

/// With `max_connections` silent attackers holding every slot, `/healthz` and `/metrics` still
/// answer (health reserve) while an upgrade gets 503 `at_capacity`; the refusal is counted in
/// `/metrics`; once the header deadline has closed the attackers, new clients are served again
/// and the closes are counted too.
#[tokio::test]
async fn healthz_answers_at_capacity_and_slots_come_back_after_the_deadline() {
    let s = spawn(
        "cap",
        "max_connections = 3\n[deadlines]\nheader_read_secs = 1.5",
    );
    let mut attackers = Vec::new();
    for _ in 0..3 {
        attackers.push(dial(&s).await);
    }
    // Let the server accept them (they hold the cap until the header deadline).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = get(&s, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let token = rollcall::auth::sign_hs256(SECRET, "carol", None, 3600);
    let url = format!("ws://{}/v1/ws?token={token}", s.addr);
    match tokio::time::timeout(READ_TIMEOUT, tokio_tungstenite::connect_async(url.clone()))
        .await
        .expect("answered in time")
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(body.contains("at_capacity"), "{body}");
        }
        other => panic!("expected 503 at capacity, got {other:?}"),
    }
    let (status, metrics) = get(&s, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("rollcall_connections_refused_total{reason=\"at_capacity\"} 1"),
        "{metrics}"
    );

    for a in &mut attackers {
        read_until_closed(a).await;
    }
    let (ws, _) = tokio::time::timeout(READ_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("a freed slot serves a new client");
    let (status, metrics) = get(&s, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("rollcall_connection_deadlines_total{phase=\"header\"} 3"),
        "{metrics}"
    );
    drop(ws);
}

/// A half upgrade that did get its `101` is a silent WebSocket: the heartbeat closes it (a guard
/// for the documented bound; this part already held before the deadlines).
#[tokio::test]
async fn silent_upgraded_socket_is_closed_by_the_heartbeat() {
    let s = spawn(
        "upgraded",
        &format!("ping_interval_secs = 0.2\nheartbeat_timeout_secs = 0.4\n{TINY}"),
    );
    let token = rollcall::auth::sign_hs256(SECRET, "dan", None, 3600);
    let mut c = dial(&s).await;
    let req = format!(
        "GET /v1/ws?token={token} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n\
         connection: upgrade\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let text = read_until_closed(&mut c).await;
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
}

/// The upgrade deadline: once a handler has answered an upgrade (`Upgrading::started`), a
/// connection whose hand-off does not follow (here: an answer that never ends) is dropped after
/// `upgrade_secs`, and counted.
#[tokio::test]
async fn upgrade_hand_off_that_never_happens_is_dropped() {
    use axum::extract::State;
    use axum::routing::get as route;
    use rollcall::connection::Upgrading;

    let mut f = rollcall::config::FileConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: rollcall::config::EPHEMERAL.into(),
        ..Default::default()
    };
    f.deadlines.upgrade_secs = 0.3;
    let settings = rollcall::config::Settings::from_file(f).unwrap();
    let app = rollcall::app::App::new(settings).unwrap();
    let tcp = rollcall::listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = rollcall::listener::Listener::new(tcp, 8, app.stats.clone());
    let router = axum::Router::new()
        .route(
            "/stuck",
            route(
                |State(_): State<rollcall::app::App>,
                 axum::Extension(u): axum::Extension<Upgrading>| async move {
                    u.started();
                    axum::body::Body::from_stream(futures::stream::pending::<
                        Result<bytes::Bytes, std::io::Error>,
                    >())
                },
            ),
        )
        .with_state(app.clone());
    let stop = app.shutdown.clone();
    let server = tokio::spawn(rollcall::connection::serve(
        listener,
        router,
        app.clone(),
        async move { stop.cancelled().await },
    ));
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /stuck HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until_closed(&mut c).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let upgrade = app.stats.deadlines().find(|(p, _)| *p == "upgrade");
    assert_eq!(upgrade, Some(("upgrade", 1)));
    app.shutdown.cancel();
    let _ = tokio::time::timeout(READ_TIMEOUT, server).await;
}

/// Idle connections refilling the health reserve cannot keep `/healthz` from answering: with the
/// cap and all 16 reserve slots held by silent connections (a long header deadline, so none
/// frees itself), a health check still gets its 200 by evicting the oldest idle reserve
/// connection, again and again (fresh-eyes review finding).
#[tokio::test]
async fn idle_connections_cannot_hold_the_health_reserve() {
    let s = spawn(
        "reserve",
        "max_connections = 2\n[deadlines]\nheader_read_secs = 60",
    );
    let mut attackers = Vec::new();
    for _ in 0..(2 + rollcall::listener::HEALTH_RESERVE) {
        attackers.push(dial(&s).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for round in 0..3 {
        let (status, body) = get(&s, "/healthz").await;
        assert_eq!(status, 200, "round {round}: {body}");
        // The attacker refills the reserve, newest first.
        for _ in 0..4 {
            attackers.push(dial(&s).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM with a half-sent request open: the process still exits within
/// `shutdown_timeout_secs` (plus start-up slack), not after the 10 s header deadline (fresh-eyes
/// review finding: the HTTP server waited for it without a bound).
#[tokio::test]
async fn a_half_sent_request_does_not_hold_the_exit_back() {
    use tokio::io::AsyncWriteExt;
    let mut s = spawn("sigterm", "shutdown_timeout_secs = 1.0");
    let mut half = dial(&s).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    s.sigterm();
    assert!(
        s.wait_exit(Duration::from_secs(4)).is_some(),
        "still running {:?} after SIGTERM",
        started.elapsed()
    );
}

/// An attacker churning new connections from one address as fast as it can evicts its own reserve
/// connections, never a monitor's on another address: every health check from 127.0.0.1 is
/// answered while 127.0.0.2 holds the cap and keeps refilling the reserve (re-check finding).
#[tokio::test]
async fn churning_attacker_evicts_its_own_reserve_connections() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = spawn(
        "churn",
        "max_connections = 2\n[deadlines]\nheader_read_secs = 60",
    );
    let server: std::net::SocketAddr = s.addr.parse().unwrap();
    let attacker = move || async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        tokio::time::timeout(READ_TIMEOUT, sock.connect(server)).await
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let churn = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: at most 3,000 connections, kept open (the server evicts them).
        for _ in 0..3_000 {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(Ok(c)) = attacker().await {
                held.push(c);
            }
            tokio::task::yield_now().await;
        }
        held.len()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..10 {
        let (status, body) = get(&s, "/healthz").await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        churn.await.unwrap() > 18,
        "the attacker held the cap and the reserve"
    );
}
