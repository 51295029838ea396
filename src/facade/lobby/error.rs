//! The lobby façade's one error type and its one mapping to HTTP.
//!
//! PlayFlow's legacy lobby API is a NestJS app, so every refusal is NestJS's default exception
//! body: `{"statusCode": 400, "message": "...", "error": "Bad Request"}`. Field validation
//! failures carry `message` as an array of strings, as NestJS's `ValidationPipe` does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::room::RoomError;

/// Everything a lobby request can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LobbyError {
    /// Missing or unknown `api-key` header.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A malformed request: bad JSON, a missing query parameter, an unknown lobby config, a rule
    /// of the lobby (full, already in a lobby, bad invite code ...).
    #[error("{0}")]
    BadRequest(String),
    /// Body fields that fail validation, one message per failed rule.
    #[error("{}", .0.join("; "))]
    Validation(Vec<String>),
    /// The requester may not do this (not the host, not in the lobby, kicked recently).
    #[error("{0}")]
    Forbidden(String),
    /// No such lobby (in this project and config), or no such player in it.
    #[error("{0}")]
    NotFound(String),
    /// A body over the 64 KiB limit.
    #[error("request entity too large")]
    PayloadTooLarge,
    /// A room-creation limit (`[limits]`): 429 (503 for the global cap) with `Retry-After`.
    #[error("{0}")]
    Limited(crate::limits::Refused),
    /// A player's state would exceed `max_state_bytes` (serialized JSON, after the merge).
    #[error("playerState must not be larger than {0} bytes of JSON once merged")]
    StateTooLarge(usize),
    /// A broken invariant of the façade itself (never caused by input).
    #[error("{0}")]
    Internal(String),
}

impl LobbyError {
    /// The lobby was not found.
    pub fn lobby_not_found() -> Self {
        Self::NotFound("Lobby not found".into())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) | Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge | Self::StateTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Limited(r) if r.limit == crate::limits::Limit::MaxRooms => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// NestJS's `error` field: the status's reason phrase.
    fn phrase(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "Unauthorized",
            Self::BadRequest(_) | Self::Validation(_) => "Bad Request",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound(_) => "Not Found",
            Self::PayloadTooLarge | Self::StateTooLarge(_) => "Payload Too Large",
            Self::Limited(r) if r.limit == crate::limits::Limit::MaxRooms => "Service Unavailable",
            Self::Limited(_) => "Too Many Requests",
            Self::Internal(_) => "Internal Server Error",
        }
    }
}

impl From<RoomError> for LobbyError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::Closed => Self::lobby_not_found(),
            RoomError::Full => Self::BadRequest("Lobby is full".into()),
            RoomError::NotHost => Self::Forbidden("Only the host can perform this action".into()),
            RoomError::NotMember | RoomError::NotMembers(_) => {
                Self::NotFound("Player not found in lobby".into())
            }
            RoomError::Banned => {
                Self::Forbidden("Player was kicked from this lobby and cannot rejoin yet".into())
            }
            RoomError::Forbidden => Self::Forbidden("Not authorized for this operation".into()),
            RoomError::SelfKick => Self::BadRequest("Host cannot kick themselves".into()),
            RoomError::Unavailable => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for LobbyError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "lobby façade invariant broken");
        }
        let message = match &self {
            Self::Validation(msgs) => json!(msgs),
            other => json!(other.to_string()),
        };
        let body = json!({
            "statusCode": status.as_u16(),
            "message": message,
            "error": self.phrase(),
        });
        if let Self::Limited(r) = &self {
            return r.response(body);
        }
        (status, Json(body)).into_response()
    }
}
