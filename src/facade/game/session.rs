//! PLYR session JWTs (`sessionJwts[]`): ES256 tokens signed by PLYR, verified with the configured
//! public key, with the checks of the vendor's `checkSessionJwts` middleware (SEED-APIS §1.3).
//!
//! Per token, in the vendor's order: signature (ES256 only, `nbf` honoured) → `gameId` equals the
//! API key's game → `nonce` not older than the newest nonce seen for that player and game → not
//! past `exp`. The vendor keeps each user's current nonce in its database (a new login bumps it,
//! killing older tokens); we have no user database, so we keep the *highest nonce seen* per
//! (game, player): a token older than one we have already seen is stale at PLYR too, so this
//! never refuses a token PLYR would accept. Without a configured key nothing verifies.
//!
//! The same verifier admits a game client's WebSocket with its session token
//! ([`SessionVerifier::verify_socket`]): member id = `plyrId`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::error::GameError;
use crate::auth::AuthError;
use crate::config::ConfigError;

/// The `invalidPlyrIds` key of a token whose player cannot be read (bad signature, not a JWT).
pub const UNKNOWN: &str = "unknown";

/// Most session JWTs accepted in one call (the vendor has no cap; 64 KiB of body holds ~160).
pub const MAX_BATCH: usize = 200;

/// How many (game, player) nonce records are kept before expired ones are pruned.
const NONCE_PRUNE_AT: usize = 100_000;

/// The longest a newest-nonce record refuses older tokens: PLYR's default session lifetime
/// (`expiresIn` 86400 s). A record also ends with the token that set it, so no token, whatever
/// its `nonce` and `exp`, shuts a player out for longer.
pub const NONCE_HOLD_SECS: u64 = 86_400;

/// Why one session JWT was refused (the vendor's reason strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not an ES256 JWT signed by the configured key, or a claim is missing or mistyped.
    Invalid,
    /// `gameId` is not the API key's game.
    GameId,
    /// Legacy `{plyrId: jwt}` form: the key is not the token's `plyrId`.
    PlyrId,
    /// A newer login for this player and game was seen.
    Nonce,
    /// `exp` has passed.
    Deadline,
}

impl Reject {
    /// The vendor's reason string.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid sessionJwt",
            Self::GameId => "Invalid gameId",
            Self::PlyrId => "Invalid plyrId",
            Self::Nonce => "JWT nonce is expired",
            Self::Deadline => "JWT deadline is expired",
        }
    }
}

/// A verified session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The player, lowercased.
    pub plyr_id: String,
    /// The game the session was issued for, lowercased.
    pub game_id: String,
    /// Login counter for (player, game).
    pub nonce: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Verifies session JWTs; remembers the newest nonce per (game, player).
pub struct SessionVerifier {
    key: Option<DecodingKey>,
    nonces: Mutex<HashMap<(String, String), (u64, u64)>>,
}

impl std::fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionVerifier")
            .field("configured", &self.key.is_some())
            .finish()
    }
}

