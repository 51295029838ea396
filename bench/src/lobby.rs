//! The PlayFlow-style lobby façade as a load client: `POST /lobbies` (the creator is host;
//! `rest --api lobby-create` measures it), `POST /lobbies/{id}/players`, and the
//! `DELETE /lobbies/{id}/players/{player}` that `rest --api lobby-leave` / `lobby-kick` measure
//! (`requesterId` = the player itself, or the host with `isKick=true`). Every call carries the
//! `api-key` header and `?name=<config>`.

use serde_json::{json, Value};

use super::cli::RestArgs;
use super::target::Target;
use super::Error;

/// A lobby API client.
pub struct LobbyClient {
    base: String,
    http: reqwest::Client,
    api_key: String,
    config: String,
}

impl LobbyClient {
    /// A client for the target's lobby façade.
    pub fn new(target: &Target, a: &RestArgs) -> Self {
        Self {
            base: target.base.clone(),
            http: target.http.clone(),
            api_key: a.lobby_api_key.clone(),
            config: a.lobby_config.clone(),
        }
    }

    /// The room id sockets use for lobby `id`.
    pub fn room_key(id: &str) -> String {
        format!("lobby:{id}")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), Error> {
        let r = req.header("api-key", &self.api_key).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /lobbies` with `host` as creator (up to 100 players): the status and the answer
    /// (`rest --api lobby-create` measures this call).
    pub async fn create_call(&self, name: &str, host: &str) -> Result<(u16, Value), Error> {
        let url = format!("{}/lobbies", self.base);
        let body = json!({"name": name, "host": host, "maxPlayers": 100});
        self.send(
            self.http
                .post(url)
                .query(&[("name", &self.config)])
                .json(&body),
        )
        .await
    }

    /// [`Self::create_call`] that must succeed: the lobby id.
    pub async fn create(&self, name: &str, host: &str) -> Result<String, Error> {
        let (status, v) = self.create_call(name, host).await?;
        match (status, v["id"].as_str()) {
            (200 | 201, Some(id)) => Ok(id.to_owned()),
            _ => Err(format!("POST /lobbies: HTTP {status} {v}").into()),
        }
    }

    /// `POST /lobbies/{id}/players` for one player.
    pub async fn add(&self, id: &str, player: &str) -> Result<(), Error> {
        let url = format!("{}/lobbies/{id}/players", self.base);
        let (status, v) = self
            .send(
                self.http
                    .post(url)
                    .query(&[("name", &self.config)])
                    .json(&json!({ "playerId": player })),
            )
            .await?;
        if status != 200 {
            return Err(format!("POST /lobbies/{id}/players: HTTP {status} {v}").into());
        }
        Ok(())
    }

    /// The measured call: `player` leaves (`kick_by: None`) or the host kicks it.
    pub async fn remove(
        &self,
        id: &str,
        player: &str,
        kick_by: Option<&str>,
    ) -> Result<(u16, Value), Error> {
        let url = format!("{}/lobbies/{id}/players/{player}", self.base);
        let mut q = vec![
            ("name", self.config.as_str()),
            ("requesterId", kick_by.unwrap_or(player)),
        ];
        if kick_by.is_some() {
            q.push(("isKick", "true"));
        }
        self.send(self.http.delete(url).query(&q)).await
    }
}
