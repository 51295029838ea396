//! Request bodies: CreateLobby, UpdateLobby, AddPlayer and LobbyAction, read from untyped JSON
//! so every field rule can answer with NestJS-style messages (`name must be longer than or equal
//! to 3 characters`), all failures of one body at once. Unknown fields are ignored; `null` counts
//! as absent for optional fields.

use serde_json::{Map, Value};

use super::error::LobbyError;
use super::model::{
    Status, DEFAULT_MAX_PLAYERS, DEFAULT_REGION, DEFAULT_TIMEOUT, MAX_TIMEOUT, REGIONS,
};

/// Longest player id accepted (the vendor's `host` limit).
pub const MAX_PLAYER_ID: usize = 255;
/// The longest display name (`metadata.displayName` or `metadata.name`), in characters, like
/// the vendor's other strings.
pub const MAX_DISPLAY_NAME: usize = 255;

/// A validated CreateLobby body.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateLobby {
    /// 3–50 characters.
    pub name: String,
    /// 1–100.
    pub max_players: u32,
    /// Private lobby.
    pub is_private: bool,
    /// Generate an invite code (forced on for private lobbies).
    pub use_invite_code: bool,
    /// Late join allowed.
    pub allow_late_join: bool,
    /// One of the regions.
    pub region: String,
    /// Custom settings (object), or none.
    pub settings: Option<Value>,
    /// The creating player, who becomes host.
    pub host: String,
    /// Inactivity timeout, seconds.
    pub timeout: u32,
}

/// Lobby settings an update may change (from the top level, as the SDK sends them, or nested
/// under `settings`, as the vendor docs show them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    /// New name.
    pub name: Option<String>,
    /// New capacity.
    pub max_players: Option<u32>,
    /// New privacy.
    pub is_private: Option<bool>,
    /// New invite-code flag.
    pub use_invite_code: Option<bool>,
    /// New late-join flag.
    pub allow_late_join: Option<bool>,
    /// New region.
    pub region: Option<String>,
    /// New custom settings (`Some(None)`: cleared).
    pub custom: Option<Option<Value>>,
}

impl SettingsChange {
    /// Whether anything would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A matchmaking request.
#[derive(Debug, Clone, PartialEq)]
pub enum Matchmaking {
    /// Enter the queue.
    Start {
        /// Mode name.
        mode: String,
        /// Extra data, kept as `matchmakingData`.
        data: Option<Value>,
    },
    /// Leave the queue.
    Cancel,
}

/// A validated UpdateLobby body.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateLobby {
    /// Who asks.
    pub requester: String,
    /// Whose `playerState` to merge (default: the requester's; another player's needs host).
    pub target: Option<String>,
    /// Host transfer.
    pub host: Option<String>,
    /// Status change.
    pub status: Option<Status>,
    /// Settings changes.
    pub settings: SettingsChange,
    /// State to merge (shallow) into the target's `lobbyStateRealTime` entry.
    pub player_state: Option<Map<String, Value>>,
    /// Matchmaking start/cancel.
    pub matchmaking: Option<Matchmaking>,
}

/// A validated AddPlayer body.
#[derive(Debug, Clone, PartialEq)]
pub struct AddPlayer {
    /// The joining player.
    pub player_id: String,
    /// Optional metadata (`displayName`/`name` becomes the member's display name).
    pub metadata: Value,
}

impl AddPlayer {
    /// The display name from the metadata, if any.
    pub fn display_name(&self) -> Option<String> {
        ["displayName", "name"]
            .iter()
            .find_map(|k| self.metadata.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    }
}

/// Collects field errors over one JSON object.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'static str,
    errors: Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Map<String, Value>, prefix: &'static str) -> Self {
        Self {
            obj,
            prefix,
            errors: Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn fail(&mut self, key: &str, msg: &str) {
        self.errors.push(format!("{}{key} {msg}", self.prefix));
    }

    fn string(&mut self, key: &str, min: usize, max: usize) -> Option<String> {
        let v = self.get(key)?;
        let Some(s) = v.as_str() else {
            self.fail(key, "must be a string");
            return None;
        };
        let n = s.chars().count();
        if n < min {
            if min == 1 {
                self.fail(key, "should not be empty");
            } else {
                self.fail(
                    key,
                    &format!("must be longer than or equal to {min} characters"),
                );
            }
            None
        } else if n > max {
            self.fail(
                key,
                &format!("must be shorter than or equal to {max} characters"),
            );
            None
        } else {
            Some(s.to_owned())
        }
    }

    fn required_string(&mut self, key: &str, min: usize, max: usize) -> Option<String> {
        if self.get(key).is_none() {
            self.fail(key, "should not be empty");
            return None;
        }
        self.string(key, min, max)
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        let b = v.as_bool();
        if b.is_none() {
            self.fail(key, "must be a boolean value");
        }
        b
    }

    fn int(&mut self, key: &str, min: u32, max: u32) -> Option<u32> {
        let v = self.get(key)?;
        let Some(f) = v.as_f64() else {
            self.fail(
                key,
                "must be a number conforming to the specified constraints",
            );
            return None;
        };
        if f.fract() != 0.0 {
            self.fail(key, "must be an integer number");
            None
        } else if f < f64::from(min) {
            self.fail(key, &format!("must not be less than {min}"));
            None
        } else if f > f64::from(max) {
            self.fail(key, &format!("must not be greater than {max}"));
            None
        } else {
            // In [min, max] and integral, so the cast is exact.
            Some(f as u32)
        }
    }

    fn object(&mut self, key: &str) -> Option<&'a Map<String, Value>> {
        let v = self.get(key)?;
        let o = v.as_object();
        if o.is_none() {
            self.fail(key, "must be an object");
        }
        o
    }

