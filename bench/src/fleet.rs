//! A fleet of member clients spread over R rooms of M members: one light task per socket, a
//! shared slot per member (its view of the room, its command sender), and the checks against
//! the server's own snapshots.
//!
//! Member `g` is index `g / R` of room `g % R`, so consecutive joins go to different rooms and
//! race each other. Each task owns its socket; the driver talks to it through a small bounded
//! channel (send a request, or drop the socket abruptly). Frames are applied to the slot's
//! [`View`] under a `std::sync::Mutex` held for one frame, never across `.await`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::stats::{Clock, Counters, Hist};
use super::target::Target;
use super::view::View;
use super::ws::{self, Frame};

/// What the driver can ask a member's task to do.
#[derive(Debug)]
pub enum Cmd {
    /// Send this text frame.
    Text(String),
    /// Drop the socket without a close frame.
    Abort,
}

/// One member's shared state.
pub struct Slot {
    view: Mutex<View>,
    cmd: Mutex<Option<mpsc::Sender<Cmd>>>,
    /// Which connection of this member is current (storm reconnects bump it).
    epoch: AtomicU32,
    /// The driver made this member leave.
    pub leaving: AtomicBool,
    /// The member's socket saw its own `left`.
    pub saw_own_left: AtomicBool,
    /// The expected `left` reason code (see [`REASONS`]), 0 = none.
    pub reason: AtomicU8,
    /// When the leave was started (clock ns), 0 = not leaving.
    pub left_t0: AtomicU64,
    /// When the view last became complete (clock ns), 0 = never.
    pub full_at: AtomicU64,
    /// When the current connection's connect started (clock ns), until its first `panel`.
    join_t0: AtomicU64,
}

/// `left` reasons by code (index 0 unused).
pub const REASONS: [&str; 6] = ["", "leave", "disconnect", "kick", "left", "timeout"];

/// The members, their rooms, and what they measured.
pub struct Fleet {
    /// Run tag in names.
    pub tag: String,
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub size: usize,
    /// One per member.
    pub slots: Vec<Slot>,
    /// Counters.
    pub c: Arc<Counters>,
    /// Shared clock.
    pub clock: Clock,
    /// leave → `left` received by each other member, µs.
    pub left_lat: Hist,
    /// The same, split by the leave's expected reason (index = code in [`REASONS`]).
    pub left_lat_by: Vec<Hist>,
    /// `left` events whose reason was not the one the leave path must produce.
    pub wrong_reason: AtomicU64,
    /// connect start → the join's `panel`, µs.
    pub join_lat: Hist,
    /// connect start → WebSocket upgraded (TCP connect, HTTP upgrade, token check), µs.
    pub connect_lat: Hist,
    /// When the latest join got its `panel` (clock ns).
    pub last_join_at: AtomicU64,
}

