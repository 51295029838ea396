//! How frames get onto one upgraded socket, with bounded per-socket memory whatever their size.
//!
//! Server messages do not go through tungstenite's write buffer: it copies every message into a
//! per-socket `Vec` that keeps its largest capacity for the life of the socket (a socket that once
//! took a big `panel`, or a burst of events in a busy room, held that memory while idle) and
//! refuses anything over `max_write_buffer_size`. Instead, small frames (up to [`WRITE_BUFFER`])
//! are framed into a batch buffer that is written out when it reaches [`WRITE_BUFFER`] or on
//! flush, and then freed; a larger frame is written straight from its shared payload (`Bytes`,
//! one allocation per room version), with no copy. tungstenite still reads, and writes the
//! control frames (ping, pong, close); its buffer is flushed before any of our writes, and ours is
//! always empty when tungstenite may write (between writes, the socket task only reads). A write
//! cancelled by a close request keeps what is left of it, and [`SockOn::close`] finishes it before
//! the close frame, so the peer never sees a torn frame.

use std::time::Duration;

use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::upgrade::Io;
use crate::frame::Frame;

/// Bytes of small frames coalesced per syscall, and the largest frame written through that buffer.
const WRITE_BUFFER: usize = 4 * 1024;

/// One upgraded socket, its batch of small frames, and what is left of an interrupted write.
pub(super) struct SockOn<S> {
    ws: WebSocketStream<S>,
    /// Small frames, framed, not written yet (empty between writes).
    batch: Vec<u8>,
    /// Bytes being written (header then payload), kept if a write is cancelled mid-way.
    raw: Option<Chain<Bytes, Bytes>>,
}

/// The header of one unmasked, final text frame of `len` payload bytes (RFC 6455 §5.2).
fn text_header(len: usize) -> Bytes {
    let mut h = Vec::with_capacity(10);
    push_text_header(&mut h, len);
    Bytes::from(h)
}

fn push_text_header(h: &mut Vec<u8>, len: usize) {
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
}

/// An upgraded server socket.
pub(super) type Sock = SockOn<Io>;

impl<S: AsyncRead + AsyncWrite + Unpin> SockOn<S> {
    /// Wraps an upgraded socket.
    pub(super) fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            batch: Vec::new(),
            raw: None,
        }
    }

    /// The next message from the peer (`None`: the stream ended).
    pub(super) async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.ws.next().await
    }

    /// Queues `frame` (not flushed): batched if small, written out whole, directly, if larger
    /// than [`WRITE_BUFFER`]. Cancel-safe: a write cancelled mid-way is finished by
    /// [`SockOn::close`].
    pub(super) async fn feed(&mut self, frame: Frame) -> Result<(), Error> {
        if frame.len() <= WRITE_BUFFER {
            push_text_header(&mut self.batch, frame.len());
            self.batch.extend_from_slice(&frame);
            if self.batch.len() >= WRITE_BUFFER {
                self.write_batch().await?;
            }
            return Ok(());
        }
        self.write_batch().await?; // everything before it goes first, in order
        let payload = Bytes::from(frame.text());
        self.raw = Some(text_header(payload.len()).chain(payload));
        self.finish_raw().await
    }

    /// Writes the batch and frees it.
    async fn write_batch(&mut self) -> Result<(), Error> {
        // tungstenite's own buffer (a pong, a ping) goes first: frames never interleave.
        self.ws.flush().await?;
        if !self.batch.is_empty() {
            let batch = Bytes::from(std::mem::take(&mut self.batch));
            self.raw = Some(Bytes::new().chain(batch));
            self.finish_raw().await?;
        }
        Ok(())
    }

    /// Writes what is left of an interrupted or current write.
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
        self.write_batch().await
    }

    /// Sends a ping.
    pub(super) async fn ping(&mut self) -> Result<(), Error> {
        self.write_batch().await?;
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
            // A torn frame is finished; small frames still batched are dropped with the outbox.
            self.finish_raw().await?;
            self.batch = Vec::new();
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

#[cfg(test)]
mod write_tests {
    use std::time::Duration;

    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    use super::SockOn;
    use crate::frame::Frame;

    /// Small frames batch, a large one goes out whole; a large write cut off by a close request
    /// (the peer stopped reading) is finished before the close frame: the peer reads every
    /// message intact, then the close code, never a torn frame.
    #[tokio::test]
    async fn a_large_write_cut_by_a_close_is_finished_before_the_close_frame() {
        let (server_io, client_io) = tokio::io::duplex(1024);
        let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut sock = SockOn::new(server);
        let big = "b".repeat(100_000);
        sock.feed(Frame::new("small".into()))
            .await
            .expect("batched");
        // The peer is not reading: the large write blocks on the full pipe and is cut off.
        let cut = tokio::time::timeout(
            Duration::from_millis(50),
            sock.feed(Frame::new(big.clone())),
        )
        .await;
        assert!(cut.is_err(), "the write was still in progress");
        let closing = tokio::spawn(async move {
            sock.close(4008, "slow consumer", Duration::from_secs(5))
                .await;
        });
        let mut seen = Vec::new();
        let code = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match client.next().await {
                    Some(Ok(Message::Text(t))) => seen.push(t.to_string()),
                    Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
        .await
        .expect("the close in time");
        assert_eq!(seen, ["small".to_owned(), big]);
        assert_eq!(code, 4008);
        closing.await.expect("close task");
    }
}
