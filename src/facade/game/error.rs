//! Every way a game-room request can fail, and the one place that maps each to the vendor's HTTP
//! status and body.
//!
//! PLYR answers `{"error": "<string>"}` almost everywhere; two checks deviate and we keep them:
//! the session-JWT check adds `invalidPlyrIds`, and the "all joined" check of `/game/leave` puts
//! an *array* of strings in `error`. A sync call that outlives its bound answers the vendor's
//! 504 task object instead of an `{error}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::tasks::TaskId;

/// The message of a sync call that did not finish in time (the vendor's wording).
pub const TIMEOUT_MESSAGE: &str =
    "Task timeout, but still maybe success, you can check the task status by taskId later";

/// Errors of the game-room API. Variants carry exactly what their body needs.
#[derive(Debug, thiserror::Error)]
pub enum GameError {
    /// `apikey`, `signature` or `timestamp` absent (or empty).
    #[error("Missing authentication headers")]
    MissingHeaders,
    /// No configured key has this `apikey`.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// The HMAC matches neither the raw body nor its re-serialization.
    #[error("Invalid signature")]
    InvalidSignature,
    /// `timestamp` is more than 5 minutes away from now, or not a decimal number.
    #[error("Request expired")]
    RequestExpired,
    /// The key's role is below the route's.
    #[error("Insufficient permissions")]
    InsufficientPermissions,
    /// The body is not JSON.
    #[error("Invalid JSON body: {0}")]
    BadJson(String),
    /// The body exceeds the server's limit.
    #[error("Payload too large")]
    PayloadTooLarge,
    /// A missing or malformed parameter (`roomId is required`, `sessionJwts is empty`, ...).
    #[error("{0}")]
    BadRequest(String),
    /// Some session JWTs did not verify: plyrId (or `unknown`) → reason.
    #[error("Invalid sessionJwts")]
    InvalidSessionJwts(Map<String, Value>),
    /// `/game/leave` named players that are not in the room (nobody left).
    #[error("Player is not joined")]
    NotJoined(Vec<String>),
    /// No live room with this `roomId` for the key's game.
    #[error("Room not found")]
    RoomNotFound,
    /// A sync call's task did not finish within the bound; it may still succeed.
    #[error("{TIMEOUT_MESSAGE}")]
    Timeout(TaskId),
    /// A room-creation limit (`[limits]`): 429 (503 for the global cap) with `Retry-After`.
    #[error("{0}")]
    Limited(crate::limits::Refused),
    /// A bug or an exhausted runtime: never expected.
    #[error("{0}")]
    Internal(String),
}

impl GameError {
    /// The HTTP status, as the vendor's code answers it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingHeaders
            | Self::InvalidApiKey
            | Self::InvalidSignature
            | Self::RequestExpired
            | Self::InvalidSessionJwts(_)
            | Self::NotJoined(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientPermissions => StatusCode::FORBIDDEN,
            Self::BadJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RoomNotFound => StatusCode::NOT_FOUND,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Limited(r) if r.limit == crate::limits::Limit::MaxRooms => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        match self {
            Self::InvalidSessionJwts(invalid) => {
                json!({ "error": self.to_string(), "invalidPlyrIds": invalid })
            }
            Self::NotJoined(ids) => {
                let errors: Vec<String> = ids
                    .iter()
                    .map(|id| format!("Player is not joined: {id}"))
                    .collect();
                json!({ "error": errors })
            }
            Self::Timeout(id) => {
                json!({ "taskId": id, "status": "TIMEOUT", "errorMessage": TIMEOUT_MESSAGE })
            }
            Self::MissingHeaders
            | Self::InvalidApiKey
            | Self::InvalidSignature
            | Self::RequestExpired
            | Self::InsufficientPermissions
            | Self::BadJson(_)
            | Self::PayloadTooLarge
            | Self::BadRequest(_)
            | Self::RoomNotFound
            | Self::Limited(_)
            | Self::Internal(_) => json!({ "error": self.to_string() }),
        }
    }
}

impl IntoResponse for GameError {
    fn into_response(self) -> Response {
        if let Self::Internal(e) = &self {
            tracing::error!(error = %e, "game API internal error");
        }
        if let Self::Limited(r) = &self {
            return r.response(self.body());
        }
        (self.status(), Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two vendor bodies that are not `{error: string}` keep their exact shape.
    #[test]
    fn odd_vendor_bodies_keep_their_shape() {
        let e = GameError::NotJoined(vec!["a".into(), "b".into()]);
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.body(),
            json!({"error": ["Player is not joined: a", "Player is not joined: b"]})
        );
        let mut m = Map::new();
        m.insert("unknown".into(), json!("Invalid sessionJwt"));
        let e = GameError::InvalidSessionJwts(m);
        assert_eq!(
            e.body(),
            json!({"error": "Invalid sessionJwts", "invalidPlyrIds": {"unknown": "Invalid sessionJwt"}})
        );
        assert_eq!(
            GameError::InsufficientPermissions.status(),
            StatusCode::FORBIDDEN
        );
    }
}
