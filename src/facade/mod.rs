//! The three vendor façades, each a faithful copy of a public API over the same room actors:
//! - [`game`]: PLYR-style game rooms (`/game/*`, `/task/status/{id}`, HMAC-signed).
//! - [`lobby`]: PlayFlow-style lobbies (`/lobbies/*`, `api-key`, SSE event stream).
//! - [`video`]: Digital Samba-style video rooms (`/api/v1/rooms/*`, team developer key).
//!
//! Each façade owns its own state type (held in [`Facades`]) and its routes; a change through a
//! façade is a command to a room actor, so it reaches the room's sockets as a versioned event.

pub mod game;
pub mod lobby;
pub mod video;

use axum::Router;

use crate::app::App;
use crate::auth::AuthError;
use crate::auth::Identity;
use crate::config::{ConfigError, Settings};

/// The façades' own state.
#[derive(Debug)]
pub struct Facades {
    /// Game rooms: API keys, session-token verifier, tasks.
    pub game: game::GameState,
    /// Lobbies: keys, configs, lookup indexes.
    pub lobby: lobby::LobbyState,
    /// Video rooms: teams, room names.
    pub video: video::VideoState,
}

impl Facades {
    /// Builds every façade's state from settings.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            game: game::GameState::new(settings)?,
            lobby: lobby::LobbyState::new(settings)?,
            video: video::VideoState::new(settings)?,
        })
    }
}

/// Every façade route, merged.
pub fn routes() -> Router<App> {
    Router::new()
        .merge(game::routes())
        .merge(lobby::routes())
        .merge(video::routes())
}

/// Verifies a socket token that is not a native one (a video-room token, a game session token;
/// lobby players need none of their own: they attach with a native token, `sub` = player id).
/// `None` when no façade recognises the token.
pub fn verify_socket_token(app: &App, token: &str) -> Option<Result<Identity, AuthError>> {
    video::verify_socket_token(app, token).or_else(|| game::verify_socket_token(app, token))
}
