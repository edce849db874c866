//! One hop of a direct request, from its connection (an idle one, or a
//! connect) to the last byte of the body, advanced a step per NIF call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http_body::Body as _;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use super::conn::{Body, Conn, Flag, ResponseFuture};
use super::fd::{Fd, Interest};
use super::link::Connected;
use super::received::{Collected, Received};
use super::{Admit, Route, Target, Transport};
use crate::error::{Code, Error};
use crate::max_body::MaxBody;
use crate::reasons;
use crate::reply::Head;

/// Body one NIF call reads at most before it lets the scheduler go: this
/// many bytes or this long, whichever comes first (a frame is at most one
/// read, see `io::RECV_MAX`).
const READ_PER_CALL: usize = 128 * 1024;
const TIME_PER_CALL: Duration = Duration::from_micros(200);

/// Passes in a row that one call makes without a body frame before it
/// lets the scheduler go: a bound for a hyper that keeps waking itself
/// without moving (each pass that brings a frame is bounded by the
/// call's bytes and time instead).
const IDLE_PASSES: u32 = 64;

/// The most of a followed redirect's body that is read to keep its
/// connection: a longer one (or one not all in yet) goes with its
/// connection, as hyper drops a connection whose unread body it cannot
/// drain at once.
const DRAIN_MAX: usize = 64 * 1024;

/// What a runtime task reading a large body takes per turn before it
/// lets the worker's other tasks go (`bulk.rs`).
const BULK_PER_TURN: usize = 1024 * 1024;
const BULK_TIME_PER_TURN: Duration = Duration::from_millis(1);

/// Whether a response with this head is a redirect that will be followed.
pub(crate) type Follows = fn(&Transport, u16, &reqwest::header::HeaderMap, &str) -> bool;

/// How a hop treats the answer it gets: whether a redirect is followed
/// (then its body is left unread), and the most a body may hold.
pub(crate) struct Answering {
    pub(crate) follows: Follows,
    pub(crate) max_body: MaxBody,
    /// Whether a timeout (the request's or a read timeout) runs over the
    /// body: reqwest then words a body error with one more layer.
    pub(crate) under_timeout: bool,
}

enum Stage {
    /// A name being looked up and connected to on the runtime, which
    /// wakes the caller when done.
    Resolving(Connected),
    /// A non-blocking connect in progress: writable when it is done.
    Connecting(Arc<Fd>),
    Waiting(ResponseFuture),
    Body {
        head: Head,
        body: Incoming,
        parts: Received,
    },
    /// Waiting for the origin's first handshake, made by another request
    /// (which wakes this one by message).
    Learning(Arc<AtomicBool>),
    /// The request goes to reqwest, nothing of it sent.
    Handoff,
    Failed(Error),
    Done,
}

/// What a hop measured, for `timings` (the policy layer makes the reply).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Marks {
    /// How long its connect took (TCP, and TLS when there is one), when
    /// it made one.
    pub(crate) connect: Option<Duration>,
    /// When the response head came.
    pub(crate) head: Option<Instant>,
    pub(crate) peer: Option<std::net::SocketAddr>,
}

pub(crate) enum Step {
    Done(Head, Collected),
    /// The head of a redirect that is followed. Its body was read when it
    /// was short and all in (then its connection went back to the pool
    /// if hyper can send another request on it); otherwise the
    /// connection goes with the unread body.
    Redirect(Head),
    /// Call again at once: this call did its share.
    Again,
    Wait(Interest, Arc<Fd>),
    /// Nothing to do until the runtime's message comes.
    Parked,
    /// The body is large: the exchange goes on in a runtime task, which
    /// reads the rest of it without holding a scheduler.
    Bulk,
    /// The hop is reqwest's: nothing of it was sent.
    Handoff,
    Failed(Error),
}

