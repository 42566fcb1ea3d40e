//! One peer's outbound queue: frames the router pushes and the peer's task
//! writes, a close request that overtakes nothing queued before it, and the
//! master's shutdown, which overtakes everything.
//!
//! Why not `tokio::sync::mpsc` + `watch`: a bounded mpsc allocates a block of
//! 32 slots (1 kB for `Bytes`) and a cache-padded channel (~0.5 kB) per peer
//! up front, the watch another ~0.4 kB: 1.9 kB of every idle client's 6.1 kB
//! (heaptrack, 3,000 idle clients). This one is ~100 bytes until a frame is
//! queued, and its queue grows only as far as the peer lags.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;

/// What the peer's task is to do next.
pub(crate) enum Outgoing {
    /// Write these frames, in order (moved into the caller's buffer).
    Frames,
    /// Every frame queued before the request is written: close with this
    /// code and reason.
    Close(u16, String),
    /// The master is closing: stop now, whatever is queued or being written.
    Shutdown,
}

/// The shared half: the router pushes, the peer's task takes.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The peer's task, woken when the queue stops being empty, a close is
    /// asked or the master shuts down.
    waker: AtomicWaker,
    limit: usize,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    close: Option<(u16, String)>,
    shutdown: bool,
}

impl Outbox {
    /// An empty outbox holding at most `limit` frames not yet taken.
    pub(crate) fn new(limit: usize) -> Self {
        Outbox { state: Mutex::default(), waker: AtomicWaker::new(), limit: limit.max(1) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned queue is still a queue.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one frame; `false` when `limit` frames are waiting already.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let mut state = self.state();
        if state.frames.len() >= self.limit {
            return false;
        }
        let was_empty = state.frames.is_empty();
        state.frames.push_back(frame);
        drop(state);
        // A non-empty queue has had its wake-up already.
        if was_empty {
            self.waker.wake();
        }
        true
    }

    /// Asks the peer's task to close once what is queued now is written. The
    /// latest request wins.
    pub(crate) fn request_close(&self, code: u16, reason: &str) {
        self.state().close = Some((code, reason.to_owned()));
        self.waker.wake();
    }

    /// The master is closing: the peer's task is told at once (the master
    /// calls this on every peer, through the router, instead of every task
    /// polling a token shared by all of them on every wake-up).
    pub(crate) fn shut_down(&self) {
        self.state().shutdown = true;
        self.waker.wake();
    }

    /// Waits for work: a shutdown first; then, when `ready` (the task is
    /// done with its previous batch, and `batch` is empty: its capacity is
    /// reused), queued frames swapped into `batch`, or, with nothing queued,
    /// a close request.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, batch: &mut VecDeque<Bytes>, ready: bool) -> Poll<Outgoing> {
        // Registered first: a push between the check and the return still wakes us.
        self.waker.register(cx.waker());
        let mut state = self.state();
        if state.shutdown {
            return Poll::Ready(Outgoing::Shutdown);
        }
        if !ready {
            return Poll::Pending;
        }
        debug_assert!(batch.is_empty());
        if !state.frames.is_empty() {
            std::mem::swap(&mut state.frames, batch);
            return Poll::Ready(Outgoing::Frames);
        }
        match state.close.take() {
            Some((code, reason)) => Poll::Ready(Outgoing::Close(code, reason)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn take(outbox: &Outbox, batch: &mut VecDeque<Bytes>) -> Outgoing {
        std::future::poll_fn(|cx| outbox.poll_take(cx, batch, true)).await
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_close_waits_for_them() {
        let outbox = Outbox::new(3);
        assert!(outbox.push(Bytes::from_static(b"a")));
        assert!(outbox.push(Bytes::from_static(b"b")));
        outbox.request_close(1000, "bye");
        let mut batch = VecDeque::new();
        assert!(matches!(take(&outbox, &mut batch).await, Outgoing::Frames));
        assert_eq!(batch, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        batch.clear();
        match take(&outbox, &mut batch).await {
            Outgoing::Close(code, reason) => assert_eq!((code, reason.as_str()), (1000, "bye")),
            _ => panic!("the close should come after the frames"),
        }
    }

    #[test]
    fn a_full_outbox_refuses_and_taking_makes_room() {
        let outbox = Outbox::new(2);
        assert!(outbox.push(Bytes::new()));
        assert!(outbox.push(Bytes::new()));
        assert!(!outbox.push(Bytes::new()));
        let waker = futures_util::task::noop_waker();
        let mut batch = VecDeque::new();
        assert!(outbox.poll_take(&mut Context::from_waker(&waker), &mut batch, true).is_ready());
        assert!(outbox.push(Bytes::new()));
    }

    #[test]
    fn a_shutdown_overtakes_queued_frames_and_a_busy_task() {
        let outbox = Outbox::new(4);
        assert!(outbox.push(Bytes::new()));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut batch = VecDeque::new();
        assert!(outbox.poll_take(&mut cx, &mut batch, false).is_pending());
        outbox.shut_down();
        assert!(matches!(outbox.poll_take(&mut cx, &mut batch, false), Poll::Ready(Outgoing::Shutdown)));
        assert!(matches!(outbox.poll_take(&mut cx, &mut batch, true), Poll::Ready(Outgoing::Shutdown)));
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn a_push_from_another_thread_wakes_the_waiting_task() {
        let outbox = Arc::new(Outbox::new(8));
        let pusher = outbox.clone();
        let waiting = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            let _ = take(&outbox, &mut batch).await;
            batch.len()
        });
        tokio::task::yield_now().await;
        std::thread::spawn(move || assert!(pusher.push(Bytes::from_static(b"x")))).join().unwrap();
        let taken = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert_eq!(taken.expect("woken").unwrap(), 1);
    }
}
