//! `rest --api game`: sustained signed `POST /game/leave` calls with `sync: true`, the PLYR-style
//! façade's leave, one player per call.
//!
//! Setup goes through the façade too: `/game/create` (sync) makes R rooms, `/game/join` (sync,
//! batches of 200 session JWTs) adds the players, and one watcher socket per room
//! (`watch game:<gameId>:<roomId>`) checks that every leave reaches sockets as exactly one
//! `left`. Requests are signed as the vendor documents: headers `apikey`, `timestamp` (ms) and
//! `signature` = hex HMAC-SHA256(secret, timestamp + body); session JWTs are ES256 with
//! `plyrId`, `gameId`, `nonce`, `exp`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::cli::{RestArgs, TargetArgs};
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{Counters, Hist};
use super::target::Target;
use super::ws::{self, Frame};
use super::Error;

/// A PLYR API client: signs requests and mints session tokens.
pub(crate) struct GameClient {
    base: String,
    http: reqwest::Client,
    api_key: String,
    secret: String,
    game_id: String,
    session_key: EncodingKey,
}

impl GameClient {
    /// A client for the target's game façade.
    pub(crate) fn new(target: &Target, a: &RestArgs) -> Result<Self, Error> {
        let path = a.session_key.as_ref().ok_or(
            "--api game needs --session-key PEM (on the embedded default: \
             src/facade/game/dev-keys/session-private.pem)",
        )?;
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            base: target.base.clone(),
            http: target.http.clone(),
            api_key: a.game_api_key.clone(),
            secret: a.game_secret.clone(),
            game_id: a.game_id.to_lowercase(),
            session_key: EncodingKey::from_ec_pem(&pem)?,
        })
    }

    /// The room id sockets use for game room `room_no`.
    pub(crate) fn room_key(&self, room_no: &str) -> String {
        format!("game:{}:{room_no}", self.game_id)
    }

    /// A session JWT for `plyr`, valid for an hour.
    pub(crate) fn session(&self, plyr: &str) -> Result<String, Error> {
        let claims = json!({
            "plyrId": plyr,
            "gameId": self.game_id,
            "nonce": 1,
            "exp": rollcall::auth::unix_now() + 3600,
        });
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &self.session_key,
        )?)
    }

    /// A signed POST; the status and the JSON answer.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), Error> {
        let body = serde_json::to_vec(body)?;
        let ts = super::stats::unix_nanos() / 1_000_000;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())?;
        mac.update(ts.to_string().as_bytes());
        mac.update(&body);
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("apikey", &self.api_key)
            .header("timestamp", ts.to_string())
            .header("signature", hex::encode(mac.finalize().into_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

/// Watches one game room and counts the players its `left` events remove.
async fn watch(
    target: Arc<Target>,
    room: String,
    left: Arc<AtomicU64>,
    c: Arc<Counters>,
    stop: CancellationToken,
) {
    let token = target.token(&format!("watch-{room}"));
    let mut ws = match ws::connect(target.addr, &target.ws_url(), &token, None).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("watcher of {room}: {e}");
            Counters::inc(&c.conn_failures);
            return;
        }
    };
    let req = json!({"type": "watch", "room": room, "ref": 1}).to_string();
    if ws.send(Message::text(req)).await.is_err() {
        Counters::inc(&c.errors);
        return;
    }
    let mut last = None::<u64>;
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return,
            m = ws.next() => m,
        };
        let Some(Ok(Message::Text(t))) = m else {
            if !stop.is_cancelled() && !matches!(m, Some(Ok(_))) {
                Counters::inc(&c.errors);
                return;
            }
            continue;
        };
        let Ok(f) = Frame::parse(t.as_str()) else {
            continue;
        };
        if f.ty == "ack" {
            Counters::inc(&c.opened);
        }
        if f.ty == "error" {
            eprintln!("watcher of {room}: {t}");
            Counters::inc(&c.errors);
        }
        let Some(v) = f.version else { continue };
        match (f.ty.as_ref(), last) {
            ("panel", _) => last = Some(v),
            (_, Some(l)) if v <= l => Counters::inc(&c.duplicates),
            (ty, Some(l)) => {
                c.gaps.fetch_add(v - l - 1, Relaxed);
                last = Some(v);
                if ty == "left" {
                    left.fetch_add(f.member_ids().len() as u64, Relaxed);
                }
            }
            _ => Counters::inc(&c.errors),
        }
    }
}