pub(crate) struct Exchange {
    transport: Arc<Transport>,
    route: Route,
    conn: Option<Conn>,
    stage: Stage,
    /// Kept until it is sent (a connect comes first), and for a resend when
    /// an idle connection turns out closed before it took the request.
    request: Option<hyper::Request<Body>>,
    /// Its target as each protocol takes it.
    forms: Forms,
    url: String,
    resolver: Arc<super::tasks::Resolver>,
    flag: Arc<Flag>,
    /// Whether a redirect with this status is followed (then its body is
    /// left unread).
    follows: Follows,
    connect_deadline: Option<Instant>,
    read_deadline: Option<Instant>,
    resent: bool,
    /// Whether it has waited for its origin's first handshake.
    waited: bool,
    /// Whether `advance` has run: every later call may find new bytes.
    polled: bool,
    /// Whether it has said `Bulk`: it runs in a runtime task since.
    bulk: bool,
    /// The request's `max_body`, and the bound on the bytes this hop
    /// keeps (the same, or a little over for a body decoded after: see
    /// `raw_bound`); `kept` counts them.
    max_body: MaxBody,
    bound: MaxBody,
    kept: usize,
    under_timeout: bool,
    /// When the connect in progress began, and what the hop measured.
    connect_from: Option<Instant>,
    marks: Marks,
}

impl Exchange {
    /// Starts a hop: sends on an idle connection, or starts a connect
    /// (`connect` is given the name to look up on the runtime).
    pub(crate) fn start(
        transport: Arc<Transport>,
        route: Route,
        request: hyper::Request<Body>,
        forms: Forms,
        url: String,
        answer: Answering,
        resolver: Arc<super::tasks::Resolver>,
    ) -> Self {
        let Answering {
            follows,
            max_body,
            under_timeout,
        } = answer;
        let mut ex = Exchange {
            route,
            resolver,
            transport,
            conn: None,
            stage: Stage::Done,
            request: Some(request),
            forms,
            url,
            flag: Arc::new(Flag::default()),
            follows,
            connect_deadline: None,
            read_deadline: None,
            resent: false,
            waited: false,
            polled: false,
            bulk: false,
            max_body,
            bound: max_body,
            kept: 0,
            under_timeout,
            connect_from: None,
            marks: Marks::default(),
        };
        ex.begin();
        ex
    }

    fn begin(&mut self) {
        let waker = Waker::from(self.flag.clone());
        let mut cx = Context::from_waker(&waker);
        while let Some(mut conn) = self.transport.checkout(&self.route.key) {
            // An idle connection is read once before it is used: how a
            // close by the server in the meantime is seen.
            conn.wants.rearm();
            conn.wants.begin_call();
            if conn.ready(&mut cx) {
                return self.send_on(conn);
            }
        }
        match self
            .transport
            .admit(&self.route, &self.resolver.gate, self.waited)
        {
            Admit::Connect => {}
            Admit::Wait(woken) => {
                self.waited = true;
                self.stage = Stage::Learning(woken);
                return;
            }
            Admit::Handoff => {
                self.stage = Stage::Handoff;
                return;
            }
        }
        let now = Instant::now();
        self.connect_from = Some(now);
        self.connect_deadline = self
            .transport
            .connect_timeout
            .and_then(|t| now.checked_add(t));
        // A name is looked up, and a handshake done, on the runtime.
        self.stage = match (self.route.target(), &self.route.tls) {
            (Target::Addr(addr), None) => {
                match super::connect::start(*addr, &self.transport, &self.url) {
                    Ok(fd) => Stage::Connecting(fd),
                    Err(e) => Stage::Failed(e),
                }
            }
            _ => Stage::Resolving(self.resolver.connect(&self.route, self.url.clone())),
        };
    }

    fn send_on(&mut self, mut conn: Conn) {
        // A connect made for this hop is over (TCP, and the TLS handshake
        // on the runtime): what reqwest's connector layer times.
        if let Some(from) = self.connect_from.take() {
            self.marks.connect = Some(from.elapsed());
        }
        self.connect_deadline = None;
        self.touch();
        match self.request.take() {
            Some(mut req) => {
                self.forms.shape(&mut req, conn.is_h2());
                if conn.is_h2() {
                    // The writes start in this call's passes (`advance`).
                    conn.wants.cork();
                }
                self.stage = Stage::Waiting(conn.send(req));
                self.conn = Some(conn);
            }
            None => self.stage = Stage::Failed(Error::new(Code::Unknown, "request already sent")),
        }
    }

