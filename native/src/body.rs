//! Streamed request bodies: a channel from the request task to hyper.
//!
//! The task pushes chunks into a [`Sender`]; hyper pulls them from the
//! matching [`UploadBody`]. Capacity is a single chunk, and the task only
//! tells Erlang `next` after hyper has asked for more ([`Sender::demand`]),
//! so a stalled peer stops the flow of `next` messages and memory stays
//! bounded by about two chunks plus hyper's own write buffer.
//!
//! Ending the stream is explicit: if the sender is dropped without
//! [`Sender::finish`] (a cancel, a garbage-collected handle, a dead owner),
//! the body yields an error so that hyper aborts the request instead of
//! writing the final chunk that would make it look complete.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, Notify};

/// What both ends share: whether hyper is waiting for data, and whether the
/// end of the body was asked for.
#[derive(Default)]
struct Signals {
    wanted: AtomicBool,
    wanted_notify: Notify,
    finished: AtomicBool,
}

/// The task's end of the channel.
pub struct Sender {
    tx: Option<mpsc::Sender<Bytes>>,
    signals: Arc<Signals>,
}

/// hyper's end: an [`http_body::Body`] of unknown length (sent chunked on
/// HTTP/1.1 unless the caller gave a `content-length`).
pub struct UploadBody {
    rx: mpsc::Receiver<Bytes>,
    signals: Arc<Signals>,
}

/// The body ended without [`Sender::finish`]; hyper then aborts the request.
#[derive(Debug)]
pub struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body aborted")
    }
}

impl std::error::Error for Aborted {}

pub fn channel() -> (Sender, UploadBody) {
    let (tx, rx) = mpsc::channel(1);
    let signals = Arc::new(Signals::default());
    (
        Sender {
            tx: Some(tx),
            signals: signals.clone(),
        },
        UploadBody { rx, signals },
    )
}

impl Sender {
    /// Waits until the channel can take one chunk. Cancel-safe.
    pub async fn reserve(&self) -> Option<mpsc::Permit<'_, Bytes>> {
        match &self.tx {
            Some(tx) => tx.reserve().await.ok(),
            None => std::future::pending().await,
        }
    }

    /// Hands a chunk over. Clears any earlier demand first, so that the
    /// next [`demand`](Self::demand) means "hyper asked again after this".
    pub fn push(&self, permit: mpsc::Permit<'_, Bytes>, chunk: Bytes) {
        self.signals.wanted.store(false, Ordering::Release);
        permit.send(chunk);
    }

    /// Resolves when hyper has polled the body and found it empty. Cancel-safe.
    pub async fn demand(&self) {
        loop {
            if self.signals.wanted.swap(false, Ordering::AcqRel) {
                return;
            }
            self.signals.wanted_notify.notified().await;
        }
    }

    /// Ends the body normally: hyper writes the final chunk.
    pub fn finish(&mut self) {
        self.signals.finished.store(true, Ordering::Release);
        self.tx = None;
    }

    pub fn is_finished(&self) -> bool {
        self.tx.is_none()
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) if self.signals.finished.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(Aborted))),
            Poll::Pending => {
                self.signals.wanted.store(true, Ordering::Release);
                self.signals.wanted_notify.notify_one();
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    async fn next_frame(body: &mut UploadBody) -> Option<Result<Frame<Bytes>, Aborted>> {
        poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn chunks_flow_and_finish_ends_the_body() {
        let (mut tx, mut body) = channel();
        let permit = tx.reserve().await.expect("open");
        tx.push(permit, Bytes::from_static(b"abc"));
        let frame = next_frame(&mut body).await.expect("frame").expect("ok");
        assert_eq!(frame.into_data().expect("data"), Bytes::from_static(b"abc"));
        tx.finish();
        assert!(next_frame(&mut body).await.is_none());
    }

    #[tokio::test]
    async fn dropping_the_sender_aborts_the_body() {
        let (tx, mut body) = channel();
        drop(tx);
        assert!(matches!(next_frame(&mut body).await, Some(Err(Aborted))));
    }

    #[tokio::test]
    async fn demand_is_signalled_when_the_body_runs_dry() {
        let (tx, mut body) = channel();
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        // Resolves at once: hyper asked and found nothing.
        tokio::time::timeout(std::time::Duration::from_secs(1), tx.demand())
            .await
            .expect("demand");
        // A push clears the old demand.
        let permit = tx.reserve().await.expect("open");
        tx.push(permit, Bytes::from_static(b"x"));
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), tx.demand()).await;
        assert!(waited.is_err(), "demand must wait for a new poll");
    }

    fn futures_noop_waker() -> std::task::Waker {
        std::task::Waker::noop().clone()
    }
}
