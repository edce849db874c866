//! The parts of a direct request that run on the runtime: looking up a
//! name, connecting and the TLS handshake; decoding a compressed body
//! (a large one is read there too, `bulk.rs`); and a hop this path does
//! not take (HTTP/2 on a busy origin, a redirect out of its reach),
//! handed to reqwest.
//! Each tells the waiting process by message, through a [`Gate`] that
//! the process can close first.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, OwnedBinary, Term};
use tokio::sync::oneshot;

use super::link::{Connected, Link};
use super::received::Collected;
use super::redirect::Template;
use super::tls::{self, Handshake};
use super::{Accept, Route, Target, Transport};
use crate::atoms;
use crate::compose::Decoding;
use crate::error::Error;
use crate::max_body::MaxBody;
use crate::reply::{encode_resp, Head};
use crate::resilience::stepwise::Finish;
use crate::resilience::timings::ConnectSlot;

/// Messages to the waiting process, until it closes the gate. Sending
/// holds the lock, so once `close` returns nothing more comes, and what
/// came before is already in the mailbox.
pub(crate) struct Gate {
    pid: LocalPid,
    reference: OwnedBinary,
    open: Mutex<bool>,
    /// How the answer's body is decoded (`decode`), here on the runtime.
    decoding: Decoding,
}

impl Gate {
    pub(crate) fn new(pid: LocalPid, reference: Term, decoding: Decoding) -> Self {
        Gate {
            pid,
            reference: reference.to_binary(),
            open: Mutex::new(true),
            decoding,
        }
    }

    pub(crate) fn decoding(&self) -> Decoding {
        self.decoding
    }

    pub(crate) fn close(&self) {
        if let Ok(mut open) = self.open.lock() {
            *open = false;
        }
    }

    fn send<F>(&self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        let Ok(open) = self.open.lock() else { return };
        if !*open {
            return;
        }
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&self.pid, |e| {
            // Safe: the bytes are term_to_binary's own output.
            let r = match unsafe { e.binary_to_term_trusted(self.reference.as_slice()) } {
                Some((t, _)) => t,
                None => atoms::undefined().encode(e),
            };
            build(e, r)
        });
        drop(open);
    }

    /// The socket's turn: the process polls again (a name was connected,
    /// or the handshake it waited on is over).
    pub(crate) fn wake(&self) {
        self.send(|e, r| {
            (
                atoms::select(),
                atoms::undefined(),
                r,
                atoms::ready_output(),
            )
                .encode(e)
        });
    }

    pub(crate) fn answer(&self, result: Result<(Head, Bytes), Error>) {
        self.send(|e, r| match result {
            Ok((head, body)) => match encode_resp(e, &head, Some(&body), self.decoding) {
                Ok(resp) => (atoms::erqwest_response(), r, atoms::reply(), resp).encode(e),
                Err(err) => (atoms::erqwest_response(), r, atoms::error(), err).encode(e),
            },
            Err(err) => (atoms::erqwest_response(), r, atoms::error(), err).encode(e),
        });
    }
}

/// Connects on the runtime: names (a lookup blocks) and HTTPS (a
/// handshake takes round trips and certificate checks).
pub(crate) struct Resolver {
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) gate: Arc<Gate>,
    pub(crate) transport: Arc<Transport>,
}

impl Resolver {
    pub(crate) fn connect(&self, route: &Route, url: String) -> Connected {
        let (mut tx, rx) = oneshot::channel();
        let in_tcp = Arc::new(AtomicBool::new(false));
        let flag = in_tcp.clone();
        let gate = self.gate.clone();
        let t = self.transport.clone();
        let route = route.clone();
        self.rt.spawn(async move {
            // A request given up (timed out, its caller gone) drops the
            // receiver: the connect stops with it, where a handshake that
            // stalls would otherwise hold its socket for ever.
            // Whatever ends the connect, requests waiting on it as the
            // origin's first handshake go on.
            let r = tokio::select! {
                r = dial(&t, &route, &url, &flag) => r,
                () = tx.closed() => Err(Error::cancelled("request given up")),
            };
            if r.is_err() && route.tls.is_some() {
                t.learned(&route.key, None);
            }
            if tx.send(r).is_ok() {
                gate.wake();
            }
        });
        Connected { rx, in_tcp }
    }
}

async fn dial(t: &Transport, route: &Route, url: &str, in_tcp: &AtomicBool) -> Result<Link, Error> {
    let tcp = match route.target() {
        Target::Addr(addr) => connect_addr(t, *addr, in_tcp)
            .await
            .map_err(|e| super::connect::refused(url, e))?,
        Target::Name(host, port) => connect_name(t, host, *port, url, in_tcp).await?,
    };
    let Some((config, name)) = &route.tls else {
        let stream = tcp
            .into_std()
            .map_err(|e| super::connect::refused(url, e))?;
        return Ok(Link {
            stream,
            tls: None,
            h2: None,
        });
    };
    let handshake = tls::handshake(config.clone(), name.clone(), tcp)
        .await
        .map_err(|e| super::connect::refused(url, e))?;
    match handshake {
        Handshake::Http1(stream, session) => {
            t.learned(&route.key, Some(false));
            Ok(Link {
                stream,
                tls: Some(session),
                h2: None,
            })
        }
        Handshake::Http2(stream, session) => Ok(Link {
            stream,
            tls: Some(session),
            h2: t.learned(&route.key, Some(true)),
        }),
        // (The caller marks the origin unknown again on any error.)
        Handshake::Failed(e) => Err(crate::reasons::handshake(url, &e)),
    }
}

