//! PlayFlow-style lobbies (the vendor's legacy NestJS API) over the room actors, so an existing
//! PlayFlow SDK client works by changing its base URL and `api-key`. Spec and every decision:
//! `protocol/lobby.md`.
//!
//! A lobby is a room `lobby:<uuid>` (kind `Lobby`, no linger, member cap = `maxPlayers`); its
//! players are members added by REST, their sockets attach with a native token whose `sub` is the
//! player id. Layout:
//! - [`handlers`]: the REST routes; [`sse`]: the `lobbies-sse` event stream.
//! - [`rules`]: the lobby rules, applied atomically inside the room actor.
//! - [`model`]: the vendor's Lobby object and the room attributes behind it.
//! - [`request`]: request bodies and their validation.
//! - [`index`]: lookup tables (lobby, invite code, player → lobby).
//! - [`slots`]: player slots and invite codes, here and across a cluster.
//! - [`liveness`]: the inactivity `timeout`.
//! - [`extract`]: the `api-key` / `?name=` guard and the JSON body reader.
//! - [`error`]: the one error type and its NestJS-style HTTP mapping.

pub mod error;
pub mod extract;
pub mod handlers;
pub mod index;
pub mod liveness;
pub mod model;
pub mod request;
pub mod rules;
pub mod slots;
pub mod sse;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::app::App;
use crate::auth::secret_eq;
use crate::config::{ConfigError, Settings};

use error::LobbyError;
use index::{Indexes, Tenant};
use model::MAX_TIMEOUT;

/// The `api-key` accepted when none is configured. Logged loudly at start: for development only.
pub const DEV_LOBBY_KEY: &str = "rollcall-dev-lobby-key";
/// The cluster namespace of invite codes (`Cluster::claim_name`).
pub const CODES_NS: &str = "code";
/// The lobby configuration accepted when none is configured.
pub const DEFAULT_CONFIG: &str = "default";

/// The lobby façade's state: credentials, configs and the lookup tables.
pub struct LobbyState {
    keys: Vec<String>,
    configs: Vec<Arc<str>>,
    min_timeout: u32,
    /// Lobby, invite-code and player lookups (shared with the liveness tasks).
    pub indexes: Arc<Indexes>,
}

impl std::fmt::Debug for LobbyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbyState")
            .field("keys", &self.keys.len())
            .field("configs", &self.configs)
            .field("min_timeout", &self.min_timeout)
            .field("lobbies", &self.indexes.len())
            .finish()
    }
}

