//! The body-read deadline: a request body must arrive completely within `body_read_secs` of its
//! head (see [`crate::deadlines`]). A trickled body is cut off with an error where the handler
//! reads it, and whatever the handler answered is replaced by `408 request_timeout` with
//! `connection: close`, so the slot is freed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body::{Frame, SizeHint};
use serde_json::json;
use tokio::time::{Instant, Sleep};

use crate::app::App;
use crate::deadlines::Phase;

/// Middleware: puts the body-read deadline on every request that has a body.
pub async fn body_deadline(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let limit = app.settings.deadlines.body_read;
    let expired = Arc::new(AtomicBool::new(false));
    let flag = expired.clone();
    let req = req.map(|inner| {
        Body::new(Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + limit)),
            expired: flag,
        })
    });
    let resp = next.run(req).await;
    if !expired.load(Ordering::Relaxed) {
        return resp;
    }
    app.stats.deadline(Phase::Body);
    let message = format!(
        "the request body did not arrive within {} s.",
        limit.as_secs_f64()
    );
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        Json(json!({ "error": "request_timeout", "message": message })),
    )
        .into_response()
}

/// A body that fails with `TimedOut` once its deadline passes.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expired.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request body deadline",
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
