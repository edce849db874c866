//! One connection driven by hand: hyper's HTTP/1.1 or HTTP/2 client
//! state machine polled inside NIF calls, with a waker that only records
//! that it was woken (everything is polled again until nothing moves).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};

use super::fd::Fd;
use super::io::SockIo;
use super::wants::Wants;

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

/// The futures hyper's HTTP/2 client spawns (the connection's I/O task,
/// and one per request body), kept to be polled by the connection's own
/// NIF calls instead of on a runtime.
#[derive(Clone, Default)]
pub(crate) struct Spawner(Arc<std::sync::Mutex<Vec<Task>>>);

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

impl<F> hyper::rt::Executor<F> for Spawner
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        if let Ok(mut new) = self.0.lock() {
            new.push(Box::pin(fut));
        }
    }
}

/// One HTTP/2 connection: hyper's dispatcher, and what it spawned.
struct H2 {
    send: http2::SendRequest<Body>,
    /// `None` once the connection has ended.
    driver: Option<http2::Connection<SockIo, Body, Spawner>>,
    spawner: Spawner,
    /// The spawned futures not finished yet.
    tasks: Vec<Task>,
    /// Held while the connection lives: the transport counts an origin's
    /// direct HTTP/2 connections with it.
    _live: super::Live,
}

impl H2 {
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(d) = &mut self.driver {
            if Pin::new(d).poll(cx).is_ready() {
                self.driver = None;
            }
        }
        // A task polled here may spawn another (a request's body after its
        // head): those wait in the spawner until the next pass.
        if let Ok(mut new) = self.spawner.0.lock() {
            self.tasks.append(&mut new);
        }
        self.tasks.retain_mut(|t| t.as_mut().poll(cx).is_pending());
        self.driver.is_some() && !self.send.is_closed()
    }
}

/// One HTTP/1.1 connection.
struct H1 {
    send: http1::SendRequest<Body>,
    /// `None` once the connection has ended.
    driver: Option<http1::Connection<SockIo, Body>>,
}

impl H1 {
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(d) = &mut self.driver {
            if Pin::new(d).poll(cx).is_ready() {
                self.driver = None;
            }
        }
        self.driver.is_some()
    }
}

/// Boxed, so that a pooled connection moves as a pointer.
enum Proto {
    Http1(Box<H1>),
    Http2(Box<H2>),
}

pub(crate) struct Conn {
    pub(crate) fd: Arc<Fd>,
    pub(crate) wants: Arc<Wants>,
    proto: Proto,
    pub(crate) idle_since: Instant,
    /// Requests this connection has carried.
    pub(crate) used: u32,
    /// Its peer, asked once when it was made (for `timings`).
    pub(crate) peer: Option<std::net::SocketAddr>,
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
                wants,
                proto: Proto::Http1(Box::new(H1 {
                    send,
                    driver: Some(driver),
                })),
                idle_since: Instant::now(),
                used: 0,
                peer: fd.peer(),
                fd,
            }),
            Poll::Ready(Err(e)) => Err(e.to_string()),
            // Not in hyper 1, whose handshake only builds channels.
            Poll::Pending => Err("HTTP/1 handshake did not complete".into()),
        }
    }

    /// The HTTP/2 handshake writes the preface and the client's settings,
    /// which a socket just connected takes at once (it does not wait for
    /// the server's); `None` if it did not (the request then goes to
    /// reqwest, nothing of it sent).
    pub(crate) fn handshake_h2(
        fd: Arc<Fd>,
        tls: Box<rustls::ClientConnection>,
        live: super::Live,
    ) -> Result<Option<Conn>, String> {
        let wants = Arc::new(Wants::default());
        let io = SockIo::new(fd.clone(), wants.clone(), Some(tls));
        let spawner = Spawner::default();
        // hyper's defaults, which reqwest keeps when no HTTP/2 option is
        // set (none can be, on a client this path takes).
        let builder = http2::Builder::new(spawner.clone());
        let mut fut = Box::pin(builder.handshake::<_, Body>(io));
        let waker = Waker::from(Arc::new(Flag::default()));
        let mut cx = Context::from_waker(&waker);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok((send, driver))) => Ok(Some(Conn {
                wants,
                proto: Proto::Http2(Box::new(H2 {
                    send,
                    driver: Some(driver),
                    spawner,
                    tasks: Vec::new(),
                    _live: live,
                })),
                idle_since: Instant::now(),
                used: 0,
                peer: fd.peer(),
                fd,
            })),
            Poll::Ready(Err(e)) => Err(e.to_string()),
            Poll::Pending => Ok(None),
        }
    }

    pub(crate) fn is_h2(&self) -> bool {
        matches!(self.proto, Proto::Http2(_))
    }

    /// Runs the connection's side (reads, writes, keep-alive checks, and
    /// for HTTP/2 the tasks it spawned); false once it has ended.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.proto {
            Proto::Http1(h1) => h1.drive(cx),
            Proto::Http2(h2) => h2.drive(cx),
        }
    }

    /// Whether another request can go out on it now.
    pub(crate) fn ready(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.drive(cx) {
            return false;
        }
        let ready = match &mut self.proto {
            Proto::Http1(h1) => h1.send.poll_ready(cx),
            Proto::Http2(h2) => h2.send.poll_ready(cx),
        };
        matches!(ready, Poll::Ready(Ok(())))
    }

    pub(crate) fn send(&mut self, req: hyper::Request<Body>) -> ResponseFuture {
        self.used += 1;
        match &mut self.proto {
            Proto::Http1(h1) => Box::pin(h1.send.try_send_request(req)),
            Proto::Http2(h2) => Box::pin(h2.send.try_send_request(req)),
        }
    }
}
