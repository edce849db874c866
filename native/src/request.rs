//! One request: its options, its handle, and the task that drives it.
//!
//! The NIF decodes the options on the scheduler (cheap checks only, see
//! `term.rs`), creates a [`Handle`] and spawns [`drive`] on the runtime.
//! From then on the task owns the request and talks to Erlang only through
//! its [`Replier`]; the NIF functions on the handle (`send`, `finish_send`,
//! `read`, `cancel`) just queue a [`Command`] for it.
//!
//! The task goes through up to three phases, each listening for `Cancel`:
//! uploading a streamed body (with an early reply possible), waiting for
//! the response, and reading the body (all at once, or per `read` call).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustler::{
    Atom, Binary, Encoder, Env, Error as NifError, LocalPid, MapIterator, Monitor, NifResult,
    ResourceArc, Term,
};
use tokio::time::Instant;

use crate::atoms;
use crate::body;
use crate::client::Client;
use crate::error::{Code, Error};
use crate::inbox::{inbox, Command, Receiver, Sender};
use crate::reply::{Head, Progress, Replier};
use crate::term::{bytes_from_iodata, decode_header_list, decode_int, decode_ms, header_map};

/// `read/2` without `length` returns after this many bytes.
const DEFAULT_READ_LENGTH: usize = 8 * 1024 * 1024;

/// reqwest has no "no timeout" for one request under a client timeout; a
/// century is the same in practice.
const FOREVER: Duration = crate::term::MAX_TIMEOUT;

/// Live handles and tasks, for leak checks in tests.
pub static LIVE_HANDLES: AtomicUsize = AtomicUsize::new(0);
pub static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyMode {
    Complete,
    Stream,
}

pub(crate) enum RequestBody {
    Empty,
    Full(Bytes),
    Stream,
}

/// A request whose options passed the checks that raise `badarg`. What is
/// left (a URL that does not parse, a bad header) is an `err()` that the
/// task sends as its first and final message.
pub(crate) struct Spec {
    pub(crate) method: reqwest::Method,
    pub(crate) checked: Result<Checked, Error>,
    pub(crate) upload: bool,
    pub(crate) response_body: BodyMode,
    pub(crate) timeout: Option<Duration>,
}

pub(crate) struct Checked {
    pub(crate) url: reqwest::Url,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: RequestBody,
}

impl Spec {
    /// Decodes `req_opts()` (see the module doc for what is `badarg` and
    /// what becomes an `err()`).
    pub(crate) fn decode(term: Term) -> NifResult<Self> {
        let mut method = None;
        let mut url: Option<Binary> = None;
        let mut headers = Vec::new();
        let mut body = None;
        let mut response_body = BodyMode::Complete;
        let mut timeout = None;
        for (k, v) in term.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atoms::url() => url = Some(v.decode()?),
                k if k == atoms::method() => method = Some(decode_method(v)?),
                k if k == atoms::headers() => headers = decode_header_list(v)?,
                k if k == atoms::body() => body = Some(v),
                k if k == atoms::response_body() => {
                    response_body = match v.decode::<Atom>()? {
                        a if a == atoms::complete() => BodyMode::Complete,
                        a if a == atoms::stream() => BodyMode::Stream,
                        _ => return Err(NifError::BadArg),
                    }
                }
                k if k == atoms::timeout() => timeout = Some(decode_ms(v)?.unwrap_or(FOREVER)),
                _ => return Err(NifError::BadArg),
            }
        }
        let method = method.ok_or(NifError::BadArg)?;
        let url = url.ok_or(NifError::BadArg)?;
        let upload = matches!(body, Some(b) if b.decode::<Atom>().ok() == Some(atoms::stream()));
        let checked = check(url.as_slice(), &headers, body);
        Ok(Spec {
            method,
            checked,
            upload,
            response_body,
            timeout,
        })
    }
}