impl SessionVerifier {
    /// Reads the PEM (SPKI) public key, if one is configured.
    pub fn new(public_key_file: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = public_key_file else {
            return Ok(Self {
                key: None,
                nonces: Mutex::new(HashMap::new()),
            });
        };
        let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem, &path.display().to_string())
    }

    /// Uses a PEM (SPKI) public key given in memory; `origin` names it in errors.
    pub fn from_pem(pem: &[u8], origin: &str) -> Result<Self, ConfigError> {
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| ConfigError::Invalid {
            field: "game.session_public_key_file",
            reason: format!("{origin}: not an EC (P-256) SPKI PEM: {e}"),
        })?;
        Ok(Self {
            key: Some(key),
            nonces: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a public key is configured.
    pub fn is_configured(&self) -> bool {
        self.key.is_some()
    }

    /// Checks one token for `game_id` at `now` (seconds). The error names the player when the
    /// signature verified (else `None`: the 401 body keys it as `unknown`).
    pub fn verify(
        &self,
        token: &str,
        game_id: &str,
        now: u64,
    ) -> Result<Session, (Option<String>, Reject)> {
        let s = self.decode(token).map_err(|p| (p, Reject::Invalid))?;
        let who = || Some(s.plyr_id.clone());
        if s.game_id != game_id {
            return Err((who(), Reject::GameId));
        }
        if self.stale(&s, now) {
            return Err((who(), Reject::Nonce));
        }
        if now >= s.exp {
            return Err((who(), Reject::Deadline));
        }
        self.record(&s, now);
        Ok(s)
    }

    /// Signature, `nbf` and claim shape; not `exp` (checked last, naming the player).
    fn decode(&self, token: &str) -> Result<Session, Option<String>> {
        let key = self.key.as_ref().ok_or(None)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = 0;
        v.validate_exp = false;
        v.validate_nbf = true;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v)
            .map_err(|_| None)?
            .claims;
        let plyr_id = claims
            .get("plyrId")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty() && p.len() <= 255)
            .map(str::to_lowercase)
            .ok_or(None)?;
        let (Some(game_id), Some(nonce), Some(exp)) = (
            claims.get("gameId").and_then(Value::as_str),
            claims.get("nonce").and_then(Value::as_u64),
            claims.get("exp").and_then(Value::as_u64),
        ) else {
            return Err(Some(plyr_id));
        };
        Ok(Session {
            plyr_id,
            game_id: game_id.to_lowercase(),
            nonce,
            exp,
        })
    }

    /// True while a newer nonce for this (game, player) is on record: seen in a token that
    /// passed every check and has not expired (at most [`NONCE_HOLD_SECS`] ago).
    fn stale(&self, s: &Session, now: u64) -> bool {
        // A poisoned lock only means another thread panicked mid-update; the map is still sound.
        let nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        nonces
            .get(&(s.game_id.clone(), s.plyr_id.clone()))
            .is_some_and(|&(newest, until)| s.nonce < newest && now < until)
    }

    /// Records the nonce of a token that passed every check: it refuses older nonces until it
    /// expires, for at most [`NONCE_HOLD_SECS`]. Only verified, unexpired tokens get here, so an
    /// expired token cannot move the record.
    fn record(&self, s: &Session, now: u64) {
        let until = s.exp.min(now.saturating_add(NONCE_HOLD_SECS));
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        let key = (s.game_id.clone(), s.plyr_id.clone());
        if let Some((newest, held)) = nonces.get_mut(&key) {
            if now >= *held || s.nonce > *newest {
                (*newest, *held) = (s.nonce, until);
            } else if s.nonce == *newest {
                *held = (*held).max(until);
            }
            return;
        }
        if nonces.len() >= NONCE_PRUNE_AT {
            nonces.retain(|_, (_, held)| *held > now);
        }
        nonces.insert(key, (s.nonce, until));
    }

    /// Checks a request's `sessionJwts` (an array of tokens, or the legacy `{plyrId: token}`
    /// object) for `game_id`; returns the players, lowercased, in order, without duplicates.
    pub fn verify_batch(
        &self,
        jwts: Option<&Value>,
        game_id: &str,
        now: u64,
    ) -> Result<Vec<String>, GameError> {
        let empty = || GameError::BadRequest("sessionJwts is empty".into());
        let items: Vec<(Option<&str>, Option<&str>)> = match jwts {
            None | Some(Value::Null) => return Err(empty()),
            Some(Value::Array(a)) => a.iter().map(|t| (None, t.as_str())).collect(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, t)| (Some(k.as_str()), t.as_str()))
                .collect(),
            Some(_) => {
                return Err(GameError::BadRequest(
                    "sessionJwts must be an array of session JWTs".into(),
                ))
            }
        };
        if items.is_empty() {
            return Err(empty());
        }
        if items.len() > MAX_BATCH {
            return Err(GameError::BadRequest(format!(
                "sessionJwts holds more than {MAX_BATCH} tokens"
            )));
        }
        let mut invalid = Map::new();
        let mut players: Vec<String> = Vec::with_capacity(items.len());
        for (named, token) in items {
            let label = |p: Option<String>| {
                named
                    .map(str::to_owned)
                    .or(p)
                    .unwrap_or_else(|| UNKNOWN.to_owned())
            };
            let Some(token) = token else {
                invalid.insert(label(None), Reject::Invalid.reason().into());
                continue;
            };
            match self.verify(token, game_id, now) {
                Err((p, why)) => {
                    invalid.insert(label(p), why.reason().into());
                }
                Ok(s) if named.is_some_and(|n| n.to_lowercase() != s.plyr_id) => {
                    invalid.insert(label(None), Reject::PlyrId.reason().into());
                }
                Ok(s) => {
                    if !players.contains(&s.plyr_id) {
                        players.push(s.plyr_id);
                    }
                }
            }
        }
        if !invalid.is_empty() {
            return Err(GameError::InvalidSessionJwts(invalid));
        }
        Ok(players)
    }

    /// A game client's socket token: `None` unless it is an ES256 JWT and a key is configured.
    /// `games` are the configured game ids; the token's `gameId` must be one of them.
    pub fn verify_socket<'a>(
        &self,
        token: &str,
        mut games: impl Iterator<Item = &'a str>,
        now: u64,
    ) -> Option<Result<Session, AuthError>> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::ES256 || self.key.is_none() {
            return None;
        }
        let s = match self.decode(token) {
            Ok(s) => s,
            Err(_) => {
                return Some(Err(AuthError::Invalid(
                    "not a valid session token for this server".into(),
                )))
            }
        };
        let r = if !games.any(|g| g == s.game_id) {
            Err(AuthError::Invalid(
                "the session's gameId is not served here".into(),
            ))
        } else if now >= s.exp {
            Err(AuthError::Expired)
        } else if self.stale(&s, now) {
            Err(AuthError::Invalid(Reject::Nonce.reason().into()))
        } else {
            self.record(&s, now);
            Ok(s)
        };
        Some(r)
    }
}

