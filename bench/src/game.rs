//! The PLYR-style game façade as a load client: `/game/create`, `/game/join` and the signed,
//! synchronous `/game/leave` that `rest --api game` measures.
//!
//! Requests are signed as the vendor documents: headers `apikey`, `timestamp` (ms) and
//! `signature` = hex HMAC-SHA256(secret, timestamp + body); session JWTs are ES256 with
//! `plyrId`, `gameId`, `nonce`, `exp`, signed with the key given by `--session-key`.

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::Sha256;

use super::cli::RestArgs;
use super::target::Target;
use super::Error;

/// A PLYR API client: signs requests and mints session tokens.
pub struct GameClient {
    base: String,
    http: reqwest::Client,
    api_key: String,
    secret: String,
    game_id: String,
    session_key: EncodingKey,
}

impl GameClient {
    /// A client for the target's game façade.
    pub fn new(target: &Target, a: &RestArgs) -> Result<Self, Error> {
        let path = a.session_key.as_ref().ok_or(
            "--api game needs --session-key PEM (on the embedded default: \
             src/facade/game/dev-keys/session-private.pem)",
        )?;
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            base: target.base.clone(),
            http: target.http.clone(),
            api_key: a.game_api_key.clone(),
            secret: a.game_secret.clone(),
            game_id: a.game_id.to_lowercase(),
            session_key: EncodingKey::from_ec_pem(&pem)?,
        })
    }

    /// The room id sockets use for game room `room_no`.
    pub fn room_key(&self, room_no: &str) -> String {
        format!("game:{}:{room_no}", self.game_id)
    }

    /// A session JWT for `plyr`, valid for an hour.
    pub fn session(&self, plyr: &str) -> Result<String, Error> {
        let claims = json!({
            "plyrId": plyr,
            "gameId": self.game_id,
            "nonce": 1,
            "exp": rollcall::auth::unix_now() + 3600,
        });
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &self.session_key,
        )?)
    }

    /// A signed POST; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), Error> {
        let body = serde_json::to_vec(body)?;
        let ts = super::stats::unix_nanos() / 1_000_000;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())?;
        mac.update(ts.to_string().as_bytes());
        mac.update(&body);
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("apikey", &self.api_key)
            .header("timestamp", ts.to_string())
            .header("signature", hex::encode(mac.finalize().into_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `/game/create` (sync): the new room's number.
    pub async fn create_room(&self) -> Result<String, Error> {
        let (status, v) = self.post("/game/create", &json!({"sync": true})).await?;
        let no = v["roomId"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| v["roomId"].as_u64().map(|n| n.to_string()));
        match (status, no) {
            (200, Some(no)) => Ok(no),
            _ => Err(format!("/game/create: HTTP {status} {v}").into()),
        }
    }

    /// `/game/join` (sync) of `players`, in batches of 200 tokens; returns each player's token.
    pub async fn add_players(
        &self,
        room_no: &str,
        players: &[String],
    ) -> Result<Vec<String>, Error> {
        let jwts: Vec<String> = players
            .iter()
            .map(|p| self.session(p))
            .collect::<Result<_, _>>()?;
        for batch in jwts.chunks(200) {
            let body = json!({"roomId": room_no, "sessionJwts": batch, "sync": true});
            let (status, v) = self.post("/game/join", &body).await?;
            if status != 200 {
                return Err(format!("/game/join: HTTP {status} {v}").into());
            }
        }
        Ok(jwts)
    }

    /// The measured call: `/game/leave` (sync) of one player by its session token.
    pub async fn leave(&self, room_no: &str, jwt: &str) -> Result<(u16, Value), Error> {
        self.post(
            "/game/leave",
            &json!({"roomId": room_no, "sessionJwts": [jwt], "sync": true}),
        )
        .await
    }
}