fn check(url: &[u8], headers: &[(Binary, Binary)], body: Option<Term>) -> Result<Checked, Error> {
    let url = parse_url(url)?;
    let headers = header_map(headers).map_err(|e| Error::new(Code::Request, e))?;
    let body = match body {
        None => RequestBody::Empty,
        Some(b) if b.decode::<Atom>().ok() == Some(atoms::stream()) => RequestBody::Stream,
        Some(b) => RequestBody::Full(
            bytes_from_iodata(b).ok_or_else(|| Error::new(Code::Request, "body is not iodata"))?,
        ),
    };
    Ok(Checked { url, headers, body })
}

pub(crate) fn parse_url(bytes: &[u8]) -> Result<reqwest::Url, Error> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::new(Code::Url, "URL is not valid UTF-8"))?;
    let url =
        reqwest::Url::parse(text).map_err(|e| Error::new(Code::Url, format!("{e}: {text}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Error::new(
            Code::Url,
            format!("unsupported URL scheme: {other}"),
        )),
    }
}

pub(crate) fn decode_method(t: Term) -> NifResult<reqwest::Method> {
    use reqwest::Method;
    let a: Atom = t.decode()?;
    Ok(match a {
        a if a == atoms::get() => Method::GET,
        a if a == atoms::post() => Method::POST,
        a if a == atoms::put() => Method::PUT,
        a if a == atoms::delete() => Method::DELETE,
        a if a == atoms::head() => Method::HEAD,
        a if a == atoms::options() => Method::OPTIONS,
        a if a == atoms::patch() => Method::PATCH,
        a if a == atoms::trace() => Method::TRACE,
        a if a == atoms::connect() => Method::CONNECT,
        _ => return Err(NifError::BadArg),
    })
}

/// The Erlang side of a request. Dropping it (garbage collection) closes
/// the command queue, which the task reads as "nobody will send or read
/// any more".
pub struct Handle {
    cmds: Sender,
    progress: Arc<Progress>,
    upload: bool,
    download: bool,
}

#[rustler::resource_impl]
impl rustler::Resource for Handle {
    const IMPLEMENTS_DOWN: bool = true;

    /// The process receiving the messages died: nobody is left to hear.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _mon: Monitor) {
        self.cmds.send(Command::Cancel);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        LIVE_HANDLES.fetch_sub(1, Ordering::Relaxed);
    }
}

fn start<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    opts: Term<'a>,
) -> NifResult<ResourceArc<Handle>> {
    let http = client.get().ok_or(NifError::BadArg)?;
    let spec = Spec::decode(opts)?;
    let rt = client
        .runtime()
        .handle()
        .ok_or(NifError::RaiseAtom("bad_runtime"))?;
    let progress = Arc::new(Progress::default());
    let (tx, rx) = inbox();
    LIVE_HANDLES.fetch_add(1, Ordering::Relaxed);
    let handle = ResourceArc::new(Handle {
        cmds: tx,
        progress: progress.clone(),
        upload: spec.upload,
        download: spec.response_body == BodyMode::Stream,
    });
    if env.monitor(&handle, &pid).is_none() {
        // Already dead: run the request to its cancellation all the same,
        // so that the path is the usual one.
        handle.cmds.send(Command::Cancel);
    }
    let out = Replier::new(pid, reference, progress);
    LIVE_TASKS.fetch_add(1, Ordering::Relaxed);
    rt.spawn(drive(http, spec, rx, out));
    Ok(handle)
}

/// Starts a request; see `erqwest_async:req/4`.
#[rustler::nif]
fn req<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    opts: Term<'a>,
) -> NifResult<ResourceArc<Handle>> {
    start(env, client, pid, reference, opts)
}

/// The same on a dirty scheduler, for bodies given as lists (flattening
/// them takes time in proportion to their size) and long header lists.
#[rustler::nif(schedule = "DirtyCpu")]
fn req_dirty<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    opts: Term<'a>,
) -> NifResult<ResourceArc<Handle>> {
    start(env, client, pid, reference, opts)
}

fn queue_send(handle: &Handle, data: Term) -> NifResult<Atom> {
    if !handle.upload {
        return Err(NifError::BadArg);
    }
    let bytes = bytes_from_iodata(data).ok_or(NifError::BadArg)?;
    if handle.progress.upload_closed() {
        return Ok(atoms::finished());
    }
    handle.cmds.send(Command::Send(bytes));
    Ok(atoms::ok())
}

