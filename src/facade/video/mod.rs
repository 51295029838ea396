//! Façade skeleton: filled in by the façade's own change.

use axum::Router;

use crate::app::App;
use crate::auth::AuthError;
use crate::config::{ConfigError, Settings};
use crate::conn::Identity;

/// This façade's state.
#[derive(Debug, Default)]
pub struct VideoState {}

impl VideoState {
    /// Builds the state from settings.
    pub fn new(_settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {})
    }
}

/// This façade's routes.
pub fn routes() -> Router<App> {
    Router::new()
}

/// Verifies a socket token this façade issues, if it is one.
pub fn verify_socket_token(_app: &App, _token: &str) -> Option<Result<Identity, AuthError>> {
    None
}
