//! rollcall's integration tests, one binary: each module is one area of behaviour, against real
//! servers on 127.0.0.1:0 (or the real `rollcall` binary where process behaviour matters) and
//! real clients, every read bounded by a timeout. One binary instead of one per file: tokio,
//! axum, reqwest and fantoccini are linked once. Shared helpers live in [`support`]; a module's
//! own helpers stay in the module.
// `pub` in `support` is the helpers' interface to the test modules; a test binary exports nothing.
#![allow(unreachable_pub)]

mod support;

mod big_panel;
mod binary;
mod cluster;
mod durable_crash;
mod durable_faults;
mod durable_restart;
mod fuzz_corpus;
mod game;
mod game_auth;
mod hostile;
mod hostile_conn;
mod hostile_facade_limits;
mod hostile_isolation;
mod hostile_low;
mod hostile_rooms;
mod leave;
mod lobby;
mod lobby_sse;
mod lobby_strict;
mod lobby_update;
mod metrics;
mod name_limits;
mod new_user_video;
mod openapi;
mod ops;
mod panel;
mod pipeline;
mod protocol;
mod slow_consumer;
mod upgrade;
mod video;
mod video_contract;
mod video_ws;
mod webhook;
mod webhook_shutdown;