/// Queues a chunk of a streamed body: `ok`, or `finished` when the request
/// no longer takes a body.
#[rustler::nif]
fn send(handle: ResourceArc<Handle>, data: Term) -> NifResult<Atom> {
    queue_send(&handle, data)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn send_dirty(handle: ResourceArc<Handle>, data: Term) -> NifResult<Atom> {
    queue_send(&handle, data)
}

#[rustler::nif]
fn finish_send(handle: ResourceArc<Handle>) -> NifResult<Atom> {
    if !handle.upload {
        return Err(NifError::BadArg);
    }
    if handle.progress.upload_closed() {
        return Ok(atoms::finished());
    }
    handle.cmds.send(Command::FinishSend);
    Ok(atoms::ok())
}

/// Asks for the next piece of a streamed response body.
#[rustler::nif]
fn read(handle: ResourceArc<Handle>, opts: Term) -> NifResult<Atom> {
    if !handle.download {
        return Err(NifError::BadArg);
    }
    let mut length = DEFAULT_READ_LENGTH;
    let mut period = None;
    for (k, v) in opts.decode::<MapIterator>()? {
        match k.decode::<Atom>()? {
            k if k == atoms::length() => length = decode_int(v)?,
            k if k == atoms::period() => period = decode_ms(v)?,
            _ => return Err(NifError::BadArg),
        }
    }
    if handle.progress.is_delivered() {
        return Ok(atoms::finished());
    }
    handle.cmds.send(Command::Read { length, period });
    Ok(atoms::ok())
}

/// Cancels at any stage: `ok` when a final message is still to come,
/// `finished` when it was already delivered (then nothing happens).
#[rustler::nif]
fn cancel(handle: ResourceArc<Handle>) -> Atom {
    if handle.progress.is_delivered() {
        return atoms::finished();
    }
    handle.cmds.send(Command::Cancel);
    atoms::ok()
}

/// Counts of live handles and request tasks, for leak checks.
#[rustler::nif]
fn live_resources<'a>(env: Env<'a>) -> Term<'a> {
    (
        LIVE_HANDLES.load(Ordering::Relaxed),
        LIVE_TASKS.load(Ordering::Relaxed),
    )
        .encode(env)
}

