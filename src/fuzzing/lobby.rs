//! PlayFlow lobby bodies: CreateLobby, UpdateLobby, AddPlayer and `{playerId}`.

use serde_json::Value;

use crate::facade::lobby::error::LobbyError;
use crate::facade::lobby::model::{MAX_TIMEOUT, REGIONS};
use crate::facade::lobby::request::{add_player, create, player_id, update, MAX_PLAYER_ID};

/// The `min_timeout_secs` default, as the handlers pass it.
const MIN_TIMEOUT: u32 = 60;

fn len_ok(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

fn refusal_ok(e: &LobbyError, body: &Value) {
    match e {
        LobbyError::BadRequest(_) => assert!(!body.is_object(), "objects get field errors"),
        LobbyError::Validation(m) => assert!(!m.is_empty(), "a 400 lists its reasons"),
        other => panic!("a body parser refused with {other:?}"),
    }
}

/// Properties, for any JSON body (non-JSON is refused before these parsers run):
/// - nothing panics; a non-object is a 400, an object's refusal lists at least one message;
/// - an accepted create has a 3..=50 character name, a 1..=255 character host, 1..=100 players,
///   a known region, a timeout in `min..=MAX_TIMEOUT`, and private implies an invite code;
/// - an accepted update, add-player or player-id names a 1..=255 character player.
pub fn check(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match create(&body, MIN_TIMEOUT) {
        Err(e) => refusal_ok(&e, &body),
        Ok(c) => {
            assert!(len_ok(&c.name, 3, 50));
            assert!(len_ok(&c.host, 1, MAX_PLAYER_ID));
            assert!((1..=100).contains(&c.max_players));
            assert!(REGIONS.contains(&c.region.as_str()));
            assert!((MIN_TIMEOUT..=MAX_TIMEOUT).contains(&c.timeout));
            assert!(!c.is_private || c.use_invite_code);
            assert!(c.settings.as_ref().is_none_or(Value::is_object));
        }
    }
    match update(&body) {
        Err(e) => refusal_ok(&e, &body),
        Ok(u) => {
            assert!(len_ok(&u.requester, 1, MAX_PLAYER_ID));
            for p in [&u.target, &u.host].into_iter().flatten() {
                assert!(len_ok(p, 1, MAX_PLAYER_ID));
            }
            if let Some(n) = &u.settings.name {
                assert!(len_ok(n, 3, 50));
            }
            if let Some(n) = u.settings.max_players {
                assert!((1..=100).contains(&n));
            }
            if let Some(r) = &u.settings.region {
                assert!(REGIONS.contains(&r.as_str()));
            }
        }
    }
    match add_player(&body) {
        Err(e) => refusal_ok(&e, &body),
        Ok(a) => {
            assert!(len_ok(&a.player_id, 1, MAX_PLAYER_ID));
            assert!(a.metadata.is_null() || a.metadata.is_object());
            let _ = a.display_name(); // must not panic; any value is fine
        }
    }
    match player_id(&body) {
        Err(e) => refusal_ok(&e, &body),
        Ok(p) => assert!(len_ok(&p, 1, MAX_PLAYER_ID)),
    }
}
