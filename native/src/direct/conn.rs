//! One HTTP/1.1 connection driven by hand: hyper's client state machine
//! polled inside NIF calls, with a waker that only records that it was
//! woken (everything is polled again until nothing moves).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;

use super::fd::Fd;
use super::io::{SockIo, Wants};

pub(crate) type Body = Full<Bytes>;
pub(crate) type ResponseFuture = Pin<
    Box<
        dyn Future<
                Output = Result<
                    hyper::Response<hyper::body::Incoming>,
                    hyper::client::conn::TrySendError<hyper::Request<Body>>,
                >,
            > + Send,
    >,
>;

/// A waker that notes it was woken; whoever polls looks at the note.
#[derive(Default)]
pub(crate) struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

impl Flag {
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

pub(crate) struct Conn {
    pub(crate) fd: Arc<Fd>,
    pub(crate) wants: Arc<Wants>,
    send: http1::SendRequest<Body>,
    /// `None` once the connection has ended.
    driver: Option<http1::Connection<SockIo, Body>>,
    pub(crate) idle_since: Instant,
    /// Requests this connection has carried.
    pub(crate) used: u32,
}

impl Conn {
    /// hyper's HTTP/1 handshake does no I/O: it is ready at the first poll.
    /// `tls` is the session of an HTTPS connection, its handshake done.
    pub(crate) fn handshake(
        fd: Arc<Fd>,
        tls: Option<Box<rustls::ClientConnection>>,
    ) -> Result<Conn, String> {
        let wants = Arc::new(Wants::default());
        let io = SockIo::new(fd.clone(), wants.clone(), tls);
        let mut fut = Box::pin(http1::Builder::new().handshake::<_, Body>(io));
        let waker = Waker::from(Arc::new(Flag::default()));
        let mut cx = Context::from_waker(&waker);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok((send, driver))) => Ok(Conn {
                fd,
                wants,
                send,
                driver: Some(driver),
                idle_since: Instant::now(),
                used: 0,
            }),
            Poll::Ready(Err(e)) => Err(e.to_string()),
            // Not in hyper 1, whose handshake only builds channels.
            Poll::Pending => Err("HTTP/1 handshake did not complete".into()),
        }
    }

    /// Runs the connection's side (reads, writes, keep-alive checks);
    /// false once it has ended.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(d) = &mut self.driver {
            if Pin::new(d).poll(cx).is_ready() {
                self.driver = None;
            }
        }
        self.driver.is_some()
    }

    /// Whether another request can go out on it now.
    pub(crate) fn ready(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && matches!(self.send.poll_ready(cx), Poll::Ready(Ok(())))
    }

    pub(crate) fn send(&mut self, req: hyper::Request<Body>) -> ResponseFuture {
        self.used += 1;
        Box::pin(self.send.try_send_request(req))
    }
}
