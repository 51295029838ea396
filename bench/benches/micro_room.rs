//! Micro-benchmarks of one room actor's command throughput, through the public handle exactly
//! as the socket and REST layers call it: a `state` change (one event fanned out to S drained
//! subscribers) and a `snapshot` round trip, one command at a time, and a join + leave pair.
//!
//! Run: `cargo bench -p rollcall-bench --bench micro_room`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rollcall::config::{FileConfig, Settings};
use rollcall::conn::{Conn, Identity};
use rollcall::protocol::MemberKind;
use rollcall::room::{Registry, RoomHandle, RoomKind, RoomSpec};
use rollcall::stats::Stats;
use serde_json::json;

fn conn(member: &str) -> (Arc<Conn>, rollcall::conn::Receiver) {
    Conn::new(
        Identity {
            member: member.into(),
            name: None,
            kind: MemberKind::Player,
            exp: None,
            only_room: None,
            access: rollcall::conn::Access::NATIVE,
        },
        256,
    )
}

fn room(rt: &tokio::runtime::Runtime) -> (Registry, RoomHandle) {
    let _guard = rt.enter();
    let f = FileConfig {
        grace_secs: 0.0,
        ..FileConfig::default()
    };
    let reg = Registry::new(
        Arc::new(Settings::from_file(f).expect("valid settings")),
        Arc::new(Stats::default()),
    );
    let h = reg.get_or_spawn(&"bench".into(), || RoomSpec {
        private: serde_json::Value::Null,
        kind: RoomKind::Native,
        max_members: 100_000,
        linger: None,
        attrs: Default::default(),
    });
    (reg, h)
}

/// `subs` members joined, each outbox drained by its own task (as socket tasks would).
fn populate(rt: &tokio::runtime::Runtime, h: &RoomHandle, subs: usize) -> Arc<Conn> {
    rt.block_on(async {
        let mut first = None;
        for i in 0..subs {
            let (c, mut rx) = conn(&format!("m{i}"));
            h.join(c.clone(), None).await.expect("join");
            tokio::spawn(async move {
                loop {
                    rx.recv().await;
                }
            });
            first.get_or_insert(c);
        }
        first.expect("at least one member")
    })
}

fn commands(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("room_actor");
    g.throughput(Throughput::Elements(1));
    for subs in [1usize, 10, 100, 1000] {
        let (_reg, h) = room(&rt);
        let me = populate(&rt, &h, subs);
        g.bench_function(BenchmarkId::new("state", subs), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for i in 0..iters {
                        h.state(me.clone(), json!({ "n": i })).await.expect("state");
                    }
                    t.elapsed()
                })
            })
        });
    }
    let (_reg, h) = room(&rt);
    populate(&rt, &h, 10);
    g.bench_function("snapshot_10", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    h.snapshot().await.expect("snapshot");
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("join_leave_10", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let (c, rx) = conn(&format!("j{i}"));
                    let t = Instant::now();
                    h.join(c.clone(), None).await.expect("join");
                    h.leave(c).await.expect("leave");
                    total += t.elapsed();
                    drop(rx);
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, commands);
criterion_main!(benches);
