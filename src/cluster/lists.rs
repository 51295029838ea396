//! Listings across the cluster: `GET /lobbies` (PlayFlow) answers with every lobby of the
//! cluster, not only those whose façade index is on the node asked. The node serves its own
//! part, asks every other live node for theirs (the same request, marked forwarded, so each
//! answers from its own index), and merges: one entry per lobby id, in the handler's order
//! (creation time, then id). A node that does not answer in time is left out of that answer
//! (it is dying: its lobbies come back once a survivor takes them over).

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{link, Cluster};

/// The largest listing read from one node.
const MAX_LIST: usize = 16 << 20;
/// How long another node may take to answer its part.
const PART_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `req` is a listing served cluster-wide.
pub(super) fn is_list(req: &Request) -> bool {
    req.method() == Method::GET && req.uri().path() == "/lobbies"
}

/// Serves the listing: this node's part, then every other live node's, merged.
pub(super) async fn merged(c: &Cluster, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/lobbies".into());
    let headers = parts.headers.clone();
    let local = next.run(Request::from_parts(parts, body)).await;
    if local.status() != StatusCode::OK {
        return local; // refused here (auth, a bad query): the same everywhere
    }
    let Some(mut all) = json_array(local).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    // The node set as Redis has it now (the sweep's view may be a beat behind a new node).
    let others: Vec<String> = match link::node_ids(c).await {
        Ok(nodes) => nodes.into_iter().filter(|n| n != c.node_id()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing: the node set is unreadable");
            return super::forward::unavailable(
                "the cluster's Redis is unreachable; retry shortly",
            );
        }
    };
    let asks = others.iter().map(|node| {
        let (headers, path) = (headers.clone(), path.clone());
        async move {
            let addr = link::node_addr(c, node).await.ok().flatten()?;
            let mut rq = super::forward::client()
                .get(format!("http://{addr}{path}"))
                .timeout(PART_TIMEOUT);
            for (k, v) in &headers {
                if k != axum::http::header::HOST {
                    rq = rq.header(k, v);
                }
            }
            let r = rq
                .header(super::forward::FORWARDED, c.node_id())
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => r.json::<Vec<Value>>().await.ok(),
                Ok(r) => {
                    tracing::warn!(%node, status = %r.status(), "a node refused its part of a listing");
                    None
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, "a node did not answer its part of a listing");
                    None
                }
            }
        }
    });
    for part in futures::future::join_all(asks).await.into_iter().flatten() {
        all.extend(part);
    }
    let mut seen = HashSet::new();
    all.retain(|l| seen.insert(l["id"].as_str().unwrap_or("").to_owned()));
    let key = |l: &Value| {
        (
            l["createdAt"].as_str().unwrap_or("").to_owned(),
            l["id"].as_str().unwrap_or("").to_owned(),
        )
    };
    all.sort_by_key(key);
    axum::Json(all).into_response()
}

async fn json_array(r: Response) -> Option<Vec<Value>> {
    let bytes = axum::body::to_bytes(r.into_body(), MAX_LIST).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}