    fn one_of(&mut self, key: &str, allowed: &[&str]) -> Option<String> {
        let v = self.get(key)?;
        match v.as_str() {
            Some(s) if allowed.contains(&s) => Some(s.to_owned()),
            _ => {
                self.fail(
                    key,
                    &format!(
                        "must be one of the following values: {}",
                        allowed.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn settings(&mut self, with_custom: bool) -> SettingsChange {
        SettingsChange {
            name: self.string("name", 3, 50),
            max_players: self.int("maxPlayers", 1, 100),
            is_private: self.bool("isPrivate"),
            use_invite_code: self.bool("useInviteCode"),
            allow_late_join: self.bool("allowLateJoin"),
            region: self.one_of("region", &REGIONS),
            custom: if with_custom && self.obj.contains_key("settings") {
                match self.obj.get("settings") {
                    Some(Value::Null) | None => Some(None),
                    Some(_) => self
                        .object("settings")
                        .map(|o| Some(Value::Object(o.clone()))),
                }
            } else {
                None
            },
        }
    }

    /// Reads the object under `key` with its own field rules; its errors join this body's.
    fn nested<T>(
        &mut self,
        key: &str,
        prefix: &'static str,
        read: impl FnOnce(&mut Fields<'a>) -> T,
    ) -> Option<T> {
        let obj = self.object(key)?;
        let mut inner = Fields::new(obj, prefix);
        let r = read(&mut inner);
        self.errors.append(&mut inner.errors);
        Some(r)
    }

    fn finish<T>(self, value: T) -> Result<T, LobbyError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(LobbyError::Validation(self.errors))
        }
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, LobbyError> {
    body.as_object()
        .ok_or_else(|| LobbyError::BadRequest("Request body must be a JSON object".into()))
}

/// Validates a CreateLobby body. `min_timeout` is the configured lower bound of `timeout`.
pub fn create(body: &Value, min_timeout: u32) -> Result<CreateLobby, LobbyError> {
    let mut f = Fields::new(object(body)?, "");
    let name = f.required_string("name", 3, 50);
    let host = f.required_string("host", 1, MAX_PLAYER_ID);
    let max_players = f.int("maxPlayers", 1, 100);
    let is_private = f.bool("isPrivate").unwrap_or(false);
    let use_invite_code = f.bool("useInviteCode").unwrap_or(false) || is_private;
    let allow_late_join = f.bool("allowLateJoin").unwrap_or(true);
    let region = f.one_of("region", &REGIONS);
    let settings = f.object("settings").map(|o| Value::Object(o.clone()));
    let timeout = f.int("timeout", min_timeout, MAX_TIMEOUT);
    let (Some(name), Some(host)) = (name, host) else {
        return Err(LobbyError::Validation(f.errors));
    };
    let c = CreateLobby {
        name,
        max_players: max_players.unwrap_or(DEFAULT_MAX_PLAYERS),
        is_private,
        use_invite_code,
        allow_late_join,
        region: region.unwrap_or_else(|| DEFAULT_REGION.into()),
        settings,
        host,
        timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
    };
    f.finish(c)
}

/// Validates an UpdateLobby body.
pub fn update(body: &Value) -> Result<UpdateLobby, LobbyError> {
    let mut f = Fields::new(object(body)?, "");
    let requester = f.required_string("requesterId", 1, MAX_PLAYER_ID);
    let target = f.string("targetPlayerId", 1, MAX_PLAYER_ID);
    let host = f.string("host", 1, MAX_PLAYER_ID);
    let status = f
        .one_of("status", &Status::SETTABLE)
        .and_then(|s| Status::settable(&s));
    let player_state = f.object("playerState").cloned();
    let mut settings = f.settings(false);
    if let Some(inner) = f.nested("settings", "settings.", |n| n.settings(true)) {
        merge(&mut settings, inner);
    }
    let matchmaking = f
        .nested("matchmaking", "matchmaking.", |m| {
            if m.get("action").is_none() {
                m.fail(
                    "action",
                    "must be one of the following values: start, cancel",
                );
            }
            match m.one_of("action", &["start", "cancel"]).as_deref() {
                Some("start") => {
                    let mode = m.required_string("mode", 1, 255);
                    let data = m.object("data").map(|o| Value::Object(o.clone()));
                    mode.map(|mode| Matchmaking::Start { mode, data })
                }
                Some(_) => Some(Matchmaking::Cancel),
                None => None,
            }
        })
        .flatten();
    match requester {
        Some(requester) => f.finish(UpdateLobby {
            requester,
            target,
            host,
            status,
            settings,
            player_state,
            matchmaking,
        }),
        None => Err(LobbyError::Validation(f.errors)),
    }
}

fn merge(into: &mut SettingsChange, from: SettingsChange) {
    macro_rules! take {
        ($($f:ident),*) => { $( if from.$f.is_some() { into.$f = from.$f; } )* };
    }
    take!(
        name,
        max_players,
        is_private,
        use_invite_code,
        allow_late_join,
        region,
        custom
    );
}

/// Validates an AddPlayer body.
pub fn add_player(body: &Value) -> Result<AddPlayer, LobbyError> {
    let mut f = Fields::new(object(body)?, "");
    let player_id = f.required_string("playerId", 1, MAX_PLAYER_ID);
    let metadata = f
        .object("metadata")
        .map(|o| Value::Object(o.clone()))
        .unwrap_or(Value::Null);
    for key in ["displayName", "name"] {
        if let Some(name) = metadata.get(key).and_then(Value::as_str) {
            if name.chars().count() > MAX_DISPLAY_NAME {
                f.errors.push(format!(
                    "metadata.{key} must be shorter than or equal to {MAX_DISPLAY_NAME} characters"
                ));
            }
        }
    }
    match player_id {
        Some(player_id) => f.finish(AddPlayer {
            player_id,
            metadata,
        }),
        None => Err(LobbyError::Validation(f.errors)),
    }
}

/// Validates a LobbyAction body (`{playerId}`) and a heartbeat body (same shape).
pub fn player_id(body: &Value) -> Result<String, LobbyError> {
    let mut f = Fields::new(object(body)?, "");
    match f.required_string("playerId", 1, MAX_PLAYER_ID) {
        Some(p) => f.finish(p),
        None => Err(LobbyError::Validation(f.errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(e: LobbyError) -> Vec<String> {
        match e {
            LobbyError::Validation(m) => m,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    /// Defaults fill what the client left out; private lobbies always use an invite code.
    #[test]
    fn create_applies_defaults_and_forces_invite_code() {
        let c = create(&json!({"name": "abc", "host": "p1", "isPrivate": true}), 60).unwrap();
        assert_eq!(c.max_players, 8);
        assert_eq!(c.region, "us-west");
        assert_eq!(c.timeout, 300);
        assert!(c.allow_late_join && c.use_invite_code);
        assert_eq!(c.settings, None);
    }

    /// Every broken rule of one body is reported, NestJS-style.
    #[test]
    fn create_reports_every_violation() {
        let m = messages(
            create(
                &json!({"name": "ab", "host": "", "maxPlayers": 101, "region": "mars",
                        "timeout": 59, "isPrivate": "yes", "settings": 3}),
                60,
            )
            .unwrap_err(),
        );
        for want in [
            "name must be longer than or equal to 3 characters",
            "host should not be empty",
            "maxPlayers must not be greater than 100",
            "isPrivate must be a boolean value",
            "settings must be an object",
            "timeout must not be less than 60",
        ] {
            assert!(m.iter().any(|x| x == want), "{want} missing from {m:?}");
        }
        assert!(m.iter().any(|x| x.starts_with("region must be one of")));
        let m = messages(
            create(
                &json!({"name": "x".repeat(51), "host": "h", "maxPlayers": 2.5}),
                60,
            )
            .unwrap_err(),
        );
        assert!(m.contains(&"name must be shorter than or equal to 50 characters".to_owned()));
        assert!(m.contains(&"maxPlayers must be an integer number".to_owned()));
    }

    /// Settings arrive flat (the SDK) or nested (the docs); custom keys sit under settings.settings.
    #[test]
    fn update_reads_flat_and_nested_settings() {
        let u = update(&json!({"requesterId": "h", "maxPlayers": 4,
                               "settings": {"name": "new name", "settings": {"mode": "ctf"}}}))
        .unwrap();
        assert_eq!(u.settings.max_players, Some(4));
        assert_eq!(u.settings.name.as_deref(), Some("new name"));
        assert_eq!(u.settings.custom, Some(Some(json!({"mode": "ctf"}))));
        let m = messages(
            update(&json!({"status": "in_queue", "settings": {"maxPlayers": 0},
                                        "matchmaking": {"action": "start"}}))
            .unwrap_err(),
        );
        assert!(
            m.contains(&"requesterId should not be empty".to_owned()),
            "{m:?}"
        );
        assert!(
            m.contains(&"settings.maxPlayers must not be less than 1".to_owned()),
            "{m:?}"
        );
        assert!(
            m.contains(&"matchmaking.mode should not be empty".to_owned()),
            "{m:?}"
        );
        assert!(
            m.iter().any(|x| x.starts_with("status must be one of")),
            "{m:?}"
        );
    }
}
