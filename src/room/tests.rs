//! Unit tests of the room actor with fake outboxes (the receiving ends of `Conn`s) and paused
//! time, so grace periods, bans, idle exit and resync are deterministic.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::auth::Identity;
use crate::config::{FileConfig, Settings};
use crate::conn::Conn;
use crate::ids::RoomId;
use crate::protocol::{LeaveReason, MemberKind};
use crate::stats::Stats;

fn registry(tweak: impl FnOnce(&mut FileConfig)) -> Registry {
    let mut f = FileConfig::default();
    tweak(&mut f);
    Registry::new(
        Arc::new(Settings::from_file(f).unwrap()),
        Arc::new(Stats::default()),
    )
}

fn conn(member: &str, cap: usize) -> (Arc<Conn>, crate::conn::Receiver) {
    Conn::new(
        Identity {
            member: member.into(),
            name: None,
            kind: MemberKind::Player,
            exp: None,
            only_room: None,
            access: crate::auth::Access::NATIVE,
        },
        cap,
    )
}

fn native(r: &Registry) -> impl Fn() -> RoomSpec + '_ {
    move || RoomSpec {
        private: serde_json::Value::Null,
        kind: RoomKind::Native,
        max_members: r.settings().max_members_per_room,
        linger: Some(r.settings().room_idle),
        attrs: Default::default(),
    }
}

fn next(rx: &mut crate::conn::Receiver) -> Option<Value> {
    rx.try_recv().map(|b| serde_json::from_slice(&b).unwrap())
}