/// Signs a development session token (ES256, the built-in dev key pair) for `plyr_id` in
/// `game_id`, valid for `ttl_secs`. Its `nonce` is the current time, so a newer token supersedes
/// older ones the way a new PLYR login does.
pub fn sign_dev_session(plyr_id: &str, game_id: &str, ttl_secs: u64) -> Result<String, String> {
    let key = jsonwebtoken::EncodingKey::from_ec_pem(super::DEV_SESSION_PRIVATE_KEY.as_bytes())
        .map_err(|e| format!("dev session key: {e}"))?;
    let now = crate::auth::unix_now();
    let claims = serde_json::json!({
        "plyrId": plyr_id.to_lowercase(),
        "gameId": game_id,
        "nonce": now,
        "iat": now,
        "exp": now + ttl_secs,
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::ES256), &claims, &key)
        .map_err(|e| format!("signing: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use serde_json::json;

    /// A fresh P-256 key pair: (PKCS#8 private PEM, SPKI public PEM).
    pub(crate) fn key_pair() -> (String, String) {
        let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let private = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let public = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        (private, public)
    }

    fn sign(private: &str, claims: Value) -> String {
        let key = EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }

    fn verifier(public: &str) -> SessionVerifier {
        let path = std::env::temp_dir().join(format!(
            "rollcall-game-unit-{}-{}.pem",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&path, public).unwrap();
        let v = SessionVerifier::new(Some(&path)).unwrap();
        let _ = std::fs::remove_file(&path); // best effort: the key is already loaded
        v
    }

    /// Every vendor reason, each keyed by the player when the signature verified.
    #[test]
    fn batch_reasons() {
        let (private, public) = key_pair();
        let (other, _) = key_pair();
        let v = verifier(&public);
        let now = 1_000_000;
        let tok = |p: &str, g: &str, n: u64, exp: u64| {
            sign(
                &private,
                json!({"plyrId": p, "gameId": g, "nonce": n, "exp": exp}),
            )
        };
        let ok = v
            .verify_batch(
                Some(&json!([
                    tok("Alice", "g", 1, now + 10),
                    tok("bob", "G", 0, now + 10)
                ])),
                "g",
                now,
            )
            .unwrap();
        assert_eq!(ok, ["alice", "bob"]);
        let forged = sign(
            &other,
            json!({"plyrId": "eve", "gameId": "g", "nonce": 0, "exp": now + 10}),
        );
        let err = v
            .verify_batch(
                Some(&json!([
                    tok("carol", "other", 0, now + 10),
                    tok("alice", "g", 0, now + 10),
                    tok("dave", "g", 0, now),
                    forged,
                    42,
                ])),
                "g",
                now,
            )
            .unwrap_err();
        let GameError::InvalidSessionJwts(m) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            Value::Object(m),
            json!({
                "carol": "Invalid gameId",
                "alice": "JWT nonce is expired",
                "dave": "JWT deadline is expired",
                "unknown": "Invalid sessionJwt",
            })
        );
        // Legacy object form: the key must be the token's player.
        let err = v
            .verify_batch(
                Some(&json!({"mallory": tok("bob", "g", 0, now + 10)})),
                "g",
                now,
            )
            .unwrap_err();
        assert_eq!(
            err.body()["invalidPlyrIds"],
            json!({"mallory": "Invalid plyrId"})
        );
        assert!(
            matches!(v.verify_batch(Some(&json!([])), "g", now), Err(GameError::BadRequest(m)) if m == "sessionJwts is empty")
        );
        assert!(matches!(
            v.verify_batch(None, "g", now),
            Err(GameError::BadRequest(_))
        ));
        assert!(matches!(
            v.verify_batch(Some(&json!("x")), "g", now),
            Err(GameError::BadRequest(_))
        ));
        let many = Value::Array(vec![json!("x"); MAX_BATCH + 1]);
        assert!(matches!(
            v.verify_batch(Some(&many), "g", now),
            Err(GameError::BadRequest(m)) if m.contains("more than")
        ));
    }

    /// A newer nonce refuses older tokens only while the token that carried it is valid, at most
    /// NONCE_HOLD_SECS: a token with nonce 2^63 cannot shut the player out for good, and an
    /// expired token never moves the record.
    #[test]
    fn a_nonce_cannot_lock_a_player_out() {
        let (private, public) = key_pair();
        let v = verifier(&public);
        let now = 1_000_000;
        let tok = |n: u64, exp: u64| {
            sign(
                &private,
                json!({"plyrId": "alice", "gameId": "g", "nonce": n, "exp": exp}),
            )
        };
        // An expired token with a huge nonce is refused and leaves no record.
        assert!(v.verify(&tok(1 << 63, now - 1), "g", now).is_err());
        assert!(v.verify(&tok(5, now + 100), "g", now).is_ok());
        // A valid one with a huge nonce and a far `exp` refuses older nonces for a while...
        assert!(v.verify(&tok(1 << 63, u64::MAX / 2), "g", now).is_ok());
        assert_eq!(
            v.verify(&tok(6, now + 100), "g", now + 10).unwrap_err().1,
            Reject::Nonce
        );
        // ...but no longer than the hold: then the real player is back.
        let later = now + NONCE_HOLD_SECS;
        assert!(v.verify(&tok(6, later + 100), "g", later).is_ok());
        // A short-lived high nonce ends with its token.
        assert!(v.verify(&tok(1 << 62, later + 5), "g", later).is_ok());
        assert!(v.verify(&tok(7, later + 100), "g", later + 5).is_ok());
    }

    /// With no key configured nothing verifies, and socket tokens are not claimed.
    #[test]
    fn no_key_verifies_nothing() {
        let (private, _) = key_pair();
        let v = SessionVerifier::new(None).unwrap();
        let t = sign(
            &private,
            json!({"plyrId": "a", "gameId": "g", "nonce": 0, "exp": u64::MAX / 2}),
        );
        assert_eq!(v.verify(&t, "g", 0).unwrap_err(), (None, Reject::Invalid));
        assert!(v.verify_socket(&t, ["g"].into_iter(), 0).is_none());
    }

    /// The built-in dev key pair signs session tokens that the dev verifier accepts.
    #[test]
    fn dev_session_tokens_verify_with_the_dev_key() {
        let v = SessionVerifier::from_pem(super::super::DEV_SESSION_PUBLIC_KEY.as_bytes(), "dev")
            .unwrap();
        let t = super::sign_dev_session("Alice", "devgame", 60).unwrap();
        let s = v.verify(&t, "devgame", crate::auth::unix_now()).unwrap();
        assert_eq!(s.plyr_id, "alice");
        assert!(v.verify(&t, "othergame", crate::auth::unix_now()).is_err());
    }
}