impl LobbyState {
    /// Builds the state from settings; announces the dev key when no key is configured.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let c = &settings.lobby;
        if c.api_keys.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                field: "lobby.api_keys",
                reason: "an api-key cannot be empty".into(),
            });
        }
        if c.configs.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                field: "lobby.configs",
                reason: "a lobby configuration name cannot be empty".into(),
            });
        }
        if !(1..=u64::from(MAX_TIMEOUT)).contains(&c.min_timeout_secs) {
            return Err(ConfigError::Invalid {
                field: "lobby.min_timeout_secs",
                reason: format!("{} is not in [1, {MAX_TIMEOUT}]", c.min_timeout_secs),
            });
        }
        // The development key only in development mode (`crate::devmode`); in production an
        // empty list means every lobby call is refused.
        let keys = if c.api_keys.is_empty() && settings.mode.is_dev() {
            vec![DEV_LOBBY_KEY.to_owned()]
        } else {
            if c.api_keys.is_empty() {
                tracing::warn!("lobbies: no [lobby] api_keys configured: every call is refused");
            }
            c.api_keys.clone()
        };
        let configs = if c.configs.is_empty() {
            vec![Arc::from(DEFAULT_CONFIG)]
        } else {
            c.configs.iter().map(|s| Arc::from(s.as_str())).collect()
        };
        Ok(Self {
            keys,
            configs,
            // Checked above to be at most MAX_TIMEOUT, so it fits.
            min_timeout: u32::try_from(c.min_timeout_secs).unwrap_or(MAX_TIMEOUT),
            indexes: Arc::new(Indexes::default()),
        })
    }

    /// The project an `api-key` belongs to. Every configured key is compared (in constant time
    /// each), so the answer's timing does not tell which key matched.
    pub fn tenant(&self, key: Option<&[u8]>) -> Result<Tenant, LobbyError> {
        let key = key.ok_or(LobbyError::Unauthorized("API key is required"))?;
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            if secret_eq(k.as_bytes(), key) && found.is_none() {
                found = Some(Tenant(i));
            }
        }
        found.ok_or(LobbyError::Unauthorized("Invalid API key"))
    }

    /// A project's stored identity: a digest of its api-key (never the key), so a restart
    /// finds the project again even if keys were reordered, and a removed key's lobbies stay
    /// unreachable.
    /// The cluster set of `tenant`'s lobbies (`Cluster::set_add`): by the key's fingerprint,
    /// the same on every node.
    pub fn lobbies_ns(&self, tenant: Tenant) -> String {
        format!("l/{}", self.fingerprint(tenant))
    }

    /// The cluster namespace of the player slots of `scope` (`Cluster::claim_slot`).
    pub fn players_ns(&self, scope: &index::Scope) -> String {
        format!("p/{}/{}", self.fingerprint(scope.tenant), scope.config)
    }

    fn fingerprint(&self, tenant: Tenant) -> String {
        use sha2::Digest;
        let key = self.keys.get(tenant.0).map(String::as_str).unwrap_or("");
        hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
    }

    /// The façade-private value stored with a lobby's room.
    pub fn stored_scope(&self, scope: &index::Scope) -> serde_json::Value {
        serde_json::json!({ "project": self.fingerprint(scope.tenant), "config": &*scope.config })
    }

    /// Lists stored lobbies again at start: indexes, invite codes, player slots, and a fresh
    /// liveness book (every player counts as seen at the restart) with its task.
    pub fn restore(&self, app: &App, rooms: &[crate::store::RoomRecord]) {
        for r in rooms
            .iter()
            .filter(|r| r.kind == crate::room::RoomKind::Lobby)
        {
            if let Err(why) = self.restore_one(app, r) {
                tracing::warn!(room = %r.id, why, "stored lobby not listed");
            }
        }
    }

    fn restore_one(&self, app: &App, r: &crate::store::RoomRecord) -> Result<(), &'static str> {
        let id =
            r.id.strip_prefix(model::ROOM_PREFIX)
                .and_then(model::LobbyId::parse)
                .ok_or("not a lobby id")?;
        let project = r.private.get("project").and_then(|p| p.as_str());
        let tenant = (0..self.keys.len())
            .map(Tenant)
            .find(|t| Some(self.fingerprint(*t).as_str()) == project)
            .ok_or("its api-key is no longer configured")?;
        let config = r
            .private
            .get("config")
            .and_then(|c| c.as_str())
            .ok_or("no config")?;
        let scope = index::Scope {
            tenant,
            config: self
                .configs
                .iter()
                .find(|c| &***c == config)
                .cloned()
                .unwrap_or_else(|| Arc::from(config)),
        };
        let handle = app.registry.get(&r.id).ok_or("its room did not start")?;
        let timeout = r
            .attrs
            .get("timeout")
            .and_then(|t| t.as_u64())
            .unwrap_or(u64::from(model::DEFAULT_TIMEOUT));
        let live = Arc::new(liveness::Live::new(std::time::Duration::from_secs(timeout)));
        let code = r
            .attrs
            .get("inviteCode")
            .and_then(|c| c.as_str())
            .filter(|c| self.indexes.restore_code(c, id))
            .map(str::to_owned);
        let entry = Arc::new(index::LobbyEntry::new(
            id,
            scope.clone(),
            handle,
            live.clone(),
            app.shutdown.child_token(),
            code,
        ));
        for m in &r.members {
            let player = crate::ids::MemberId::from(m.id.as_str());
            live.touch(&player);
            if self.indexes.reserve(&scope, &player, id).is_ok() {
                self.indexes.confirm(&scope, &player, id);
            }
        }
        self.indexes.insert(entry.clone());
        liveness::spawn(self.indexes.clone(), entry);
        Ok(())
    }

    /// The configured lobby configuration called `name`.
    pub fn config(&self, name: &str) -> Result<Arc<str>, LobbyError> {
        self.configs
            .iter()
            .find(|c| &***c == name)
            .cloned()
            .ok_or_else(|| {
                LobbyError::BadRequest(format!("Lobby configuration '{name}' not found"))
            })
    }

    /// The smallest accepted `timeout`, seconds.
    pub fn min_timeout(&self) -> u32 {
        self.min_timeout
    }
}

/// This façade's routes (PlayFlow's paths, unprefixed).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/lobbies", get(handlers::list).post(handlers::create))
        .route(
            "/lobbies/{id}",
            get(handlers::get)
                .put(handlers::update)
                .delete(handlers::delete),
        )
        .route("/lobbies/code/{code}/players", post(handlers::join_by_code))
        .route(
            "/lobbies/{id}/players",
            get(handlers::players).post(handlers::join),
        )
        .route(
            "/lobbies/{id}/players/{player_id}",
            delete(handlers::remove_player),
        )
        .route("/lobbies/{id}/heartbeat", post(handlers::heartbeat))
        .route("/lobbies-sse/{id}/events", get(sse::events))
}
