//! The load tool's own smoke test: a tiny `churn` through the same code `rollcall-bench` runs
//! (in-process server, real WebSocket clients, every leave path), judged on correctness only —
//! never on time: zero missing, duplicate or out-of-order events, zero ghosts, every `left`
//! delivered.

use rollcall_bench::cli::{ChurnArgs, LeavePath, TargetArgs};

/// A 4 rooms × 5 members churn through all four leave paths ends with every view true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_churn_is_exact_through_every_leave_path() {
    let target = TargetArgs {
        connect_concurrency: 16,
        workers: 1,
        ..TargetArgs::default()
    };
    let args = ChurnArgs {
        rooms: 4,
        members: 5,
        connect_rate: 2000.0,
        leaves: 8,
        leave_rate: 200.0,
        paths: vec![
            LeavePath::Leave,
            LeavePath::Close,
            LeavePath::Kick,
            LeavePath::Rest,
        ],
        settle_secs: 10.0,
    };
    let report = rollcall_bench::churn::run(&target, &args)
        .await
        .expect("churn runs");
    let n = |k: &str| report.value(k).and_then(|v| v.as_u64()).unwrap_or(u64::MAX);
    for key in [
        "conn_failures",
        "join_pairs_missing",
        "missing_events",
        "duplicates",
        "out_of_order",
        "inconsistent",
        "wrong_reason",
        "ghosts",
        "server_unexpected",
        "view_mismatch",
        "stale_views",
        "no_own_left",
        "dispatch_failures",
        "errors",
    ] {
        assert_eq!(n(key), 0, "{key} must be 0");
    }
    assert_eq!(n("leaves"), 8);
    assert_eq!(
        n("left_deliveries"),
        n("left_deliveries_expected"),
        "every other member got every `left`"
    );
}
