//! The video façade's errors: one enum, one status mapping, the vendor's (Laravel) bodies:
//! `{message}` for 401/403/404/413/500 and `{message, errors:{field:[...]}}` for 422.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::room::RoomError;

/// Field → messages, in the order they were found (Laravel's `errors` object).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Records `message` against `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        match self.0.iter_mut().find(|(f, _)| *f == field) {
            Some((_, messages)) => messages.push(message.into()),
            None => self.0.push((field, vec![message.into()])),
        }
    }
    /// How many messages were recorded.
    pub fn count(&self) -> usize {
        self.0.iter().map(|(_, m)| m.len()).sum()
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(())` when empty, else the 422 error.
    pub fn check(self) -> Result<(), VideoError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(VideoError::Invalid(self))
        }
    }
    /// One error on one field, as a 422.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> VideoError {
        let mut e = Self::new();
        e.add(field, message);
        VideoError::Invalid(e)
    }
    /// The `errors` object.
    fn to_json(&self) -> Value {
        let map: Map<String, Value> = self.0.iter().map(|(f, m)| (f.clone(), json!(m))).collect();
        Value::Object(map)
    }
    /// Laravel's summary: the first message, plus "(and N more errors)".
    fn summary(&self) -> String {
        let total = self.count();
        let first = self
            .0
            .iter()
            .flat_map(|(_, m)| m)
            .next()
            .cloned()
            .unwrap_or_else(|| "The given data was invalid.".into());
        match total {
            0 | 1 => first,
            2 => format!("{first} (and 1 more error)"),
            n => format!("{first} (and {} more errors)", n - 1),
        }
    }
}

/// Everything the video façade can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// No valid developer key in `Authorization`.
    #[error("Unauthenticated.")]
    Unauthenticated,
    /// No such room in the caller's team (another team's room included).
    #[error("Room not found.")]
    RoomNotFound,
    /// The body or query failed validation.
    #[error("{}", .0.summary())]
    Invalid(FieldErrors),
    /// The room is at `max_participants`.
    #[error("The room is full: it has reached max_participants.")]
    RoomFull,
    /// A participant id was removed by a kick and its ban has not expired.
    #[error("A participant in this request was removed from the room and may not rejoin yet.")]
    Banned,
    /// The body exceeds the request size limit.
    #[error("The request body is too large.")]
    TooLarge,
    /// The body could not be read.
    #[error("The request body could not be read.")]
    BadBody,
    /// A room-creation limit (`[limits]`): 429 (503 for the global cap) with `Retry-After`.
    #[error("{0}")]
    Limited(crate::limits::Refused),
    /// A room refusal that no video route can cause (a bug if seen); logged, not shown.
    #[error("Server Error")]
    Internal(RoomError),
}

impl From<RoomError> for VideoError {
    fn from(e: RoomError) -> Self {
        match e {
            // The room was deleted while the request was in flight.
            RoomError::Closed => Self::RoomNotFound,
            RoomError::Full => Self::RoomFull,
            RoomError::Banned => Self::Banned,
            RoomError::NotHost
            | RoomError::NotMember
            | RoomError::NotMembers(_)
            | RoomError::Forbidden
            | RoomError::SelfKick
            | RoomError::Unavailable => Self::Internal(e),
        }
    }
}

impl VideoError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::RoomNotFound => StatusCode::NOT_FOUND,
            Self::Invalid(_) | Self::RoomFull => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Banned => StatusCode::FORBIDDEN,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadBody => StatusCode::BAD_REQUEST,
            Self::Limited(r) if r.limit == crate::limits::Limit::MaxRooms => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for VideoError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        match self {
            Self::Invalid(errors) => (
                status,
                Json(json!({ "message": message, "errors": errors.to_json() })),
            )
                .into_response(),
            Self::RoomFull => (
                status,
                Json(json!({
                    "message": message,
                    "errors": { "max_participants": [message] },
                })),
            )
                .into_response(),
            Self::Unauthenticated => (
                status,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"rollcall\", Bearer")],
                Json(json!({ "message": message })),
            )
                .into_response(),
            Self::Limited(r) => r.response(json!({ "message": message })),
            Self::Internal(e) => {
                tracing::error!(error = %e, "video façade: unexpected room refusal");
                (status, Json(json!({ "message": message }))).into_response()
            }
            Self::RoomNotFound | Self::Banned | Self::TooLarge | Self::BadBody => {
                (status, Json(json!({ "message": message }))).into_response()
            }
        }
    }
}
