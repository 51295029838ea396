//! Digital Samba-style video rooms under `/api/v1` (spec: `protocol/video.md`; facts:
//! `SEED-APIS.md` §3; contract: `vendor/digitalsamba.openapi.yaml`).
//!
//! A team creates rooms over REST (`POST /api/v1/rooms`); each is a room actor keyed
//! `video:<uuid>` of kind [`RoomKind::Video`]. Phone callers are added and removed by the telephony
//! bridge's `phone-participants/joined` and `/left` calls (one `joined` / one `left` event per
//! batch); web participants join the same room over the WebSocket with a room token (HS256 signed
//! with the team's developer key). `live/participants` lists both.
//!
//! - [`auth`]: the team's developer key in its three documented forms.
//! - [`token`]: room tokens: verification for the WebSocket upgrade, and signing (dev/tests).
//! - [`directory`]: which team owns which room, and the per-team `friendly_url` index.
//! - [`body`]: JSON bodies, query strings and Laravel-style validation errors.
//! - [`rooms`]: create, list, get, update and delete rooms.
//! - [`phone`]: phone participants joined / left.
//! - [`live`]: live participant listings.
//! - [`error`]: the one error enum of this façade and its HTTP mapping.
//!
//! The façade's own state ([`VideoState`]) holds only what the room actors cannot: the teams, the
//! directory, and what web participants' tokens said about them (role, external id). Everything
//! about a room's members lives in its actor.

pub mod auth;
pub mod body;
pub mod directory;
pub mod error;
pub mod live;
pub mod phone;
pub mod rooms;
pub mod token;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::app::App;
use crate::auth::AuthError;
use crate::auth::Identity;
use crate::config::{ConfigError, Settings};
use crate::ids::RoomId;

/// The team id used when no `[[video.teams]]` is configured (development only, logged at start).
pub const DEV_TEAM_ID: &str = "dev-team";
/// The developer key of [`DEV_TEAM_ID`] (development only, logged at start).
pub const DEV_DEVELOPER_KEY: &str = "dev-developer-key";

/// A team id (the Basic user name, the `td` claim of room tokens).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TeamId(Arc<str>);

impl TeamId {
    /// Wraps a configured team id.
    pub fn new(s: &str) -> Self {
        Self(s.into())
    }
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TeamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One configured team.
#[derive(Clone)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Its developer key: REST credential and room-token HS256 secret. Never logged.
    key: Arc<str>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("id", &self.id).finish()
    }
}

impl Team {
    /// The developer key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The video façade's state.
#[derive(Debug)]
pub struct VideoState {
    /// Configured teams (or the one dev team).
    teams: Vec<Team>,
    /// Room ownership and names.
    pub directory: directory::Directory,
    /// What web participants' room tokens said (role, external id), for the live listings.
    pub seats: token::Seats,
}

impl VideoState {
    /// Lists stored rooms again at start, in creation order. A room whose team is no longer
    /// configured stays stored but unlisted (logged): its team's calls cannot reach it anyway.
    pub fn restore(&self, rooms: &[crate::store::RoomRecord]) {
        let mut mine: Vec<&crate::store::RoomRecord> = rooms
            .iter()
            .filter(|r| r.kind == crate::room::RoomKind::Video)
            .collect();
        mine.sort_by_key(|r| r.created_at);
        for r in mine {
            let uuid =
                r.id.strip_prefix("video:")
                    .and_then(|u| uuid::Uuid::parse_str(u).ok());
            let team = r.private.get("team").and_then(|t| t.as_str());
            let (Some(uuid), Some(team)) = (uuid, team) else {
                tracing::warn!(room = %r.id, "stored video room without a team or id: not listed");
                continue;
            };
            let Some(team) = self.teams.iter().find(|t| t.id.as_str() == team) else {
                tracing::warn!(room = %r.id, team, "stored video room of a team no longer configured: not listed");
                continue;
            };
            if let Some(name) = r.attrs.get("friendly_url").and_then(|n| n.as_str()) {
                self.directory.reserve(&team.id, name, uuid);
            }
            self.directory.insert(uuid, &team.id);
        }
    }

