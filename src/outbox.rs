//! A connection's outbox: a bounded queue of frames with many pushers (room actors) and one
//! receiver (the socket task).
//!
//! The fan-out hot path. A room pushes one event into every subscriber's outbox, so a push is
//! one short uncontended lock, a `VecDeque` append and, only when the queue was empty, one wake:
//! a socket that has frames waiting is already awake or about to drain them, and pushing ten
//! events into it costs one wake-up, not ten. This replaced a `tokio::sync::mpsc` channel, whose
//! per-send semaphore and block-list walk cost about 17 % of server CPU in `churn` (perf).
//! The lock is never held across an `.await`; the waker is registered under it, so a push that
//! sees an empty queue always finds the receiver's current waker (no lost wake-up).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

use crate::frame::{Frame, Push};

/// Queue capacity above which an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Frame>,
    /// The receiver is gone: pushes fail with [`Push::Gone`].
    closed: bool,
    /// The receiver's waker, while it waits on an empty queue.
    waker: Option<Waker>,
}

/// The shared queue (held by the connection).
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    capacity: usize,
}

impl Outbox {
    /// An empty outbox of `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Poisoning would need a panic while pushing to a VecDeque: the queue is still sound.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one frame without waiting.
    pub fn push(&self, frame: Frame) -> Push {
        let waker = {
            let mut q = self.lock();
            if q.closed {
                return Push::Gone;
            }
            if q.frames.len() >= self.capacity {
                return Push::Full;
            }
            q.frames.push_back(frame);
            if q.frames.len() == 1 {
                q.waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        Push::Queued
    }

    /// Free slots.
    pub fn free_slots(&self) -> usize {
        self.capacity.saturating_sub(self.lock().frames.len())
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The next frame, waiting for one. Cancel-safe: nothing is taken until it is returned.
    pub async fn recv(&self) -> Frame {
        poll_fn(|cx| {
            let mut q = self.lock();
            match q.frames.pop_front() {
                Some(f) => {
                    // Not waiting any more: a push meanwhile need not wake a task that will look
                    // at the queue anyway before it waits again.
                    q.waker = None;
                    Poll::Ready(f)
                }
                None => {
                    if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        q.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The next frame if one is queued. An emptied queue that grew past [`KEEP_SLOTS`] gives
    /// its memory back.
    pub fn try_pop(&self) -> Option<Frame> {
        let mut q = self.lock();
        let f = q.frames.pop_front();
        if q.frames.is_empty() && q.frames.capacity() > KEEP_SLOTS {
            q.frames = VecDeque::new();
        }
        f
    }

    /// The receiver is gone: later pushes fail, queued frames are dropped.
    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.frames = VecDeque::new();
        q.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake};

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn frame(n: u32) -> Frame {
        Frame::new(format!("{{\"n\":{n}}}"))
    }

    /// Frames come out in order; a full outbox refuses without dropping what it holds; a closed
    /// outbox (its receiver dropped) makes every later push `Gone`.
    #[test]
    fn bounded_ordered_and_gone_after_close() {
        let ob = Outbox::new(2);
        assert_eq!(ob.push(frame(1)), Push::Queued);
        assert_eq!(ob.push(frame(2)), Push::Queued);
        assert_eq!(ob.push(frame(3)), Push::Full);
        assert_eq!(ob.free_slots(), 0);
        assert_eq!(ob.try_pop(), Some(frame(1)));
        assert_eq!(ob.push(frame(4)), Push::Queued);
        assert_eq!(ob.try_pop(), Some(frame(2)));
        assert_eq!(ob.try_pop(), Some(frame(4)));
        assert_eq!(ob.try_pop(), None);
        ob.close();
        assert_eq!(ob.push(frame(5)), Push::Gone);
    }

    /// A waiting receiver is woken once by the first push, not once per push, and a push after
    /// it drained the queue wakes it again.
    #[test]
    fn wakes_once_per_empty_to_ready() {
        let c = Outbox::new(16);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut recv = Box::pin(c.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        for n in 0..5 {
            c.push(frame(n));
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(frame(0)));
        drop(recv);
        while c.try_pop().is_some() {}
        let mut recv = Box::pin(c.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        c.push(frame(9));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(frame(9)));
    }
}
