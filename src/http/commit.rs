//! The commit barrier of every REST write: a request that may change something (any method
//! but `GET`, `HEAD` and `OPTIONS`) is answered only after what it changed is committed to the
//! store ([`crate::app::AppInner::commit`]). When the commit fails (disk full, read-only data
//! dir, I/O error) the handler's answer is replaced by **503** with `Retry-After` and a body in
//! the shape of the API that was called, carrying the code `storage_unavailable`: nothing is
//! acknowledged that a restart could lose. The change stays staged and is retried by the store.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::App;

/// The machine-readable code of the 503.
pub const CODE: &str = "storage_unavailable";

/// The middleware.
pub async fn barrier(State(app): State<App>, req: Request, next: Next) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req.uri().path().to_owned();
    if !reads && app.registry.cluster().is_some_and(|c| !c.redis_up()) {
        // Cluster mode without Redis: a change made here now would diverge from the other
        // nodes. Refused before the handler runs: nothing changed.
        return unavailable(&path, "the cluster's Redis is unreachable");
    }
    let resp = next.run(req).await;
    if reads {
        return resp;
    }
    match app.commit().await {
        Ok(()) => resp,
        Err(e) => {
            tracing::warn!(%path, error = %e, "write not acknowledged: the commit failed");
            unavailable(&path, &e.to_string())
        }
    }
}

/// A 503 in the shape of the API that `path` belongs to.
fn unavailable(path: &str, detail: &str) -> Response {
    let message = format!("Storage unavailable, the change was not saved: {detail}");
    // The game API is served with and without `/api`: test it before the video API's prefix.
    let game = ["/game", "/task", "/api/game", "/api/task"]
        .iter()
        .any(|p| path.starts_with(p));
    let body: Value = if path.starts_with("/lobbies") {
        json!({ "statusCode": 503, "message": message, "error": "Service Unavailable", "code": CODE })
    } else if game {
        json!({ "error": message, "code": CODE })
    } else if path.starts_with("/api/") {
        json!({ "message": message, "code": CODE })
    } else {
        json!({ "error": CODE, "message": message })
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        Json(body),
    )
        .into_response()
}
