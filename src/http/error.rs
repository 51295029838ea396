//! The native REST error: one enum, one status mapping, a JSON body `{error, message}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::room::RoomError;

/// Errors of the operator REST API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong admin token.
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// No such room.
    #[error("room not found")]
    NotFound,
    /// The body is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the operator API's limit (64 KiB).
    #[error("the request body is over 64 KiB")]
    PayloadTooLarge,
    /// The room refused.
    #[error(transparent)]
    Room(#[from] RoomError),
}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Room(e) => match e {
                RoomError::Closed => StatusCode::NOT_FOUND,
                RoomError::Full => StatusCode::CONFLICT,
                RoomError::NotHost | RoomError::Forbidden | RoomError::Banned => {
                    StatusCode::FORBIDDEN
                }
                RoomError::NotMember | RoomError::NotMembers(_) => StatusCode::NOT_FOUND,
                RoomError::SelfKick => StatusCode::BAD_REQUEST,
                RoomError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// Machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "room_not_found",
            Self::BadRequest(_) => "bad_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Room(RoomError::Closed) => "room_not_found",
            Self::Room(e) => match e.code() {
                crate::protocol::ErrorCode::RoomFull => "room_full",
                crate::protocol::ErrorCode::NotMember => "not_member",
                crate::protocol::ErrorCode::Banned => "banned",
                crate::protocol::ErrorCode::Forbidden => "forbidden",
                crate::protocol::ErrorCode::NotHost => "not_host",
                crate::protocol::ErrorCode::Unavailable => "unavailable",
                _ => "bad_request",
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let Self::Room(RoomError::NotMembers(ids)) = &self {
            body["members"] = json!(ids);
        }
        (self.status(), Json(body)).into_response()
    }
}
