//! The HTTP surface: the router that puts the WebSocket endpoint, the operator API, metrics, the
//! panel page and the façades side by side over one [`App`]. Every request is counted by route
//! template, method and status ([`crate::metrics::track`]).

pub mod admin;
pub mod commit;
pub mod deadline;
pub mod error;

use axum::routing::{get, post};
use axum::Router;

use crate::app::App;

/// The whole router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/ws", get(crate::ws::upgrade))
        .route("/healthz", get(admin::healthz))
        .route("/v1/rooms", get(admin::list))
        .route("/v1/rooms/{room}", get(admin::get))
        .route("/v1/rooms/{room}/leave", post(admin::leave))
        .route("/v1/rooms/{room}/kick", post(admin::kick))
        .route("/metrics", get(crate::metrics::handler))
        .merge(crate::panel::routes())
        .merge(crate::facade::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            commit::barrier,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::cluster::forward::middleware,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            deadline::body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::track,
        ))
        .with_state(app)
}