impl Fleet {
    /// A fleet of `rooms × size` members, none connected yet.
    pub fn new(rooms: usize, size: usize) -> Arc<Self> {
        let slots = (0..rooms * size)
            .map(|_| Slot {
                view: Mutex::new(View::new(size)),
                cmd: Mutex::new(None),
                epoch: AtomicU32::new(0),
                leaving: AtomicBool::new(false),
                saw_own_left: AtomicBool::new(false),
                reason: AtomicU8::new(0),
                left_t0: AtomicU64::new(0),
                full_at: AtomicU64::new(0),
                join_t0: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Self {
            tag: super::run_tag(),
            rooms,
            size,
            slots,
            c: Arc::new(Counters::default()),
            clock: Clock::new(),
            left_lat: Hist::new(),
            left_lat_by: REASONS.iter().map(|_| Hist::new()).collect(),
            wrong_reason: AtomicU64::new(0),
            join_lat: Hist::new(),
            connect_lat: Hist::new(),
            last_join_at: AtomicU64::new(0),
        })
    }

    /// Room of member `g`.
    pub fn room_of(&self, g: usize) -> usize {
        g % self.rooms
    }
    /// Index of member `g` in its room.
    pub fn idx_of(&self, g: usize) -> usize {
        g / self.rooms
    }
    /// Member number of index `i` in room `r`.
    pub fn g_of(&self, r: usize, i: usize) -> usize {
        i * self.rooms + r
    }
    /// Room name.
    pub fn room_name(&self, r: usize) -> String {
        format!("b{}-{r}", self.tag)
    }
    /// Member id: `m<tag>-<room>-<index>` (the view parses the index back).
    pub fn member_id(&self, g: usize) -> String {
        format!("m{}-{}-{}", self.tag, self.room_of(g), self.idx_of(g))
    }

    /// The node (0-based, of `nodes`) member `g` connects to: consecutive members of a room on
    /// consecutive nodes, so every room spans every node.
    pub fn node_of(&self, g: usize, nodes: usize) -> usize {
        (self.room_of(g) + self.idx_of(g)) % nodes.max(1)
    }

    /// A copy of member `g`'s view.
    pub fn view(&self, g: usize) -> View {
        lock(&self.slots[g].view).clone()
    }

    /// Sends `cmd` to member `g`'s task; false if it is not connected or its queue is full.
    pub fn send(&self, g: usize, cmd: Cmd) -> bool {
        match &*lock(&self.slots[g].cmd) {
            Some(tx) => tx.try_send(cmd).is_ok(),
            None => false,
        }
    }

    /// Connects member `g` (a fresh view, a new epoch) and sends its `join`. False on failure.
    pub async fn connect(self: &Arc<Self>, target: &Target, g: usize) -> bool {
        let token = target.token(&self.member_id(g));
        self.slots[g].join_t0.store(self.clock.now(), Relaxed);
        let node = self.node_of(g, target.node_count());
        let (addr, url) = (target.addr_of(node), target.ws_url_of(node));
        let ws = match ws::connect(addr, &url, &token, target.source(g)).await {
            Ok(ws) => ws,
            Err(e) => {
                if Counters::get(&self.c.conn_failures) < 5 {
                    eprintln!("connect {g}: {e}");
                }
                Counters::inc(&self.c.conn_failures);
                return false;
            }
        };
        Counters::inc(&self.c.opened);
        let slot = &self.slots[g];
        let t0 = slot.join_t0.load(Relaxed);
        self.connect_lat
            .record(g, self.clock.now().saturating_sub(t0) / 1000);
        let epoch = slot.epoch.fetch_add(1, Relaxed) + 1;
        *lock(&slot.view) = View::new(self.size);
        let (tx, rx) = mpsc::channel(8);
        *lock(&slot.cmd) = Some(tx);
        let join = format!(
            r#"{{"type":"join","room":"{}","ref":1}}"#,
            self.room_name(self.room_of(g))
        );
        tokio::spawn(member_task(self.clone(), g, epoch, ws, rx, join));
        true
    }

    /// Connects every member at `rate` per second (`concurrency` attempts in flight), in
    /// member order (consecutive members are in different rooms); which ones joined.
    pub async fn connect_all(
        self: &Arc<Self>,
        target: &Arc<Target>,
        rate: f64,
        concurrency: usize,
    ) -> Result<Vec<bool>, super::Error> {
        let n = self.slots.len();
        let started = tokio::time::Instant::now();
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut joins = Vec::with_capacity(n);
        for g in 0..n {
            tokio::time::sleep_until(started + Duration::from_secs_f64(g as f64 / rate)).await;
            let permit = sem.clone().acquire_owned().await?;
            let (f, tg) = (self.clone(), target.clone());
            joins.push(tokio::spawn(async move {
                let ok = f.connect(&tg, g).await;
                drop(permit);
                ok
            }));
        }
        let mut joined = vec![false; n];
        for (g, j) in joins.into_iter().enumerate() {
            joined[g] = j.await.unwrap_or(false);
        }
        Ok(joined)
    }

    /// Applies one frame to member `g`'s view; true when the member saw itself leave.
    fn on_frame(&self, g: usize, epoch: u32, text: &str) -> bool {
        Counters::inc(&self.c.frames);
        let slot = &self.slots[g];
        if slot.epoch.load(Relaxed) != epoch {
            return false; // a frame of a connection this member already replaced
        }
        let f = match Frame::parse(text) {
            Ok(f) => f,
            Err(_) => {
                Counters::inc(&self.c.errors);
                return false;
            }
        };
        match &*f.ty {
            "ack" | "pong" | "kicked" => return false,
            "error" => {
                if Counters::get(&self.c.errors) < 5 {
                    eprintln!("member {g}: {text}");
                }
                Counters::inc(&self.c.errors);
                return false;
            }
            _ => {}
        }
        let me = self.idx_of(g);
        let room = self.room_of(g);
        let now = self.clock.now();
        if &*f.ty == "panel" {
            let t0 = slot.join_t0.swap(0, Relaxed);
            if t0 != 0 {
                self.join_lat.record(g, now.saturating_sub(t0) / 1000);
                self.last_join_at.fetch_max(now, Relaxed);
            }
        }
        let mut own = false;
        let mut view = lock(&slot.view);
        let was_full = view.count == self.size;
        view.apply(&f, &self.c, |i| {
            let other = self.g_of(room, i);
            let Some(o) = self.slots.get(other) else {
                return;
            };
            let want = o.reason.load(Relaxed);
            if want != 0 && f.reason.as_deref() != Some(REASONS[usize::from(want)]) {
                self.wrong_reason.fetch_add(1, Relaxed);
            }
            if i == me {
                own = true;
                return;
            }
            let t0 = o.left_t0.load(Relaxed);
            if t0 != 0 {
                let micros = now.saturating_sub(t0) / 1000;
                self.left_lat.record(g, micros);
                self.left_lat_by[usize::from(want)].record(g, micros);
                Counters::inc(&self.c.samples);
            }
        });
        if view.count == self.size && !was_full {
            slot.full_at.store(now, Relaxed);
        }
        drop(view);
        if own {
            slot.saw_own_left.store(true, Relaxed);
        }
        own
    }

    /// Waits until every member of every room that is still in it has the server's version, or
    /// `timeout`. Returns the server's view of each room (None: room missing).
    pub async fn settle(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<(Vec<Option<View>>, Vec<u64>, bool), super::Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut views = Vec::with_capacity(self.rooms);
            let mut versions = Vec::with_capacity(self.rooms);
            let mut behind = 0usize;
            for r in 0..self.rooms {
                let panel = target.panel(&self.room_name(r)).await?;
                let (v, ver) = match &panel {
                    Some(p) => (
                        Some(server_view(p, self.size)),
                        p["version"].as_u64().unwrap_or(0),
                    ),
                    None => (None, 0),
                };
                if let Some(sv) = &v {
                    for i in 0..self.size {
                        if sv.has(i) {
                            let my = self.view(self.g_of(r, i));
                            if my.version != ver {
                                behind += 1;
                            }
                        }
                    }
                }
                views.push(v);
                versions.push(ver);
            }
            if behind == 0 {
                return Ok((views, versions, true));
            }
            if tokio::time::Instant::now() > deadline {
                eprintln!("settle: {behind} members still behind the server after {timeout:?}");
                return Ok((views, versions, false));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to `bound`) until every connected member has had its join's `panel`; how many
    /// still wait.
    pub async fn panels_in(&self, bound: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let waiting = self
                .slots
                .iter()
                .filter(|s| s.join_t0.load(Relaxed) != 0 && lock(&s.cmd).is_some())
                .count();
            if waiting == 0 || tokio::time::Instant::now() > deadline {
                return waiting;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to `bound`) until no latency sample has been recorded for `quiet`.
    pub async fn quiet(&self, quiet: Duration, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        let mut last = (Counters::get(&self.c.samples), tokio::time::Instant::now());
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let n = Counters::get(&self.c.samples);
            if n != last.0 {
                last = (n, tokio::time::Instant::now());
            } else if last.1.elapsed() >= quiet {
                return;
            }
        }
    }

    /// Drops every connected socket (end of run).
    pub fn abort_all(&self) {
        for g in 0..self.slots.len() {
            self.send(g, Cmd::Abort);
            *lock(&self.slots[g].cmd) = None;
        }
    }
}

/// The server's member set of a room from its panel JSON.
pub fn server_view(panel: &Value, size: usize) -> View {
    let ids = panel["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    View::from_ids(size, ids)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a task panicked mid-update; the data is still what it was.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn member_task(
    fleet: Arc<Fleet>,
    g: usize,
    epoch: u32,
    ws: ws::Ws,
    mut rx: mpsc::Receiver<Cmd>,
    join: String,
) {
    let (mut sink, mut stream) = ws.split();
    if sink.send(Message::text(join)).await.is_err() {
        Counters::inc(&fleet.c.errors);
        return;
    }
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Text(t)) => {
                    if sink.send(Message::text(t)).await.is_err() {
                        Counters::inc(&fleet.c.errors);
                        return;
                    }
                }
                // Dropping both halves closes the TCP connection without a close frame.
                Some(Cmd::Abort) | None => return,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if fleet.on_frame(g, epoch, t.as_str()) {
                        // Our own `left`: say goodbye properly and stop.
                        let _ = sink.send(Message::Close(None)).await; // the peer may be gone
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let slot = &fleet.slots[g];
                    if !slot.leaving.load(Relaxed) && slot.epoch.load(Relaxed) == epoch {
                        Counters::inc(&fleet.c.errors);
                    }
                    return;
                }
            },
        }
    }
}