/// Lets the actor run until it is idle (paused time: no real waiting).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A reconnect within grace produces no event; after the grace period the member leaves with
/// `disconnect`, exactly once.
#[tokio::test(start_paused = true)]
async fn grace_then_disconnect() {
    let reg = registry(|f| f.grace_secs = 5.0);
    let room = reg.get_or_spawn(&"g".into(), native(&reg));
    let (w, mut wrx) = conn("watcher", 16);
    room.watch(w.clone()).await.unwrap();
    let (a1, _a1rx) = conn("alice", 16);
    room.join(a1.clone(), None).await.unwrap();
    while next(&mut wrx).is_some() {}

    room.detach(a1.id(), false).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (a2, _a2rx) = conn("alice", 16);
    room.join(a2.clone(), None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    assert!(next(&mut wrx).is_none(), "reconnect within grace is silent");

    room.detach(a2.id(), false).await;
    tokio::time::sleep(Duration::from_millis(4900)).await;
    settle().await;
    assert!(next(&mut wrx).is_none(), "still within grace");
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    let left = next(&mut wrx).expect("left after grace");
    assert_eq!(left["reason"], "disconnect");
    assert_eq!(left["members"], json!(["alice"]));
    assert!(next(&mut wrx).is_none(), "exactly one event");
}

/// An empty, unwatched native room exits after its linger and leaves the registry; the next join
/// lands in a fresh, live room.
#[tokio::test(start_paused = true)]
async fn idle_room_exits_and_a_later_join_lands_in_a_live_room() {
    let reg = registry(|f| f.room_idle_secs = 1.0);
    let id: RoomId = "idle".into();
    let first = reg.get_or_spawn(&id, native(&reg));
    let (a, _arx) = conn("alice", 16);
    first.join(a.clone(), None).await.unwrap();
    first.leave(a.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    settle().await;
    assert!(reg.get("idle").is_none(), "exited and forgot itself");
    assert_eq!(first.snapshot().await.unwrap_err(), RoomError::Closed);
    let (h, ()) = reg
        .with_room(&id, native(&reg), |h| {
            let a = a.clone();
            async move { h.join(a, None).await }
        })
        .await
        .unwrap();
    assert_ne!(h.incarnation(), first.incarnation());
    assert_eq!(h.snapshot().await.unwrap().members.len(), 1);
}

/// A room that is exiting refuses queued commands with `Closed`; `with_room` retries into the
/// successor.
#[tokio::test(start_paused = true)]
async fn join_racing_close_lands_in_a_live_room() {
    let reg = registry(|_| {});
    let id: RoomId = "race".into();
    let old = reg.get_or_spawn(&id, native(&reg));
    let (a, _arx) = conn("alice", 16);
    let closing = old.clone();
    // Both tasks run before the actor does: Close is queued first, then the Join behind it.
    let closer = tokio::spawn(async move { closing.close("ended").await });
    let r2 = reg.clone();
    let joiner = tokio::spawn(async move {
        r2.with_room(&id, native(&r2), |h| {
            let a = a.clone();
            async move { h.join(a, None).await }
        })
        .await
    });
    let joined = joiner.await.unwrap();
    closer.await.unwrap().unwrap();
    let (h, ()) = joined.unwrap();
    assert_ne!(
        h.incarnation(),
        old.incarnation(),
        "the join was retried in the successor"
    );
    settle().await;
    let live = reg.get("race").expect("a live room");
    assert_eq!(live.incarnation(), h.incarnation());
    assert_eq!(live.snapshot().await.unwrap().members.len(), 1);
}

/// A full outbox marks the subscriber lagging: diffs are skipped, and once it drains it gets one
/// fresh panel at the current version. Others are unaffected.
#[tokio::test(start_paused = true)]
async fn lagging_subscriber_is_resynced_with_a_panel() {
    let reg = registry(|_| {});
    let room = reg.get_or_spawn(&"lag".into(), native(&reg));
    let (slow, mut slow_rx) = conn("slow", 4);
    let (fast, mut fast_rx) = conn("fast", 64);
    room.watch(slow.clone()).await.unwrap();
    room.join(fast.clone(), None).await.unwrap();
    for i in 0..10 {
        room.state(fast.clone(), json!(i)).await.unwrap();
    }
    let mut fast_seen = Vec::new();
    while let Some(m) = next(&mut fast_rx) {
        fast_seen.push(m["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(fast_seen.iter().filter(|t| *t == "state").count(), 10);
    let mut slow_seen = Vec::new();
    while let Some(m) = next(&mut slow_rx) {
        slow_seen.push(m);
    }
    assert_eq!(slow_seen.len(), 4, "outbox capacity");
    tokio::time::sleep(actor::RESYNC_EVERY * 2).await;
    settle().await;
    let panel = next(&mut slow_rx).expect("resync panel");
    assert_eq!(panel["type"], "panel");
    assert_eq!(panel["version"], 11);
    assert_eq!(panel["members"][0]["state"], 9);
    assert_eq!(reg.stats().resyncs(), 1);
    assert_eq!(reg.stats().lagging(), 0);
}

/// A subscriber that never drains is asked to close with 4008 after `slow_consumer_secs`, and
/// counted once.
#[tokio::test(start_paused = true)]
async fn stuck_subscriber_is_closed_with_4008() {
    let reg = registry(|f| f.slow_consumer_secs = 1.0);
    let room = reg.get_or_spawn(&"stuck".into(), native(&reg));
    let (stuck, _stuck_rx) = conn("stuck", 4);
    let (a, _arx) = conn("a", 64);
    room.watch(stuck.clone()).await.unwrap();
    room.join(a.clone(), None).await.unwrap();
    for i in 0..10 {
        room.state(a.clone(), json!(i)).await.unwrap();
    }
    let code = tokio::time::timeout(Duration::from_secs(2), stuck.closed())
        .await
        .expect("closed");
    assert_eq!(code, crate::protocol::close::SLOW_CONSUMER);
    assert_eq!(reg.stats().slow_closes(), 1);
    // Its socket task has not detached yet: later resync ticks must not count it again.
    tokio::time::sleep(actor::RESYNC_EVERY * 10).await;
    settle().await;
    assert_eq!(reg.stats().slow_closes(), 1, "one socket, counted once");
}

/// A kick bans for `ban_secs` of (paused) time, then the member may rejoin.
#[tokio::test(start_paused = true)]
async fn ban_expires() {
    let reg = registry(|f| f.ban_secs = 60.0);
    let room = reg.get_or_spawn(&"ban".into(), native(&reg));
    let (host, _h) = conn("host", 16);
    let (bob, mut bob_rx) = conn("bob", 16);
    room.join(host.clone(), None).await.unwrap();
    room.join(bob.clone(), None).await.unwrap();
    room.kick(Some("host".into()), "bob".into()).await.unwrap();
    let frames: Vec<Value> = std::iter::from_fn(|| next(&mut bob_rx)).collect();
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["panel", "left", "kicked"]);
    assert_eq!(bob.room_count(), 0, "detached from the room");
    assert_eq!(room.join(bob.clone(), None).await, Err(RoomError::Banned));
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(room.join(bob.clone(), None).await, Ok(()));
}

/// An atomic batch with a non-member changes nothing; a best-effort one removes the members in
/// one event and announces the new host in it.
#[tokio::test(start_paused = true)]
async fn batches_are_atomic_and_single_events() {
    let reg = registry(|_| {});
    let room = reg.get_or_spawn(&"batch".into(), native(&reg));
    let new = |id: &str| NewMember {
        id: id.into(),
        kind: MemberKind::Phone,
        name: None,
        meta: Value::Null,
    };
    let added = room
        .add_members(vec![new("a"), new("b"), new("c"), new("a")])
        .await
        .unwrap();
    assert_eq!(added.added.len(), 3);
    assert_eq!(added.version, Some(1));
    let (w, mut wrx) = conn("w", 16);
    room.watch(w.clone()).await.unwrap();
    next(&mut wrx);
    let err = room
        .remove(vec!["a".into(), "zz".into()], LeaveReason::Left, None, true)
        .await;
    assert_eq!(err, Err(RoomError::NotMembers(vec!["zz".into()])));
    assert!(next(&mut wrx).is_none());
    let r = room
        .remove(
            vec!["a".into(), "b".into(), "zz".into()],
            LeaveReason::Left,
            None,
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.version, Some(2));
    let left = next(&mut wrx).unwrap();
    assert_eq!(left["members"], json!(["a", "b"]));
    assert_eq!(left["host"], "c");
    assert!(next(&mut wrx).is_none());
    let none = room
        .remove(vec!["zz".into()], LeaveReason::Left, None, false)
        .await
        .unwrap();
    assert_eq!(none.version, None, "nobody left: no event");
}

/// A panel at an unchanged version is reused; any change (here a state update) shows in the next.
#[tokio::test(start_paused = true)]
async fn panels_follow_every_change() {
    let reg = registry(|_| {});
    let room = reg.get_or_spawn(&"cache".into(), native(&reg));
    let (a, mut arx) = conn("alice", 64);
    room.join(a.clone(), None).await.unwrap();
    room.sync(a.clone()).await.unwrap();
    room.sync(a.clone()).await.unwrap();
    let frames: Vec<Value> = std::iter::from_fn(|| next(&mut arx)).collect();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[1], frames[2], "same version, same panel");
    room.state(a.clone(), json!({"hp": 7})).await.unwrap();
    room.sync(a.clone()).await.unwrap();
    let frames: Vec<Value> = std::iter::from_fn(|| next(&mut arx)).collect();
    assert_eq!(frames[0]["type"], "state");
    assert_eq!(frames[1]["type"], "panel");
    assert_eq!(frames[1]["version"], 2);
    assert_eq!(frames[1]["members"][0]["state"], json!({"hp": 7}));
}

/// Joins already queued together become one `joined` event (one version); each joiner gets the
/// panel of that version and not the event; refusals in the batch change nothing.
#[tokio::test(start_paused = true)]
async fn queued_joins_are_announced_in_one_event() {
    let reg = registry(|f| f.max_members_per_room = 2);
    let room = reg.get_or_spawn(&"batch".into(), native(&reg));
    let (w, mut wrx) = conn("watcher", 16);
    room.watch(w.clone()).await.unwrap();
    while next(&mut wrx).is_some() {}

    let (a1, mut a1rx) = conn("alice", 16);
    let (b, mut brx) = conn("bob", 16);
    let (a2, mut a2rx) = conn("alice", 16);
    let (c, mut crx) = conn("carol", 16);
    let mut answers = Vec::new();
    for who in [&a1, &b, &a2, &c] {
        let who = who.clone();
        let answer = room
            .request(|reply| Command::Join {
                conn: who,
                state: None,
                reply,
            })
            .await
            .unwrap();
        answers.push(answer);
    }
    let mut results = Vec::new();
    for a in answers {
        results.push(a.await);
    }
    assert_eq!(results, [Ok(()), Ok(()), Ok(()), Err(RoomError::Full)]);

    let joined = next(&mut wrx).expect("one joined event");
    assert_eq!(joined["type"], "joined");
    assert_eq!(joined["version"], 1);
    assert_eq!(joined["host"], "alice");
    let ids: Vec<&str> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["alice", "bob"]);
    assert!(next(&mut wrx).is_none(), "exactly one event");
    for rx in [&mut a1rx, &mut brx, &mut a2rx] {
        let panel = next(rx).expect("a panel");
        assert_eq!(panel["type"], "panel");
        assert_eq!(panel["version"], 1);
        assert_eq!(panel["members"].as_array().unwrap().len(), 2);
        assert!(next(rx).is_none(), "the panel, not the event");
    }
    assert!(
        next(&mut crx).is_none(),
        "a refused join gets nothing from the room"
    );
}

/// An expiry armed through `Ops` closes the room with `expired` at its deadline, even one past
/// the timer wheel's ~2-year range (reached in re-armed steps), and not a moment before.
#[tokio::test(start_paused = true)]
async fn expiry_closes_the_room_at_its_deadline() {
    let reg = registry(|_| {});
    for (name, after) in [
        ("soon", Duration::from_secs(60)),
        ("far", Duration::from_secs(3 * 365 * 24 * 60 * 60)),
    ] {
        let room = reg.get_or_spawn(&name.into(), native(&reg));
        let (w, mut wrx) = conn("watcher", 16);
        room.watch(w.clone()).await.unwrap();
        room.custom(move |ops| ops.expire_after(after))
            .await
            .unwrap();
        while next(&mut wrx).is_some() {}
        tokio::time::sleep(after - Duration::from_secs(1)).await;
        settle().await;
        assert!(next(&mut wrx).is_none(), "{name}: open until its deadline");
        tokio::time::sleep(Duration::from_secs(2)).await;
        settle().await;
        let closed = next(&mut wrx).expect("a closed event");
        assert_eq!(
            (closed["type"].as_str(), closed["reason"].as_str()),
            (Some("closed"), Some("expired")),
            "{name}"
        );
    }
}

/// A room resumed from its record keeps its version (under a new epoch), its host and its bans;
/// a socket member that reconnects within the grace resumes without an event, and one that
/// does not leaves with `timeout`, exactly once.
#[tokio::test(start_paused = true)]
async fn a_resumed_room_waits_for_its_sockets_then_times_them_out() {
    use crate::store::records::{Bound, MemberRecord};
    let reg = registry(|f| f.grace_secs = 5.0);
    let member = |id: &str| MemberRecord {
        id: id.into(),
        kind: MemberKind::Player,
        name: None,
        meta: Value::Null,
        state: json!({"hp": 3}),
        joined_at: 1,
        bound: Bound::Socket,
        nodes: Vec::new(),
    };
    let rec = crate::store::RoomRecord {
        id: "resumed".into(),
        kind: RoomKind::Native,
        max_members: 10,
        linger_ms: Some(60_000),
        attrs: Default::default(),
        private: Value::Null,
        version: 41,
        host: Some("bob".into()),
        members: vec![member("alice"), member("bob")],
        bans: vec![("carol".into(), now_ms() + 60_000)],
        expires_at: None,
        created_at: 1,
        updated_at: 2,
    };
    let room = reg.restore(vec![rec]).pop().unwrap();
    let (w, mut wrx) = conn("watcher", 16);
    room.watch(w.clone()).await.unwrap();
    let panel = next(&mut wrx).expect("panel");
    assert_eq!(panel["version"], 41);
    assert_eq!(panel["host"], "bob");
    assert_eq!(panel["members"][0]["state"], json!({"hp": 3}));
    assert_eq!(panel["epoch"].as_str().map(str::len), Some(8));

    let (a, _arx) = conn("alice", 16);
    room.join(a.clone(), None).await.unwrap();
    let (c, _crx) = conn("carol", 16);
    assert_eq!(room.join(c, None).await, Err(RoomError::Banned));
    tokio::time::sleep(Duration::from_millis(5100)).await;
    settle().await;
    let left = next(&mut wrx).expect("bob leaves after the grace");
    assert_eq!(left["type"], "left");
    assert_eq!(left["reason"], "timeout");
    assert_eq!(left["members"], json!(["bob"]));
    assert_eq!(left["version"], 42);
    assert_eq!(left["host"], "alice");
    assert_eq!(left["epoch"], panel["epoch"]);
    assert!(
        next(&mut wrx).is_none(),
        "alice came back: no event for her"
    );

    // A member that left this process the ordinary way still leaves with `disconnect`.
    room.detach(a.id(), false).await;
    tokio::time::sleep(Duration::from_millis(5100)).await;
    settle().await;
    let left = next(&mut wrx).expect("alice leaves after her own grace");
    assert_eq!(left["reason"], "disconnect");
}
