//! PLYR-style game rooms: the vendor's `/game/*` and `/task/status/{id}` routes (with and
//! without `/api`), HMAC-signed, over the room core. Spec and decisions: `protocol/game.md`.
//!
//! - [`sign`]: API keys, the HMAC check and the JavaScript-faithful body re-serialization.
//! - [`session`]: ES256 session JWTs (`sessionJwts[]`, and game clients' socket tokens).
//! - [`tasks`]: the bounded task log behind the async API (`PENDING` → `SUCCESS`/`FAILED`).
//! - [`rules`]: what each task does to a room actor; the vendor's loose field parsing.
//! - [`handlers`]: the routes, in the vendor's middleware order.
//! - [`error`]: every failure and its status/body, mapped in one place.
//!
//! A game room is `game:<gameId>:<roomId>` (`roomId` a per-game decimal counter). Players join
//! through `/game/join`; their game clients attach a WebSocket to the same member with their
//! session JWT ([`verify_socket_token`]) and see `joined`/`left`/`closed` as native events.

pub mod error;
pub mod handlers;
pub mod rules;
pub mod session;
pub mod sign;
pub mod tasks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;

use crate::app::App;
use crate::auth::Identity;
use crate::auth::{unix_now, AuthError};
use crate::config::{ConfigError, GameApiKey, Settings};
use crate::ids::MemberId;
use crate::protocol::MemberKind;

/// The dev API key used when none is configured (announced at start; development only).
pub const DEV_API_KEY: &str = "dev-game-key";
/// The dev key's HMAC secret.
pub const DEV_SECRET_KEY: &str = "dev-game-secret";
/// The dev key's game.
pub const DEV_GAME_ID: &str = "devgame";
/// The development session public key (see `dev-keys/README.md`): public, never for production.
pub const DEV_SESSION_PUBLIC_KEY: &str = include_str!("dev-keys/session-public.pem");
/// Its private half, used only by `rollcall token --plyr-id` to sign development session tokens.
pub const DEV_SESSION_PRIVATE_KEY: &str = include_str!("dev-keys/session-private.pem");

/// The store key prefix of the per-game room counters.
const COUNTER_PREFIX: &str = "game.room_no.";

/// The cluster set of `game_id`'s rooms (`Cluster::set_add`: what the per-game cap counts).
pub fn rooms_ns(game_id: &str) -> String {
    format!("g/{game_id}")
}

/// The store key of `game_id`'s room counter.
pub fn counter_key(game_id: &str) -> String {
    format!("{COUNTER_PREFIX}{game_id}")
}

/// The game façade's state: keys, session verifier, task log, per-game room counters.
#[derive(Debug)]
pub struct GameState {
    /// API keys by `apikey`.
    pub keys: sign::KeyRing,
    /// Session JWT verifier.
    pub sessions: session::SessionVerifier,
    /// The task log.
    pub tasks: tasks::Tasks,
    /// The last room id handed out, per game (games are fixed by configuration).
    counters: HashMap<String, AtomicU64>,
}

impl GameState {
    /// Validates `[game]` and reads the session public key.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let cfg = &settings.game;
        let dev = [GameApiKey {
            api_key: DEV_API_KEY.into(),
            secret_key: DEV_SECRET_KEY.into(),
            role: "user".into(),
            game_id: DEV_GAME_ID.into(),
        }];
        // The development key only in development mode (`crate::devmode`); in production an
        // empty list means the game API refuses every call.
        let keys = if cfg.api_keys.is_empty() && settings.mode.is_dev() {
            sign::KeyRing::new(&dev)?
        } else {
            if cfg.api_keys.is_empty() {
                tracing::warn!("game API: no [[game.api_keys]] configured: every call is refused");
            }
            sign::KeyRing::new(&cfg.api_keys)?
        };
        if cfg.task_ttl_secs == 0 || cfg.task_ttl_secs > 7 * 86_400 {
            return Err(ConfigError::Invalid {
                field: "game.task_ttl_secs",
                reason: format!("{} is not in [1, 604800]", cfg.task_ttl_secs),
            });
        }
        if cfg.max_tasks == 0 {
            return Err(ConfigError::Invalid {
                field: "game.max_tasks",
                reason: "must be at least 1".into(),
            });
        }
        let sessions = match cfg.session_public_key_file.as_deref() {
            Some(path) => session::SessionVerifier::new(Some(path))?,
            None if settings.mode.is_dev() => session::SessionVerifier::from_pem(
                DEV_SESSION_PUBLIC_KEY.as_bytes(),
                "built-in dev key",
            )?,
            None => {
                tracing::warn!(
                    "game API: no [game] session_public_key_file: no session JWT verifies \
                     (join/leave answer 401, game clients cannot open sockets)"
                );
                session::SessionVerifier::new(None)?
            }
        };
        let counters = keys
            .game_ids()
            .map(|g| (g.to_owned(), AtomicU64::new(0)))
            .collect();
        Ok(Self {
            keys,
            sessions,
            tasks: tasks::Tasks::new(Duration::from_secs(cfg.task_ttl_secs), cfg.max_tasks),
            counters,
        })
    }

    /// The last room id handed out for `game_id`.
    pub fn counter(&self, game_id: &str) -> Option<u64> {
        self.counters
            .get(game_id)
            .map(|c| c.load(Ordering::Relaxed))
    }

    /// Puts stored state back at start: task results, and each game's room counter (at least
    /// its highest stored room id, so no id is handed out twice).
    pub fn restore(&self, loaded: &crate::store::Loaded, store: &crate::store::Store) {
        for id in self.tasks.restore(loaded.tasks.clone()) {
            // Stored as failed, so every later poll (and restart) answers the same.
            if let Some(rec) = self.tasks.record_done(&id) {
                store.put(crate::store::Kind::Task, id.as_str(), rec);
            }
        }
        for (key, value) in &loaded.meta {
            let Some(game) = key.strip_prefix(COUNTER_PREFIX) else {
                continue;
            };
            if let (Some(c), Ok(n)) = (self.counters.get(game), value.parse::<u64>()) {
                c.fetch_max(n, Ordering::Relaxed);
            }
        }
        for r in &loaded.rooms {
            let (Some(game), Some(no)) = (
                r.attrs.get("gameId").and_then(|v| v.as_str()),
                r.attrs
                    .get("roomId")
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if let Some(c) = self.counters.get(game) {
                c.fetch_max(no, Ordering::Relaxed);
            }
        }
    }

    /// The next room id of `game_id` (1, 2, ...).
    pub fn next_room_no(&self, game_id: &str) -> u64 {
        match self.counters.get(game_id) {
            Some(c) => c.fetch_add(1, Ordering::Relaxed) + 1,
            // Every key's game has a counter (built from the same keys); unreachable.
            None => 0,
        }
    }
}

/// This façade's routes.
pub fn routes() -> Router<App> {
    handlers::routes()
}

/// A game client's WebSocket token: its PLYR session JWT (ES256, the configured key, a game of
/// this server, not expired). The member id is the lowercased `plyrId`. `None` when the token is
/// not ES256 or no session key is configured.
pub fn verify_socket_token(app: &App, token: &str) -> Option<Result<Identity, AuthError>> {
    let game = &app.facades.game;
    let r = game
        .sessions
        .verify_socket(token, game.keys.game_ids(), unix_now())?;
    Some(r.map(|s| Identity {
        member: MemberId::from(s.plyr_id),
        name: None,
        kind: MemberKind::Player,
        exp: Some(s.exp),
        only_room: None,
        access: crate::auth::Access::Game(s.game_id),
    }))
}