    /// Builds the state from `[video]`; no teams configured → the dev team in development mode,
    /// no team (every call refused) in production.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let configured = &settings.video.teams;
        let mut teams: Vec<Team> = Vec::with_capacity(configured.len().max(1));
        for t in configured {
            let invalid = |reason: String| ConfigError::Invalid {
                field: "video.teams",
                reason,
            };
            if t.team_id.is_empty() || t.team_id.len() > 255 || t.team_id.contains(':') {
                return Err(invalid(format!(
                    "team_id {:?} must be 1-255 characters without ':'",
                    t.team_id
                )));
            }
            if t.developer_key.len() < 8 {
                return Err(invalid(format!(
                    "the developer_key of team {:?} must be at least 8 bytes",
                    t.team_id
                )));
            }
            if teams.iter().any(|x| x.id.as_str() == t.team_id) {
                return Err(invalid(format!("team_id {:?} is listed twice", t.team_id)));
            }
            // `Bearer <key>` names no team, so a key must identify exactly one.
            if teams.iter().any(|x| x.key() == t.developer_key) {
                return Err(invalid(format!(
                    "team {:?} reuses another team's developer_key",
                    t.team_id
                )));
            }
            teams.push(Team {
                id: TeamId::new(&t.team_id),
                key: t.developer_key.as_str().into(),
            });
        }
        // The development team only in development mode (`crate::devmode`); in production no
        // team means every video call is refused.
        if teams.is_empty() && !settings.mode.is_dev() {
            tracing::warn!("video rooms: no [[video.teams]] configured: every call is refused");
        } else if teams.is_empty() {
            teams.push(Team {
                id: TeamId::new(DEV_TEAM_ID),
                key: DEV_DEVELOPER_KEY.into(),
            });
        }
        Ok(Self {
            teams,
            directory: directory::Directory::default(),
            seats: token::Seats::default(),
        })
    }

    /// Every team.
    pub fn teams(&self) -> &[Team] {
        &self.teams
    }

    /// The team with id `id`.
    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id.as_str() == id)
    }
}

/// The room key of video room `uuid`.
pub fn room_key(uuid: uuid::Uuid) -> RoomId {
    RoomId::from(format!("video:{uuid}"))
}

/// The cluster namespace of `team`'s `friendly_url`s (`Cluster::claim_name`).
pub fn names_ns(team: &TeamId) -> String {
    format!("v/{team}")
}

/// The cluster set of `team`'s rooms (`Cluster::set_add`).
pub fn rooms_ns(team: &TeamId) -> String {
    format!("vr/{team}")
}

/// This façade's routes (all under `/api/v1`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/rooms", get(rooms::list).post(rooms::create))
        .route("/api/v1/rooms/live", get(live::team_counts))
        .route(
            "/api/v1/rooms/live/participants",
            get(live::team_participants),
        )
        .route(
            "/api/v1/rooms/{room}",
            get(rooms::get).patch(rooms::update).delete(rooms::delete),
        )
        .route("/api/v1/rooms/{room}/live", get(live::room_count))
        .route(
            "/api/v1/rooms/{room}/live/participants",
            get(live::room_participants),
        )
        .route(
            "/api/v1/rooms/{room}/phone-participants/joined",
            post(phone::joined),
        )
        .route(
            "/api/v1/rooms/{room}/phone-participants/left",
            post(phone::left),
        )
}

/// Verifies a video room token (claims `td`/`rd`), if it is one: `None` for any other token.
pub fn verify_socket_token(app: &App, token: &str) -> Option<Result<Identity, AuthError>> {
    token::verify(&app.facades.video, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, VideoConfig, VideoTeam};

    fn settings(teams: Vec<(&str, &str)>) -> Settings {
        let f = FileConfig {
            video: VideoConfig {
                teams: teams
                    .into_iter()
                    .map(|(t, k)| VideoTeam {
                        team_id: t.into(),
                        developer_key: k.into(),
                    })
                    .collect(),
            },
            ..FileConfig::default()
        };
        Settings::from_file(f).unwrap()
    }

    /// No teams configured: one dev team with the documented credentials.
    #[test]
    fn no_teams_means_the_dev_team() {
        let s = VideoState::new(&settings(vec![])).unwrap();
        assert_eq!(s.teams().len(), 1);
        let t = s.team(DEV_TEAM_ID).unwrap();
        assert_eq!(t.key(), DEV_DEVELOPER_KEY);
    }

    /// Teams that would make credentials ambiguous or weak are refused, naming the field.
    #[test]
    fn ambiguous_or_weak_teams_are_refused() {
        for teams in [
            vec![("a", "same-key-1234"), ("b", "same-key-1234")],
            vec![("a", "key-one-1234"), ("a", "key-two-1234")],
            vec![("a:b", "key-one-1234")],
            vec![("", "key-one-1234")],
            vec![("a", "short")],
        ] {
            let e = VideoState::new(&settings(teams.clone())).unwrap_err();
            assert!(e.to_string().contains("video.teams"), "{teams:?}: {e}");
        }
    }
}