async fn drive(http: reqwest::Client, spec: Spec, mut cmds: Receiver, mut out: Replier) {
    struct TaskCount;
    impl Drop for TaskCount {
        fn drop(&mut self) {
            LIVE_TASKS.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _count = TaskCount;
    if let Err(e) = run(&http, spec, &mut cmds, &mut out).await {
        if !out.is_done() {
            out.error(&e);
        }
    }
}

async fn run(
    http: &reqwest::Client,
    spec: Spec,
    cmds: &mut Receiver,
    out: &mut Replier,
) -> Result<(), Error> {
    let Checked { url, headers, body } = spec.checked?;
    let timeout = spec.timeout;
    let mut headers = headers;
    if matches!(body, RequestBody::Stream) {
        chunked_unless_sized(&mut headers);
    }
    let mut rb = http.request(spec.method, url).headers(headers);
    if let Some(t) = timeout {
        rb = rb.timeout(t);
    }
    let mut upload = None;
    match body {
        RequestBody::Empty => {}
        RequestBody::Full(b) => rb = rb.body(b),
        RequestBody::Stream => {
            let (tx, body) = body::channel();
            rb = rb.body(reqwest::Body::wrap(body));
            upload = Some(tx);
        }
    }
    let request = rb.build().map_err(|e| Error::from_reqwest(&e))?;
    let fut = http.execute(request);
    tokio::pin!(fut);
    // An upload cut short by an early reply stays open until the response
    // is read: aborting it earlier could close the connection under it.
    let (mut resp, _unfinished_upload) = match upload {
        Some(tx) => upload_phase(fut.as_mut(), tx, cmds, out).await?,
        None => (
            await_response(fut.as_mut(), cmds, spec.response_body).await?,
            None,
        ),
    };
    let head = Head::take(&mut resp);
    match spec.response_body {
        BodyMode::Complete => {
            let body = collect(resp, cmds).await?;
            out.reply(&head, Some(body));
            Ok(())
        }
        BodyMode::Stream => {
            out.reply(&head, None);
            read_phase(resp, cmds, out).await
        }
    }
}

/// hyper sends no body at all for a GET, HEAD or CONNECT whose length it
/// does not know, unless the request sets its framing headers itself. A
/// streamed body the caller asked for must go out, so it is sent chunked
/// (unless the caller gave a length or a transfer-encoding of their own).
fn chunked_unless_sized(headers: &mut reqwest::header::HeaderMap) {
    use reqwest::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
    if !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING) {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
}

fn cancelled() -> Error {
    Error::cancelled("cancelled")
}

/// Streams the request body until `finish_send`, sending `next` each time
/// hyper asks for more; returns the response, which may come early (then
/// with the body sender, still open).
async fn upload_phase<F>(
    mut fut: Pin<&mut F>,
    mut tx: body::Sender,
    cmds: &mut Receiver,
    out: &mut Replier,
) -> Result<(reqwest::Response, Option<body::Sender>), Error>
where
    F: Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    let mut owe_next = true;
    let mut finish_asked = false;
    loop {
        if finish_asked && queue.is_empty() && !tx.is_finished() {
            tx.finish();
        }
        let answered = tokio::select! {
            biased;
            c = cmds.recv() => {
                match c {
                    Some(Command::Cancel) => return Err(cancelled()),
                    Some(Command::Send(b)) if !finish_asked => {
                        queue.push_back(b);
                        owe_next = true;
                    }
                    Some(Command::FinishSend) => {
                        finish_asked = true;
                        owe_next = false;
                    }
                    Some(_) => {}
                    None if tx.is_finished() => {}
                    None => return Err(Error::cancelled("handle dropped before finish_send")),
                }
                None
            }
            r = fut.as_mut() => Some(r),
            permit = tx.reserve(), if !queue.is_empty() => {
                match (permit, queue.pop_front()) {
                    (Some(p), Some(chunk)) => tx.push(p, chunk),
                    // hyper dropped the body: the response future says why.
                    _ => queue.clear(),
                }
                None
            }
            _ = tx.demand(), if owe_next && queue.is_empty() && !finish_asked => {
                owe_next = false;
                out.next();
                None
            }
        };
        if let Some(r) = answered {
            let resp = r.map_err(|e| Error::from_reqwest(&e))?;
            if tx.is_finished() {
                return Ok((resp, None));
            }
            out.close_upload();
            return Ok((resp, Some(tx)));
        }
    }
}

async fn await_response<F>(
    mut fut: Pin<&mut F>,
    cmds: &mut Receiver,
    mode: BodyMode,
) -> Result<reqwest::Response, Error>
where
    F: Future<Output = reqwest::Result<reqwest::Response>>,
{
    loop {
        tokio::select! {
            biased;
            c = cmds.recv() => match c {
                Some(Command::Cancel) => return Err(cancelled()),
                // Nobody could read a streamed body any more.
                None if mode == BodyMode::Stream => return Err(Error::cancelled("handle dropped")),
                _ => {}
            },
            r = fut.as_mut() => return r.map_err(|e| Error::from_reqwest(&e)),
        }
    }
}

/// Reads the whole body, still listening for `cancel`.
async fn collect(mut resp: reqwest::Response, cmds: &mut Receiver) -> Result<Bytes, Error> {
    let mut parts = Parts::with_capacity(resp.content_length().unwrap_or(0));
    loop {
        tokio::select! {
            biased;
            c = cmds.recv() => if let Some(Command::Cancel) = c {
                return Err(cancelled());
            },
            r = resp.chunk() => match r.map_err(|e| Error::from_reqwest(&e))? {
                Some(b) => parts.push(b),
                None => return Ok(parts.take()),
            },
        }
    }
}

/// Serves `read` calls until the body ends.
async fn read_phase(
    mut resp: reqwest::Response,
    cmds: &mut Receiver,
    out: &mut Replier,
) -> Result<(), Error> {
    let mut reads: VecDeque<(usize, Option<Duration>)> = VecDeque::new();
    loop {
        let (length, period) = match reads.pop_front() {
            Some(r) => r,
            None => match cmds.recv().await {
                Some(Command::Read { length, period }) => (length, period),
                Some(Command::Cancel) | None => return Err(cancelled()),
                Some(_) => continue,
            },
        };
        let deadline = period.map(|p| Instant::now() + p);
        let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + FOREVER));
        tokio::pin!(sleep);
        // Sized up front: growing by doubling from record-sized chunks
        // copied each piece several times (bench/README.md).
        let expected = resp
            .content_length()
            .map_or(length, |n| n.min(length as u64) as usize);
        let mut parts = Parts::with_capacity(expected as u64);
        loop {
            tokio::select! {
                biased;
                c = cmds.recv() => match c {
                    Some(Command::Cancel) | None => return Err(cancelled()),
                    Some(Command::Read { length, period }) => reads.push_back((length, period)),
                    Some(_) => {}
                },
                _ = &mut sleep, if deadline.is_some() => {
                    out.chunk(parts.take());
                    break;
                }
                r = resp.chunk() => match r.map_err(|e| Error::from_reqwest(&e))? {
                    Some(b) => {
                        parts.push(b);
                        if parts.len >= length {
                            out.chunk(parts.take());
                            break;
                        }
                    }
                    None => {
                        out.fin(parts.take());
                        return Ok(());
                    }
                },
            }
        }
    }
}

