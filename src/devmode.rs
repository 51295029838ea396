//! Development mode: when rollcall's built-in development credentials are live, and which.
//!
//! `cargo run` serves out of the box with credentials that are public in this repository: the
//! HS256 socket secret, the operator token, a PLYR game API key with the session key pair in
//! `src/facade/game/dev-keys/`, a PlayFlow lobby api-key and a Digital Samba team. They are live
//! **only in development mode**: when no credential at all is configured, or when `--dev`
//! (`ROLLCALL_DEV`, `dev = true`) asks for it, and then no credential may be configured beside
//! it. As soon as one credential is configured the server is in production mode, and a surface
//! whose own credential is not configured refuses every caller: nothing falls back to a public
//! key. A public key beside a production secret was the hole this module closes: a session token
//! minted by `rollcall token --plyr-id` authenticated on a server with real secrets.

use crate::config::{ConfigError, FileConfig};

/// Whether the built-in development credentials are live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No credential configured (or `--dev`): the built-in, public ones are live.
    Development,
    /// At least one credential configured: only configured credentials authenticate.
    Production,
}

impl Mode {
    /// True in development mode.
    pub fn is_dev(self) -> bool {
        self == Self::Development
    }
}

/// The development credentials that are live in development mode, by what they open. Names
/// only: the values are in the README and never logged.
pub const DEV_CREDENTIALS: [&str; 6] = [
    "socket tokens: the built-in HS256 secret",
    "operator REST: the built-in admin token",
    "game API: the built-in API key of game `devgame`",
    "game sessions: the built-in session key pair (public in src/facade/game/dev-keys)",
    "lobbies: the built-in api-key",
    "video rooms: the built-in team `dev-team`",
];

/// The credentials `f` configures, as spelled in the TOML file, in a fixed order.
pub fn configured_credentials(f: &FileConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            out.push(name);
        }
    };
    note(f.jwt_secret.is_some(), "jwt_secret");
    note(!f.jwt_keys.is_empty(), "jwt_keys");
    note(f.admin_token.is_some(), "admin_token");
    note(!f.game.api_keys.is_empty(), "game.api_keys");
    note(
        f.game.session_public_key_file.is_some(),
        "game.session_public_key_file",
    );
    note(!f.lobby.api_keys.is_empty(), "lobby.api_keys");
    note(!f.video.teams.is_empty(), "video.teams");
    out
}

/// Decides the mode of `f`: development when nothing is configured or `dev` is set; `dev`
/// beside a configured credential is refused, naming the credentials.
pub fn mode(f: &FileConfig) -> Result<Mode, ConfigError> {
    let configured = configured_credentials(f);
    match (f.dev, configured.is_empty()) {
        (_, true) => Ok(Mode::Development),
        (false, false) => Ok(Mode::Production),
        (true, false) => Err(ConfigError::Invalid {
            field: "dev",
            reason: format!(
                "development mode cannot be combined with configured credentials ({}): the \
                 public development credentials are never live beside a real one",
                configured.join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GameApiKey;

    /// Nothing configured is development; any one credential is production; `dev` beside a
    /// credential is refused with the credential's name.
    #[test]
    fn any_configured_credential_means_production() {
        assert_eq!(mode(&FileConfig::default()).unwrap(), Mode::Development);
        let dev = FileConfig {
            dev: true,
            ..FileConfig::default()
        };
        assert_eq!(mode(&dev).unwrap(), Mode::Development);
        let mut game = FileConfig::default();
        game.game.api_keys.push(GameApiKey {
            api_key: "k".into(),
            secret_key: "s".into(),
            role: "user".into(),
            game_id: "g".into(),
        });
        assert_eq!(mode(&game).unwrap(), Mode::Production);
        let secret = FileConfig {
            jwt_secret: Some("0123456789".into()),
            dev: true,
            ..FileConfig::default()
        };
        let e = mode(&secret).unwrap_err().to_string();
        assert!(e.contains("`dev`") && e.contains("jwt_secret"), "{e}");
    }
}