/// Runs `rest --api game` and reports.
pub(crate) async fn run(t: &TargetArgs, a: &RestArgs) -> Result<Report, Error> {
    let rooms = a.rooms.max(1);
    let size = a.requests.div_ceil(rooms).max(1);
    let target = Arc::new(Target::start(t, 5.0, rooms).await?);
    let game = Arc::new(GameClient::new(&target, a)?);
    let tag = super::run_tag();
    let mut r = Report::new("rest");
    // Rooms and players, through the façade.
    let mut room_nos = Vec::with_capacity(rooms);
    for _ in 0..rooms {
        let (status, v) = game.post("/game/create", &json!({"sync": true})).await?;
        let no = v["roomId"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| v["roomId"].as_u64().map(|n| n.to_string()));
        match (status, no) {
            (200, Some(no)) => room_nos.push(no),
            _ => return Err(format!("/game/create: HTTP {status} {v}").into()),
        }
    }
    let mut players = Vec::new(); // (room index, player id, session JWT)
    for (ri, no) in room_nos.iter().enumerate() {
        let mine: Vec<(String, String)> = (0..size)
            .map(|i| {
                let p = format!("p{tag}-{ri}-{i}");
                game.session(&p).map(|j| (p, j))
            })
            .collect::<Result<_, _>>()?;
        for batch in mine.chunks(200) {
            let jwts: Vec<&str> = batch.iter().map(|(_, j)| j.as_str()).collect();
            let (status, v) = game
                .post(
                    "/game/join",
                    &json!({"roomId": no, "sessionJwts": jwts, "sync": true}),
                )
                .await?;
            if status != 200 {
                return Err(format!("/game/join: HTTP {status} {v}").into());
            }
        }
        players.extend(mine.into_iter().map(|(p, j)| (ri, p, j)));
    }
    players.truncate(a.requests);
    let c = Arc::new(Counters::default());
    let left = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    for no in &room_nos {
        tokio::spawn(watch(
            target.clone(),
            game.room_key(no),
            left.clone(),
            c.clone(),
            stop.clone(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (Counters::get(&c.opened) as usize) < rooms && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Sustained signed leaves, closed loop.
    let cpu = CpuMeter::start(target.pid);
    let lat = Arc::new(Hist::new());
    let next = Arc::new(AtomicUsize::new(0));
    let players = Arc::new(players);
    let room_nos = Arc::new(room_nos);
    let started = Instant::now();
    let mut loops = Vec::new();
    for w in 0..a.concurrency.max(1) {
        let (game, lat, next, players, rooms, c) = (
            game.clone(),
            lat.clone(),
            next.clone(),
            players.clone(),
            room_nos.clone(),
            c.clone(),
        );
        loops.push(tokio::spawn(async move {
            while let Some((ri, p, jwt)) = players.get(next.fetch_add(1, Relaxed)) {
                let body = json!({"roomId": rooms[*ri], "sessionJwts": [jwt], "sync": true});
                let t0 = Instant::now();
                match game.post("/game/leave", &body).await {
                    Ok((200, _)) => lat.record(w, t0.elapsed().as_micros() as u64),
                    Ok((s, v)) => {
                        eprintln!("leave {p}: HTTP {s} {v}");
                        Counters::inc(&c.errors);
                    }
                    Err(e) => {
                        eprintln!("leave {p}: {e}");
                        Counters::inc(&c.errors);
                    }
                }
            }
        }));
    }
    for l in loops {
        let _ = l.await; // a panicked loop shows as fewer samples
    }
    let secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (left.load(Relaxed) as usize) < players.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let use_ = cpu.stop();
    stop.cancel();
    let mut ghosts = 0u64;
    for no in room_nos.iter() {
        if let Some(p) = target.panel(&game.room_key(no)).await? {
            ghosts += p["members"].as_array().map_or(0, |m| m.len() as u64);
        }
    }
    // Players beyond `requests` were never asked to leave.
    let stayed = (rooms * size - players.len()) as u64;
    let h = lat.merged();
    r.add(
        "api",
        "call",
        "POST /game/leave (sync, HMAC-signed, 1 session JWT)",
    );
    r.add("requests", "requests", players.len() as u64);
    r.add("concurrency", "in flight", a.concurrency as u64);
    r.add(
        "requests_per_sec",
        "requests per second",
        h.len() as f64 / secs,
    );
    r.latency("request_latency", "request latency", &h);
    r.picture(
        &format!("rest: signed sync /game/leave, {} in flight", a.concurrency),
        &h,
    );
    r.add(
        "left_seen",
        "players in `left` events seen by the watchers",
        left.load(Relaxed),
    );
    r.must_be_zero(
        "missing_left",
        "leaves no watcher saw",
        (players.len() as u64).saturating_sub(left.load(Relaxed)),
    );
    r.must_be_zero(
        "ghosts",
        "ghosts (left players still in a room)",
        ghosts.saturating_sub(stayed),
    );
    r.must_be_zero(
        "missing_events",
        "missing events (version gaps)",
        Counters::get(&c.gaps),
    );
    r.must_be_zero(
        "duplicates",
        "duplicate events",
        Counters::get(&c.duplicates),
    );
    r.must_be_zero(
        "conn_failures",
        "watcher connection failures",
        Counters::get(&c.conn_failures),
    );
    r.must_be_zero("errors", "errors", Counters::get(&c.errors));
    r.cpu(target.mode(), &use_);
    target.stop().await;
    Ok(r)
}