    /// The socket moved: the read timeout starts again.
    fn touch(&mut self) {
        self.read_deadline = self
            .transport
            .read_timeout
            .and_then(|t| Instant::now().checked_add(t));
    }

    /// What this hop measured so far.
    pub(crate) fn marks(&self) -> Marks {
        self.marks
    }

    /// The nearest of this hop's own deadlines.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match (self.connect_deadline, self.read_deadline) {
            (Some(c), _) => Some(c),
            (None, r) => r,
        }
    }

    /// Whether a timeout runs over the body (see [`Answering`]).
    pub(crate) fn under_timeout(&self) -> bool {
        self.under_timeout
    }

    /// Whether the head came and the body is being read.
    pub(crate) fn in_body(&self) -> bool {
        matches!(self.stage, Stage::Body { .. })
    }

    /// The error for a deadline of this hop that has passed, if one has.
    pub(crate) fn expired(&self, now: Instant) -> Option<Error> {
        if self.connect_deadline.is_some_and(|d| d <= now) {
            // hyper-util times the TCP connect itself, reqwest the rest.
            return Some(match self.stage {
                Stage::Connecting(_) => reasons::tcp_connect_timed_out(&self.url),
                Stage::Resolving(ref c) if c.in_tcp() => reasons::tcp_connect_timed_out(&self.url),
                _ => reasons::connect_timed_out(&self.url),
            });
        }
        if self.read_deadline.is_some_and(|d| d <= now) {
            // In the body, reqwest's words for it (no URL).
            if matches!(self.stage, Stage::Body { .. }) {
                return Some(reasons::body_timed_out());
            }
            return Some(reasons::timed_out(&self.url));
        }
        None
    }

    /// Moves the hop on as far as the socket allows.
    pub(crate) fn advance(&mut self) -> Step {
        self.cork();
        let step = self.steps();
        self.uncork(step)
    }

    /// An HTTP/2 connection's writes of one call go out as one send (see
    /// `io::Wants::cork`); HTTP/1.1 writes a request in one already.
    fn cork(&self) {
        if let Some(c) = self.conn.as_ref().filter(|c| c.is_h2()) {
            c.wants.cork();
        }
    }

    /// Sends what the cork held before the call answers: a wait for the
    /// response becomes a wait to write while some of it is still held.
    fn uncork(&self, step: Step) -> Step {
        let Some(c) = &self.conn else {
            return step;
        };
        match (c.wants.uncork(c.fd.raw()), step) {
            (Ok(true), step) => step,
            (Ok(false), Step::Wait(_, fd)) => Step::Wait(Interest::Write, fd),
            (Ok(false), step) => step,
            // Past the head, what was held is the connection's own
            // (window updates): its failure ends the body.
            (Err(e), Step::Wait(..) | Step::Again) if matches!(self.stage, Stage::Body { .. }) => {
                Step::Failed(reasons::body(&e, self.under_timeout))
            }
            (Err(e), Step::Wait(..) | Step::Again) => {
                Step::Failed(reasons::write_failed(&self.url, &e))
            }
            (Err(_), step) => step,
        }
    }

    fn steps(&mut self) -> Step {
        let waker = Waker::from(self.flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut read = 0usize;
        let mut frames = 0usize;
        let started = Instant::now();
        // A call after the first comes after a select, or to go on with a
        // body: it reads what the socket has got since. (The first follows
        // the checkout, which read already.)
        if let Some(c) = &self.conn {
            if self.polled {
                c.wants.rearm();
            }
            c.wants.begin_call();
        }
        self.polled = true;
        // A pass that was woken goes on to the next. hyper's HTTP/1 body
        // hands over one frame per pass (its channel takes one at a time),
        // so passes that bring a frame are bounded by the call's bytes and
        // time (below); passes that bring none, by [`IDLE_PASSES`].
        let mut idle = 0;
        loop {
            let frames_before = frames;
            if let Some(c) = &self.conn {
                c.wants.clear();
            }
            let alive = match &mut self.conn {
                Some(c) => c.drive(&mut cx),
                None => true,
            };
            match std::mem::replace(&mut self.stage, Stage::Done) {
                Stage::Resolving(mut rx) => match rx.rx.try_recv() {
                    Ok(Ok(link)) => match Fd::new(link.stream) {
                        Some(fd) => match handshake(Arc::new(fd), link.tls, link.h2) {
                            Ok(Some(conn)) => {
                                self.send_on(conn);
                                continue;
                            }
                            Ok(None) => return Step::Handoff,
                            Err(e) => return Step::Failed(Error::new(Code::Connect, e)),
                        },
                        None => return Step::Failed(Error::new(Code::Unknown, "no socket type")),
                    },
                    Ok(Err(e)) => return Step::Failed(e),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        self.stage = Stage::Resolving(rx);
                        return Step::Parked;
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        return Step::Failed(Error::cancelled("runtime stopped"))
                    }
                },
                Stage::Connecting(fd) => match super::connect::finish(&fd, &self.url) {
                    Ok(true) => match Conn::handshake(fd, None) {
                        Ok(conn) => {
                            self.send_on(conn);
                            continue;
                        }
                        Err(e) => return Step::Failed(Error::new(Code::Connect, e)),
                    },
                    Ok(false) => {
                        self.stage = Stage::Connecting(fd.clone());
                        return Step::Wait(Interest::Write, fd);
                    }
                    Err(e) => return Step::Failed(e),
                },
                Stage::Waiting(mut fut) => match fut.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(mut resp)) => {
                        self.touch();
                        self.marks.head = Some(Instant::now());
                        self.marks.peer = self.conn.as_ref().and_then(|c| c.peer);
                        let head = Head {
                            status: resp.status().as_u16(),
                            version: resp.version(),
                            headers: std::mem::take(resp.headers_mut()),
                            // Kept too: a read timeout after the head names it.
                            url: self.url.clone(),
                            meta: None,
                        };
                        // Every hop's cookies, as reqwest's cookie layer keeps them.
                        self.transport.store_cookies(&head.headers, &head.url);
                        if (self.follows)(&self.transport, head.status, &head.headers, &head.url) {
                            if self.drain(resp.into_body(), &mut cx) {
                                self.finish(&mut cx);
                            } else {
                                // The connection goes with the unread body.
                                self.conn = None;
                            }
                            return Step::Redirect(head);
                        }
                        let body = resp.into_body();
                        // hyper's exact length: content-length, or 0 where
                        // no body may follow (HEAD, 204, 304).
                        let announced = body
                            .size_hint()
                            .exact()
                            .and_then(|n| usize::try_from(n).ok());
                        let decoded = super::tasks::compressed(self.transport.accept, &head);
                        self.bound = raw_bound(self.max_body, decoded);
                        self.kept = 0;
                        // Announced over the limit: nothing of it is read,
                        // and the connection goes with the exchange.
                        if announced.is_some_and(|n| self.bound.admit_len(n).is_err()) {
                            return self.too_large();
                        }
                        self.stage = Stage::Body {
                            head,
                            body,
                            parts: Received::new(announced, Some(&self.transport.rt)),
                        };
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        let error = reasons::send_request(&self.url, e.error());
                        let mut e = e;
                        match e.take_message() {
                            Some(req) if !self.resent => {
                                self.resend(req);
                                continue;
                            }
                            _ => return Step::Failed(error),
                        }
                    }
                    Poll::Pending => self.stage = Stage::Waiting(fut),
                },
                Stage::Body {
                    head,
                    mut body,
                    mut parts,
                } => loop {
                    if read == 0 && self.goes_bulk(&parts) {
                        // Announced large: nothing of it is read here.
                        self.stage = Stage::Body { head, body, parts };
                        return Step::Bulk;
                    }
                    match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            frames += 1;
                            if let Ok(data) = frame.into_data() {
                                read += data.len();
                                // Counted before it is kept: memory stays
                                // within the limit.
                                self.kept = self.kept.saturating_add(data.len());
                                if self.bound.admit_len(self.kept).is_err() {
                                    return self.too_large();
                                }
                                parts.push(data);
                            }
                        }
                        Poll::Ready(Some(Err(e))) => {
                            return Step::Failed(reasons::body(&e, self.under_timeout))
                        }
                        Poll::Ready(None) => {
                            self.finish(&mut cx);
                            return Step::Done(head, parts.finish());
                        }
                        Poll::Pending => {
                            if read > 0 {
                                self.touch();
                            }
                            let bulk = self.goes_bulk(&parts);
                            self.stage = Stage::Body { head, body, parts };
                            if bulk {
                                return Step::Bulk;
                            }
                            break;
                        }
                    }
                    let (most, longest) = if self.bulk {
                        (BULK_PER_TURN, BULK_TIME_PER_TURN)
                    } else {
                        (READ_PER_CALL, TIME_PER_CALL)
                    };
                    if read >= most || started.elapsed() >= longest {
                        // Let the scheduler go (or the body go to the
                        // runtime); hyper may hold the rest in its buffer
                        // already, so this is not a wait.
                        self.touch();
                        let bulk = self.goes_bulk(&parts);
                        self.stage = Stage::Body { head, body, parts };
                        return if bulk { Step::Bulk } else { Step::Again };
                    }
                },
                Stage::Learning(woken) => {
                    if !woken.load(Ordering::Acquire) {
                        self.stage = Stage::Learning(woken);
                        return Step::Parked;
                    }
                    // The origin's protocol is known, or its first connect
                    // failed (then this one connects on its own).
                    self.begin();
                    continue;
                }
                Stage::Handoff => return Step::Handoff,
                Stage::Done => return Step::Failed(Error::new(Code::Unknown, "request is over")),
                Stage::Failed(e) => return Step::Failed(e),
            }
            if self.flag.take() || !alive {
                // Woken, or the connection ended with the request pending:
                // the response future has the reason on the next pass.
                idle = if frames > frames_before { 0 } else { idle + 1 };
                if idle < IDLE_PASSES {
                    continue;
                }
                // hyper kept waking itself without handing over anything:
                // it may still hold bytes it read (a body in many small
                // chunks), which no readiness of the socket would announce,
                // so the next call goes on rather than waits.
                return Step::Again;
            }
            if self.conn.as_ref().is_some_and(|c| c.wants.spent()) {
                // The socket may hold more than this call could read.
                self.touch();
                return Step::Again;
            }
            let interest = self
                .conn
                .as_ref()
                .and_then(|c| c.wants.interest())
                .unwrap_or(Interest::Read);
            return self.wait(interest);
        }
    }

    /// Whether the rest of this body is read on the runtime: a large body
    /// gains nothing from the scheduler, and read there it would hold one
    /// in slices of [`TIME_PER_CALL`] for as long as it takes to arrive.
    /// The body passed `max_body`: the hop ends, and its connection with
    /// it (the rest of the body is never read).
    fn too_large(&mut self) -> Step {
        self.conn = None;
        Step::Failed(self.max_body.exceeded())
    }

    fn goes_bulk(&mut self, parts: &Received) -> bool {
        if self.bulk || !parts.large() {
            return false;
        }
        self.bulk = true;
        if let Some(c) = &self.conn {
            c.wants.set_bulk(true);
        }
        true
    }

    /// hyper gives a request back when the idle connection it went to had
    /// closed before taking it; it goes out once more on a new connection,
    /// as hyper-util's pool does.
    fn resend(&mut self, req: hyper::Request<Body>) {
        self.resent = true;
        self.conn = None;
        self.request = Some(req);
        self.begin();
    }

    fn wait(&self, interest: Interest) -> Step {
        match &self.conn {
            Some(c) => Step::Wait(interest, c.fd.clone()),
            None => Step::Failed(Error::new(Code::Unknown, "no connection to wait on")),
        }
    }

    /// Reads a followed redirect's body to its end when it is short and
    /// hyper has it, or can read it from the socket now: never waits.
    /// `false` when some of it is left (its connection cannot be reused).
    fn drain(&mut self, mut body: Incoming, cx: &mut Context<'_>) -> bool {
        if body
            .size_hint()
            .exact()
            .is_some_and(|n| n > DRAIN_MAX as u64)
        {
            return false;
        }
        let mut read = 0usize;
        let mut idle = 0;
        loop {
            match std::pin::Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        read = read.saturating_add(data.len());
                        if read > DRAIN_MAX {
                            return false;
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => return false,
                Poll::Ready(None) => return true,
                Poll::Pending => {
                    // The connection hands over what it has read (or
                    // reads what the socket holds) on its next turn; one
                    // that neither moves nor wakes has nothing more now.
                    let alive = self.conn.as_mut().is_some_and(|c| c.drive(cx));
                    idle += 1;
                    if !alive || !self.flag.take() || idle >= IDLE_PASSES {
                        return false;
                    }
                }
            }
        }
    }

    /// The body is in: the connection goes back to the pool if it can
    /// carry another request.
    fn finish(&mut self, cx: &mut Context<'_>) {
        if let Some(mut conn) = self.conn.take() {
            // One more turn lets hyper see the message end and go idle.
            let _ = self.flag.take();
            conn.wants.set_bulk(false);
            let ready = conn.ready(cx) || (self.flag.take() && conn.ready(cx));
            // What the cork held goes out before another request can come.
            let sent = conn.wants.uncork(conn.fd.raw()).is_ok();
            if ready && sent {
                self.transport.checkin(&self.route.key, conn);
            }
        }
    }
}