async fn connect_name(
    t: &Transport,
    host: &str,
    port: u16,
    url: &str,
    in_tcp: &AtomicBool,
) -> Result<tokio::net::TcpStream, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| crate::reasons::dns(url, &e))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match connect_addr(t, addr, in_tcp).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(super::connect::refused(
        url,
        last.unwrap_or_else(|| std::io::Error::other("no addresses")),
    ))
}

async fn connect_addr(
    t: &Transport,
    addr: SocketAddr,
    in_tcp: &AtomicBool,
) -> std::io::Result<tokio::net::TcpStream> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = t.local_address {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    in_tcp.store(true, Ordering::Release);
    let stream = sock.connect(addr).await;
    in_tcp.store(false, Ordering::Release);
    let stream = stream?;
    super::connect::tune(&socket2::SockRef::from(&stream), t);
    Ok(stream)
}

/// A service that answers with a response already received, so that
/// tower-http's decompression (reqwest's own) can be put in front of it.
struct Received(Option<http::Response<Full<Bytes>>>);

impl tower_service::Service<http::Request<()>> for Received {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<()>) -> Self::Future {
        ready(Ok(self.0.take().unwrap_or_default()))
    }
}

/// Whether reqwest would decode a body with these headers.
pub(crate) fn compressed(accept: Accept, head: &Head) -> bool {
    match head.headers.get(reqwest::header::CONTENT_ENCODING) {
        Some(v) => match v.as_bytes() {
            b"gzip" => accept.gzip,
            b"deflate" => accept.deflate,
            b"br" => accept.brotli,
            b"zstd" => accept.zstd,
            _ => false,
        },
        None => false,
    }
}

/// Finishes a complete body on the runtime and answers with it: joins
/// its pieces, then decodes it when `accept` is given.
pub(crate) fn complete(
    rt: &tokio::runtime::Handle,
    gate: Arc<Gate>,
    accept: Option<Accept>,
    head: Head,
    body: Collected,
    (max_body, under_timeout): (MaxBody, bool),
) -> tokio::task::AbortHandle {
    rt.spawn(async move {
        let body = body.join();
        let r = match accept {
            Some(accept) => decoded(accept, head, body, (max_body, under_timeout)).await,
            None => Ok((head, body)),
        };
        gate.answer(r);
    })
    .abort_handle()
}

/// Decodes `body` as reqwest would with `accept`, within `max_body`:
/// the decoded bytes are counted frame by frame, so a small body that
/// inflates far past the limit stops there. `under_timeout`: whether a timeout
/// ran over the body (reqwest's words for an error then differ).
pub(crate) async fn decoded(
    accept: Accept,
    mut head: Head,
    body: Bytes,
    (max_body, under_timeout): (MaxBody, bool),
) -> Result<(Head, Bytes), Error> {
    use tower_service::Service;
    let mut resp = http::Response::new(Full::new(body));
    *resp.status_mut() = http::StatusCode::from_u16(head.status).unwrap_or_default();
    *resp.version_mut() = head.version;
    *resp.headers_mut() = std::mem::take(&mut head.headers);
    let mut svc = tower_http::decompression::Decompression::new(Received(Some(resp)))
        .gzip(accept.gzip)
        .deflate(accept.deflate)
        .br(accept.brotli)
        .zstd(accept.zstd);
    let resp = match svc.call(http::Request::new(())).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, mut body) = resp.into_parts();
    head.headers = parts.headers;
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| crate::reasons::body(&*e, under_timeout))?;
        if let Ok(data) = frame.into_data() {
            max_body.admit_len(out.len().saturating_add(data.len()))?;
            out.extend_from_slice(&data);
        }
    }
    Ok((head, out.freeze()))
}

/// The rest of a request through reqwest, from the hop this path left,
/// answered with the extra keys of `finish` (its connect timed by the
/// connector's timer, as on the runtime engine).
pub(crate) fn handoff(
    rt: &tokio::runtime::Handle,
    gate: Arc<Gate>,
    http: reqwest::Client,
    hop: Template,
    headers: reqwest::header::HeaderMap,
    max_body: MaxBody,
    mut finish: Finish,
) -> tokio::task::AbortHandle {
    rt.spawn(async move {
        let mut rb = http.request(hop.method, hop.url).headers(headers);
        if let Some(b) = hop.body {
            rb = rb.body(b);
        }
        let r = async {
            let slot = ConnectSlot::default();
            let sent = if finish.timed() {
                slot.clone().scope(rb.send()).await
            } else {
                rb.send().await
            };
            let mut resp = sent.map_err(|e| Error::from_reqwest(&e))?;
            finish.heard(slot.get(), std::time::Instant::now(), resp.remote_addr());
            let mut head = Head::take(&mut resp);
            let body = max_body.collect(resp).await?;
            head.meta = finish.meta(true);
            Ok((head, body))
        }
        .await;
        gate.answer(r);
    })
    .abort_handle()
}
