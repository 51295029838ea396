//! The TOML configuration file: `toml::from_str` into [`FileConfig`], then
//! [`Settings::from_file`] and the start-up validation of the façade keys.

use std::time::Duration;

use crate::config::{FileConfig, Settings, DEV_ADMIN_TOKEN, DEV_JWT_SECRET};
use crate::facade::game::sign::KeyRing;

const DAY: Duration = Duration::from_secs(86_400);

/// Properties, for any UTF-8 text (a file that is not UTF-8 is refused when read):
/// - parsing and validation never panic, and validation is deterministic;
/// - accepted settings keep their invariants: every duration within a day, the heartbeat timeout
///   at least the ping interval, the size and count minimums, secrets of at least 8 bytes (or the
///   development ones in development mode only), and game keys that validate or are refused.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<FileConfig>(text) else {
        return; // a parse error names the file and the field; never a panic
    };
    let first = Settings::from_file(file.clone());
    let second = Settings::from_file(file);
    let s = match (first, second) {
        (Ok(s), Ok(t)) => {
            assert_eq!(format!("{s:?}"), format!("{t:?}"), "deterministic");
            s
        }
        (Err(e), Err(f)) => {
            assert_eq!(e.to_string(), f.to_string(), "deterministic");
            return;
        }
        _ => panic!("validation is deterministic"),
    };
    for d in [
        s.grace,
        s.ping_interval,
        s.heartbeat_timeout,
        s.ban,
        s.room_idle,
        s.slow_consumer,
        s.shutdown_timeout,
    ] {
        assert!(d <= DAY, "{d:?} exceeds a day");
    }
    assert!(s.heartbeat_timeout >= s.ping_interval);
    assert!(s.ping_interval >= Duration::from_millis(10));
    assert!(s.max_message_bytes >= 1024);
    assert!(s.max_state_bytes >= 2);
    assert!(s.max_members_per_room >= 1 && s.max_rooms_per_socket >= 1);
    assert!(s.outbox_capacity >= 4);
    if s.mode.is_dev() {
        // Development mode: nothing is configured, the public development secrets are live.
        assert_eq!(s.jwt_secret.as_deref(), Some(DEV_JWT_SECRET));
        assert_eq!(s.admin_token.as_deref(), Some(DEV_ADMIN_TOKEN));
    } else {
        for secret in [&s.jwt_secret, &s.admin_token].into_iter().flatten() {
            assert!(
                secret.len() >= 8,
                "configured secrets have at least 8 bytes"
            );
        }
    }
    for k in &s.jwt_keys {
        assert!(k.alg == "ES256" || k.alg == "RS256");
    }
    let _ = KeyRing::new(&s.game.api_keys); // start-up refuses bad keys; must not panic
}