/// The connection of a link: HTTP/2 when the server chose it.
fn handshake(
    fd: Arc<Fd>,
    tls: Option<Box<rustls::ClientConnection>>,
    h2: Option<super::Live>,
) -> Result<Option<Conn>, String> {
    match (tls, h2) {
        (Some(tls), Some(live)) => Conn::handshake_h2(fd, tls, live),
        (tls, _) => Conn::handshake(fd, tls).map(Some),
    }
}

/// A hop's target as each protocol takes it, as hyper-util's client puts
/// it: HTTP/1.1 an origin-form target and a `host` header (unless the
/// request has one), HTTP/2 the whole URI, whose authority hyper sends as
/// `:authority`, and no `host` of its making.
pub(crate) struct Forms {
    pub(crate) absolute: hyper::Uri,
    pub(crate) origin: hyper::Uri,
    /// The `host` header HTTP/1.1 adds, when the request has none.
    pub(crate) host: Option<reqwest::header::HeaderValue>,
}

impl Forms {
    fn shape(&self, req: &mut hyper::Request<Body>, h2: bool) {
        let host = reqwest::header::HOST;
        if h2 {
            *req.uri_mut() = self.absolute.clone();
            if self.host.is_some() {
                req.headers_mut().remove(host);
            }
        } else {
            *req.uri_mut() = self.origin.clone();
            if let Some(h) = &self.host {
                req.headers_mut().insert(host, h.clone());
            }
        }
    }
}

/// The longest wait `receive ... after` takes, in milliseconds.
const MAX_AFTER: u64 = u32::MAX as u64;

/// Milliseconds until `deadline`, rounded up (0 once passed), at most the
/// longest `after`: a longer wait is checked again when that runs out.
pub(crate) fn ms_until(deadline: Instant, now: Instant) -> u64 {
    let left = deadline.saturating_duration_since(now);
    let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
    let ms = if Duration::from_millis(ms) < left {
        ms.saturating_add(1)
    } else {
        ms
    };
    ms.min(MAX_AFTER)
}

/// The bound on a hop's raw body bytes. A body decoded after it is read
/// (`tasks::decoded`, which checks the limit itself) may be compressed
/// beyond its decoded size only by its codec's framing: deflate's stored
/// blocks add 5 bytes per 64 KB, gzip's and zstd's headers a few more.
/// A 64th and 64 KB over the limit covers them, so that a body that
/// fits decoded is never refused for its compressed bytes, and one far
/// over never fills memory before it is decoded.
fn raw_bound(limit: MaxBody, decoded: bool) -> MaxBody {
    if !decoded {
        return limit;
    }
    limit.with_slack(|n| n.saturating_add(n / 64).saturating_add(64 * 1024))
}
