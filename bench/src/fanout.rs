//! `fanout`: one room, N watchers, one member publishing `state` events whose payload carries
//! the send time (`{"t": unix-ns, "n": seq}`), so each watcher computes the delivery latency.
//!
//! Measured: deliveries per second (all watchers together, first send → last delivery) and the
//! send → receive latency distribution. Judged: every watcher got every event once, in order;
//! a lagging watcher's resync panel is counted (skipped versions are announced, not lost).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::cli::{FanoutArgs, TargetArgs};
use super::procstat::CpuMeter;
use super::report::Report;
use super::stats::{progress, unix_nanos, Counters, Hist};
use super::target::Target;
use super::ws::{self, Frame};
use super::Error;

#[derive(Deserialize)]
struct Stamp {
    t: u64,
}

struct Shared {
    c: Arc<Counters>,
    lat: Hist,
    /// Watchers that have their panel.
    ready: AtomicUsize,
    /// Watchers whose last version is the final one.
    done: AtomicUsize,
    /// The version at which the run is complete (0 until known).
    final_version: AtomicU64,
    /// Unix ns of the last delivery.
    last_at: AtomicU64,
    deliveries: AtomicU64,
}

/// Runs `fanout` and reports.
pub async fn run(t: &TargetArgs, a: &FanoutArgs) -> Result<Report, Error> {
    let target = Arc::new(Target::start(t, 5.0, a.watchers + 1).await?);
    let tag = super::run_tag();
    let room = format!("f{tag}");
    let sh = Arc::new(Shared {
        c: Arc::new(Counters::default()),
        lat: Hist::new(),
        ready: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        final_version: AtomicU64::new(0),
        last_at: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
    });
    let stop = CancellationToken::new();
    {
        let s = sh.clone();
        tokio::spawn(progress(
            "fanout",
            sh.c.clone(),
            move || {
                format!(
                    "ready {} deliveries {}",
                    s.ready.load(Relaxed),
                    s.deliveries.load(Relaxed)
                )
            },
            stop.clone(),
        ));
    }
    let mut r = Report::new("fanout");
    let cpu_all = CpuMeter::start(target.pid);

    // The publisher joins first, so every watcher's panel is at version 1.
    let token = target.token(&format!("p{tag}-0-0"));
    let mut publisher = ws::connect(target.addr, &target.ws_url(), &token, None).await?;
    publisher
        .send(Message::text(format!(
            r#"{{"type":"join","room":"{room}","ref":0}}"#
        )))
        .await?;
    loop {
        match publisher.next().await {
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"ack""#) => break,
            Some(Ok(_)) => {}
            _ => return Err("the publisher's join failed".into()),
        }
    }
    let cancel = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(t.connect_concurrency.max(1)));
    let connect_started = Instant::now();
    for i in 0..a.watchers {
        let permit = sem.clone().acquire_owned().await?;
        let (tg, s, room, cancel) = (target.clone(), sh.clone(), room.clone(), cancel.clone());
        tokio::spawn(async move {
            let token = tg.token(&format!("w{}-0-{i}", &room[1..]));
            let ws = ws::connect(tg.addr, &tg.ws_url(), &token, tg.source(i)).await;
            drop(permit);
            match ws {
                Ok(ws) => {
                    Counters::inc(&s.c.opened);
                    watcher(ws, i, room, s, cancel).await
                }
                Err(e) => {
                    if Counters::get(&s.c.conn_failures) < 5 {
                        eprintln!("watcher {i}: {e}");
                    }
                    Counters::inc(&s.c.conn_failures);
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let settled = |s: &Shared| {
        let failed = Counters::get(&s.c.conn_failures) + Counters::get(&s.c.errors);
        s.ready.load(Relaxed) + failed as usize >= a.watchers
    };
    while !settled(&sh) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = sh.ready.load(Relaxed);
    r.add(
        "watchers",
        "watchers ready",
        format!("{ready} of {}", a.watchers),
    );
    r.add(
        "connect_rate",
        "watch rate (/s)",
        ready as f64 / connect_started.elapsed().as_secs_f64(),
    );
    r.must_be_zero(
        "conn_failures",
        "connection failures",
        Counters::get(&sh.c.conn_failures),
    );

    // Publish.
    let cpu = CpuMeter::start(target.pid);
    sh.final_version.store(1 + a.events as u64, Relaxed);
    let first_send = unix_nanos();
    let (mut tx, mut rx) = publisher.split();
    let window = Arc::new(Semaphore::new(a.window.max(1)));
    let acks = {
        let (window, events) = (window.clone(), a.events);
        tokio::spawn(async move {
            let mut acks = 0usize;
            while acks < events {
                match rx.next().await {
                    Some(Ok(Message::Text(t))) => {
                        if t.contains(r#""type":"ack""#) {
                            acks += 1;
                            window.add_permits(1);
                        } else if t.contains(r#""type":"error""#) {
                            eprintln!("publisher: {t}");
                            acks += 1;
                            window.add_permits(1);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            (acks, rx)
        })
    };
    let started = Instant::now();
    for n in 0..a.events {
        if a.rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / a.rate)).await;
        } else {
            window.acquire().await?.forget();
        }
        let msg = format!(
            r#"{{"type":"state","room":"{room}","state":{{"t":{},"n":{n}}},"ref":{n}}}"#,
            unix_nanos()
        );
        tx.send(Message::text(msg)).await?;
    }
    let (acks, _rx) = acks.await?;
    let publish_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs_f64(a.settle_secs);
    while sh.done.load(Relaxed) < ready && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let use_ = cpu.stop();
    stop.cancel();
    cancel.cancel();
    let deliveries = sh.deliveries.load(Relaxed);
    let span = (sh.last_at.load(Relaxed).saturating_sub(first_send)) as f64 / 1e9;
    r.add(
        "events",
        "events published (acked)",
        format!("{} ({acks})", a.events),
    );
    r.add("publish_secs", "publish time (s)", publish_secs);
    r.add(
        "event_rate",
        "events per second",
        a.events as f64 / publish_secs,
    );
    r.add("deliveries", "deliveries", deliveries);
    r.add(
        "deliveries_expected",
        "deliveries expected",
        (a.events * ready) as u64,
    );
    r.add(
        "deliveries_per_sec",
        "deliveries per second (first send → last delivery)",
        deliveries as f64 / span.max(1e-9),
    );
    let h = sh.lat.merged();
    r.latency("latency", "send → delivery", &h);
    r.picture(
        &format!("fanout: 1 room × {ready} watchers, {} events", a.events),
        &h,
    );
    let c = &sh.c;
    r.stream_anomalies(c);
    r.must_be_zero(
        "unfinished",
        "watchers without the last event at the end",
        (ready - sh.done.load(Relaxed).min(ready)) as u64,
    );
    r.must_be_zero("errors", "errors", Counters::get(&c.errors));
    r.add(
        "resyncs",
        "resync panels (lagging watchers)",
        Counters::get(&c.resyncs),
    );
    r.add(
        "resync_skipped",
        "events skipped by announced resyncs",
        Counters::get(&c.resync_skipped),
    );
    r.cpu(target.mode(), &use_);
    let all = cpu_all.stop();
    r.add(
        "bench_cpu_total_secs",
        "load generator CPU incl. connect (s)",
        all.bench,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    target.stop().await;
    Ok(r)
}

async fn watcher(
    mut ws: ws::Ws,
    i: usize,
    room: String,
    s: Arc<Shared>,
    cancel: CancellationToken,
) {
    let req = format!(r#"{{"type":"watch","room":"{room}","ref":1}}"#);
    if ws.send(Message::text(req)).await.is_err() {
        Counters::inc(&s.c.errors);
        return;
    }
    let mut last = 0u64;
    let mut panels = 0u32;
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => return,
            m = ws.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            _ => {
                if !cancel.is_cancelled() {
                    Counters::inc(&s.c.errors);
                }
                return;
            }
        };
        let now = unix_nanos();
        let Ok(f) = Frame::parse(text.as_str()) else {
            Counters::inc(&s.c.errors);
            continue;
        };
        let Some(v) = f.version else { continue };
        if f.ty == "panel" {
            if panels == 0 {
                s.ready.fetch_add(1, Relaxed);
            } else {
                Counters::inc(&s.c.resyncs);
                s.c.resync_skipped
                    .fetch_add(v.saturating_sub(last), Relaxed);
            }
            panels += 1;
            last = v;
        } else {
            if v <= last {
                Counters::inc(if v == last {
                    &s.c.duplicates
                } else {
                    &s.c.out_of_order
                });
                continue;
            }
            if v > last + 1 {
                s.c.gaps.fetch_add(v - last - 1, Relaxed);
            }
            last = v;
            Counters::inc(&s.c.events);
            if f.ty == "state" {
                if let Some(st) = f
                    .state
                    .and_then(|raw| serde_json::from_str::<Stamp>(raw.get()).ok())
                {
                    s.lat.record(i, now.saturating_sub(st.t) / 1000);
                    s.deliveries.fetch_add(1, Relaxed);
                    s.last_at.fetch_max(now, Relaxed);
                }
            }
        }
        let fin = s.final_version.load(Relaxed);
        if fin != 0 && last == fin {
            s.done.fetch_add(1, Relaxed);
        }
    }
}
