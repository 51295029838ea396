//! One WebSocket client connection, and the parsing of server frames.
//!
//! Clients bind their TCP socket to a chosen loopback source address (ports run out near 28,000
//! connections per source address and server port), then run the WebSocket handshake on that
//! stream. Buffers are kept small: a load generator holding 20,000 sockets with the library's
//! 128 KiB defaults would measure its own memory, not the server's.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use super::Error;

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Connects to `addr`, optionally from `source`, and upgrades with `token` in the query string.
pub async fn connect(
    addr: SocketAddr,
    ws_url: &str,
    token: &str,
    source: Option<IpAddr>,
) -> Result<Ws, Error> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20));
    let url = format!("{ws_url}?token={token}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// The fields of a server frame the scenarios read; everything else is skipped unparsed.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// `type`.
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    /// Room version (events and panels).
    #[serde(default)]
    pub version: Option<u64>,
    /// Rows (`panel`, `joined`) or ids (`left`), parsed on demand.
    #[serde(default, borrow)]
    pub members: Option<&'a RawValue>,
    /// Host (`panel`, `joined`, `left`).
    #[serde(default, borrow)]
    pub host: Option<Cow<'a, str>>,
    /// `state` event: whose state.
    #[serde(default, borrow)]
    pub state: Option<&'a RawValue>,
    /// `left` reason.
    #[serde(default, borrow)]
    pub reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Row<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

impl<'a> Frame<'a> {
    /// Parses a text frame.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Member ids of a `panel`/`joined` (rows) or `left` (ids).
    pub fn member_ids(&self) -> Vec<Cow<'a, str>> {
        let Some(raw) = self.members else {
            return Vec::new();
        };
        if self.ty == "left" {
            serde_json::from_str::<Vec<Cow<'a, str>>>(raw.get()).unwrap_or_default()
        } else {
            serde_json::from_str::<Vec<Row<'a>>>(raw.get())
                .map(|rows| rows.into_iter().map(|r| r.id).collect())
                .unwrap_or_default()
        }
    }
}

/// The member index encoded in a bench member id (`<prefix>-<room>-<index>`).
pub fn member_index(id: &str) -> Option<usize> {
    id.rsplit('-').next()?.parse().ok()
}