/// Chunks gathered into one `Bytes`, without a copy when there is only one.
struct Parts {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    len: usize,
    hint: usize,
}

impl Parts {
    fn with_capacity(hint: u64) -> Self {
        Parts {
            first: None,
            rest: None,
            len: 0,
            hint: usize::try_from(hint).unwrap_or(0).min(64 * 1024 * 1024),
        }
    }

    fn push(&mut self, b: Bytes) {
        self.len += b.len();
        if let Some(buf) = &mut self.rest {
            buf.extend_from_slice(&b);
        } else if let Some(first) = self.first.take() {
            let mut buf = BytesMut::with_capacity(self.hint.max(first.len() + b.len()));
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&b);
            self.rest = Some(buf);
        } else {
            self.first = Some(b);
        }
    }

    fn take(&mut self) -> Bytes {
        self.len = 0;
        match (self.rest.take(), self.first.take()) {
            (Some(buf), _) => buf.freeze(),
            (None, Some(b)) => b,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_a_single_chunk_without_copying() {
        let mut p = Parts::with_capacity(0);
        let b = Bytes::from(vec![1u8; 10]);
        let ptr = b.as_ptr();
        p.push(b);
        let out = p.take();
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(p.take().len(), 0);
    }

    #[test]
    fn parts_concatenate_in_order() {
        let mut p = Parts::with_capacity(6);
        p.push(Bytes::from_static(b"ab"));
        p.push(Bytes::from_static(b"cd"));
        p.push(Bytes::from_static(b"ef"));
        assert_eq!(p.len, 6);
        assert_eq!(p.take(), Bytes::from_static(b"abcdef"));
    }

    #[test]
    fn streamed_bodies_are_chunked_unless_sized() {
        use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
        let mut h = HeaderMap::new();
        chunked_unless_sized(&mut h);
        assert_eq!(
            h.get(TRANSFER_ENCODING),
            Some(&HeaderValue::from_static("chunked"))
        );
        let mut sized = HeaderMap::new();
        sized.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        chunked_unless_sized(&mut sized);
        assert!(sized.get(TRANSFER_ENCODING).is_none());
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            parse_url(b"http://127.0.0.1:8080/x").map(|u| u.port()),
            Ok(Some(8080))
        );
        assert_eq!(
            parse_url(b"not a url").map_err(|e| e.code()),
            Err(Code::Url)
        );
        assert_eq!(
            parse_url(b"http://h/\xff").map_err(|e| e.code()),
            Err(Code::Url)
        );
        assert_eq!(parse_url(b"ftp://h/").map_err(|e| e.code()), Err(Code::Url));
    }
}
