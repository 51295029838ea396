//! Micro-benchmarks of the wire hot path: serializing one `ServerMsg` event (done once per
//! event, whatever the audience) and fanning the resulting `Frame` out to N `Conn` outboxes
//! (`Conn::push` = a refcounted clone into the outbox, done once per subscriber), and a room's
//! `panel` built from its members' cached rows.
//!
//! Run: `cargo bench -p rollcall-bench --bench micro_wire`.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rollcall::conn::{Conn, Identity, Push};
use rollcall::protocol::{LeaveReason, MemberKind, MemberView, PanelRows, ServerMsg};
use rollcall::room::members::{Binding, Member, Members, RowCache};
use serde_json::{json, Value};

fn views(n: usize, state: &Value) -> Vec<MemberView<'_>> {
    (0..n)
        .map(|i| MemberView {
            id: Cow::Owned(format!("member-{i:05}")),
            kind: MemberKind::Player,
            name: Some(Cow::Owned(format!("Player {i}"))),
            state: Cow::Borrowed(state),
            joined_at: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

fn serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("serialize");
    let state = json!({"x": 12.5, "y": -3.25, "hp": 87});
    let left = ServerMsg::Left {
        room: Cow::Borrowed("lobby:0b6f7a3e-5d1c-4b9e-9a43-2f1d2c3b4a59"),
        epoch: Cow::Borrowed("e"),
        version: 4242,
        members: vec![Cow::Borrowed("member-00042")],
        reason: LeaveReason::Leave,
        by: None,
        host: None,
    };
    g.bench_function("left_1", |b| b.iter(|| black_box(&left).to_frame()));
    let st = ServerMsg::State {
        room: Cow::Borrowed("room-1"),
        epoch: Cow::Borrowed("e"),
        version: 4242,
        member: Cow::Borrowed("member-00042"),
        state: Cow::Borrowed(&state),
    };
    g.bench_function("state", |b| b.iter(|| black_box(&st).to_frame()));
    let joined = ServerMsg::Joined {
        room: Cow::Borrowed("room-1"),
        epoch: Cow::Borrowed("e"),
        version: 7,
        members: views(1, &state),
        host: None,
    };
    g.bench_function("joined_1", |b| b.iter(|| black_box(&joined).to_frame()));
    for n in [10usize, 100, 1000] {
        let panel = ServerMsg::Panel {
            room: Cow::Borrowed("room-1"),
            epoch: Cow::Borrowed("e"),
            version: 7,
            host: Some(Cow::Borrowed("member-00000")),
            members: views(n, &state),
        };
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("panel", n), &panel, |b, p| {
            b.iter(|| black_box(p).to_frame())
        });
        // What a room does: the same panel from its members' cached rows.
        let mut members = members(n, &state);
        members.rows(); // the first panel serializes each row once
        g.bench_function(BenchmarkId::new("panel_cached_rows", n), |b| {
            b.iter(|| {
                PanelRows {
                    room: "room-1",
                    epoch: "e",
                    version: 7,
                    host: Some("member-00000"),
                    members: members.rows(),
                }
                .to_frame()
            })
        });
    }
    g.finish();
}

fn members(n: usize, state: &Value) -> Members {
    let mut ms = Members::default();
    for i in 0..n {
        ms.insert(Member {
            id: format!("member-{i:05}").into(),
            kind: MemberKind::Player,
            name: Some(format!("Player {i}")),
            meta: Value::Null,
            state: state.clone(),
            joined_at: 1_700_000_000_000 + i as i64,
            conns: Vec::new(),
            binding: Binding::Socket,
            grace: None,
            row: RowCache::default(),
        });
    }
    ms
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_push");
    let frame = ServerMsg::Left {
        room: Cow::Borrowed("room-1"),
        epoch: Cow::Borrowed("e"),
        version: 1,
        members: vec![Cow::Borrowed("member-00042")],
        reason: LeaveReason::Leave,
        by: None,
        host: None,
    }
    .to_frame();
    for n in [10usize, 100, 1000, 10_000] {
        let (conns, mut rxs): (Vec<_>, Vec<_>) = (0..n)
            .map(|i| {
                Conn::new(
                    Identity {
                        member: format!("m{i}").into(),
                        name: None,
                        kind: MemberKind::Player,
                        exp: None,
                        only_room: None,
                        access: rollcall::conn::Access::NATIVE,
                    },
                    256,
                )
            })
            .unzip();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            // Time the pushes only; drain the outboxes (untimed) so they never fill.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    for conn in &conns {
                        let r = conn.push(frame.clone());
                        debug_assert_eq!(r, Push::Queued);
                        black_box(r);
                    }
                    total += t.elapsed();
                    for rx in &mut rxs {
                        while rx.try_recv().is_some() {}
                    }
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, serialize, fanout);
criterion_main!(benches);
