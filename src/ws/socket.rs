//! How frames get onto one upgraded socket, with bounded per-socket memory whatever their size.
//!
//! Small frames (up to [`WRITE_BUFFER`]) go through tungstenite's write buffer, which coalesces a
//! backlog of events into few syscalls and never holds more than about two of them. A larger frame
//! (a `panel` of a big room can be megabytes) bypasses that buffer: tungstenite would copy the
//! whole message into a per-socket `Vec` that keeps its capacity afterwards (and refuses anything
//! over `max_write_buffer_size`), so after the buffer is flushed the frame header and the shared
//! payload (`Bytes`, one allocation per room version) are written straight to the connection,
//! with no copy. Such a write can be interrupted by a close request; what is left of it is kept
//! and finished before the close frame, so the peer never sees a torn frame.

use std::time::Duration;

use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};

use super::upgrade::Socket;
use crate::conn::Frame;

/// Bytes of small frames coalesced per syscall, and the largest frame written through that buffer.
pub const WRITE_BUFFER: usize = 4 * 1024;

/// One upgraded socket and what is left of an interrupted large write.
pub(super) struct Sock {
    ws: Socket,
    /// A large frame partly written (header, then payload), if a write was cancelled mid-way.
    raw: Option<Chain<Bytes, Bytes>>,
}

/// The header of one unmasked, final text frame of `len` payload bytes (RFC 6455 §5.2).
fn text_header(len: usize) -> Bytes {
    let mut h = Vec::with_capacity(10);
    h.push(0x81); // FIN, opcode 1 (text)
    if len < 126 {
        h.push(len as u8); // < 126: fits
    } else if let Ok(short) = u16::try_from(len) {
        h.push(126);
        h.extend_from_slice(&short.to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    Bytes::from(h)
}

impl Sock {
    /// Wraps an upgraded socket.
    pub(super) fn new(ws: Socket) -> Self {
        Self { ws, raw: None }
    }

    /// The next message from the peer (`None`: the stream ended).
    pub(super) async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.ws.next().await
    }

    /// Queues `frame` (not flushed). A frame over [`WRITE_BUFFER`] is written out whole, directly.
    /// Cancel-safe: a large write cancelled mid-way is finished by [`Sock::close`].
    pub(super) async fn feed(&mut self, frame: Frame) -> Result<(), Error> {
        if frame.len() <= WRITE_BUFFER {
            return self.ws.feed(Message::Text(frame.text())).await;
        }
        // Everything before it goes first, in order.
        self.ws.flush().await?;
        let payload = Bytes::from(frame.text());
        self.raw = Some(text_header(payload.len()).chain(payload));
        self.finish_raw().await
    }

    /// Writes what is left of a large frame.
    async fn finish_raw(&mut self) -> Result<(), Error> {
        if let Some(buf) = self.raw.as_mut() {
            // `write_all_buf` advances `buf` as it writes: after a cancel, it holds the rest.
            self.ws.get_mut().write_all_buf(buf).await?;
            self.raw = None;
        }
        Ok(())
    }

    /// Writes everything queued.
    pub(super) async fn flush(&mut self) -> Result<(), Error> {
        self.ws.flush().await
    }

    /// Sends a ping.
    pub(super) async fn ping(&mut self) -> Result<(), Error> {
        self.ws.send(Message::Ping(Bytes::new())).await
    }

    /// Sends the close frame after whatever was already written (finishing an interrupted large
    /// frame first), waiting at most `wait` for the peer to take it. Best effort.
    pub(super) async fn close(&mut self, code: u16, reason: &'static str, wait: Duration) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        };
        let send = async {
            self.finish_raw().await?;
            self.ws.send(Message::Close(Some(frame))).await
        };
        // The peer may be gone or never read again: either way there is nothing more to do.
        let _ = tokio::time::timeout(wait, send).await;
    }
}

#[cfg(test)]
mod tests {
    use super::text_header;

    /// The three length encodings of RFC 6455 §5.2, each at its edges.
    #[test]
    fn text_headers_use_the_shortest_length_encoding() {
        assert_eq!(&text_header(125)[..], &[0x81, 125]);
        assert_eq!(&text_header(126)[..], &[0x81, 126, 0, 126]);
        assert_eq!(&text_header(65_535)[..], &[0x81, 126, 0xff, 0xff]);
        assert_eq!(
            &text_header(65_536)[..],
            &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }
}
