//! The Digital Samba-style video façade as a load client: `POST /api/v1/rooms` (set-up) and the
//! `POST /api/v1/rooms/{room}/phone-participants/joined` that `rest --api video-joined`
//! measures. Every call carries the team's developer key as HTTP Basic (`team:key`), one of the
//! three forms the vendor documents (`protocol/video.md`, "Authentication").

use serde_json::{json, Value};

use super::cli::RestArgs;
use super::target::Target;
use super::Error;

/// A video API client for one team.
pub struct VideoClient {
    base: String,
    http: reqwest::Client,
    team: String,
    key: String,
}

impl VideoClient {
    /// A client for the target's video façade.
    pub fn new(target: &Target, a: &RestArgs) -> Self {
        Self {
            base: target.base.clone(),
            http: target.http.clone(),
            team: a.video_team.clone(),
            key: a.video_key.clone(),
        }
    }

    /// The room id sockets use for video room `uuid`.
    pub fn room_key(uuid: &str) -> String {
        format!("video:{uuid}")
    }

    /// `POST /api/v1/rooms` named `friendly_url` (3–32 of `[A-Za-z0-9_-]`): the room's UUID.
    pub async fn create_room(&self, friendly_url: &str) -> Result<String, Error> {
        let r = self
            .http
            .post(format!("{}/api/v1/rooms", self.base))
            .basic_auth(&self.team, Some(&self.key))
            .json(&json!({"friendly_url": friendly_url, "privacy": "public"}))
            .send()
            .await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match (status, v["id"].as_str()) {
            (200, Some(id)) => Ok(id.to_owned()),
            _ => Err(format!("POST /api/v1/rooms: HTTP {status} {v}").into()),
        }
    }

    /// The measured call: phone participant `call_id` (named `name`) joins room `uuid`, as a
    /// batch of one (the body is a JSON array of `{call_id, name?, caller_number?, …}`). The
    /// status and the body (empty on success, as the vendor documents).
    pub async fn phone_joined(
        &self,
        uuid: &str,
        call_id: &str,
        name: &str,
    ) -> Result<(u16, Value), Error> {
        let r = self
            .http
            .post(format!(
                "{}/api/v1/rooms/{uuid}/phone-participants/joined",
                self.base
            ))
            .basic_auth(&self.team, Some(&self.key))
            .json(&json!([{"call_id": call_id, "name": name}]))
            .send()
            .await?;
        let status = r.status().as_u16();
        // Read the body either way, so the connection goes back to the pool.
        let body = r.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        ))
    }
}
