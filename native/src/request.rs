//! One request: its options, its handle and the NIF functions on it.
//!
//! The NIF decodes the options on the scheduler (cheap checks only, see
//! `term.rs`), creates a [`Handle`] and spawns [`task::drive`] on the
//! runtime. From then on the task owns the request and talks to Erlang
//! only through its [`Replier`]; the NIF functions on the handle (`send`,
//! `finish_send`, `read`, `cancel`) just queue a [`Command`] for it.

pub(crate) mod build;
mod task;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustler::{
    Atom, Binary, Encoder, Env, Error as NifError, LocalPid, MapIterator, Monitor, NifResult,
    ResourceArc, Term,
};

use crate::atoms;
use crate::client::Client;
use crate::compose;
use crate::error::{Code, Error};
use crate::inbox::{inbox, Command, Sender};
use crate::live::Live;
use crate::max_body::MaxBody;
use crate::reply::{Progress, Replier};
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
    /// Query, JSON, form, multipart, auth and decoding (compose.rs).
    pub(crate) compose: compose::Options,
    pub(crate) resilience: crate::resilience::Overrides,
    /// The request's own `max_body`; the client's applies without one.
    pub(crate) max_body: Option<MaxBody>,
}

pub(crate) struct Checked {
    pub(crate) url: reqwest::Url,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: RequestBody,
    /// Query, composed body and auth (compose.rs).
    pub(crate) compose: compose::Wire,
}

impl Spec {
    /// Decodes `req_opts()` (see the module doc for what is `badarg` and
    /// what becomes an `err()`) for a client whose defaults (a base URL,
    /// auth, decoding) apply.
    pub(crate) fn decode_for(term: Term, defaults: &compose::Defaults) -> NifResult<Self> {
        let mut method = None;
        let mut url: Option<Binary> = None;
        let mut headers = Vec::new();
        let mut body = None;
        let mut response_body = BodyMode::Complete;
        let mut timeout = None;
        let mut compose = compose::Options::default();
        let mut resilience = crate::resilience::Overrides::default();
        let mut max_body = None;
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
                k if k == atoms::max_body() => max_body = Some(MaxBody::decode(v)?),
                k if compose::Options::is_key(k) => compose.set(k, v)?,
                k if crate::resilience::Overrides::is_key(k) => resilience.set(k, v)?,
                _ => return Err(NifError::BadArg),
            }
        }
        let method = method.ok_or(NifError::BadArg)?;
        let url = url.ok_or(NifError::BadArg)?;
        let upload = matches!(body, Some(b) if b.decode::<Atom>().ok() == Some(atoms::stream()));
        if body.is_some() && compose.has_body() {
            return Err(compose::bad(
                "body cannot be combined with json, form or multipart",
            ));
        }
        let mut checked = check(defaults.url(url.as_slice()), &headers, body);
        if let Ok(c) = &mut checked {
            c.compose = compose.wire(defaults, &c.headers);
        }
        Ok(Spec {
            method,
            checked,
            upload,
            response_body,
            timeout,
            compose,
            resilience,
            max_body,
        })
    }
}

fn check(
    url: Result<reqwest::Url, Error>,
    headers: &[(Binary, Binary)],
    body: Option<Term>,
) -> Result<Checked, Error> {
    let url = url?;
    let headers = header_map(headers).map_err(|e| Error::new(Code::Request, e))?;
    let body = match body {
        None => RequestBody::Empty,
        Some(b) if b.decode::<Atom>().ok() == Some(atoms::stream()) => RequestBody::Stream,
        Some(b) => RequestBody::Full(
            bytes_from_iodata(b).ok_or_else(|| Error::new(Code::Request, "body is not iodata"))?,
        ),
    };
    Ok(Checked {
        url,
        headers,
        body,
        compose: compose::Wire::default(),
    })
}

/// `timeout => 0`: the request fails at once, nothing sent, whichever
/// engine would take it (tokio's timer let a fast answer through before
/// its first tick, so it used to succeed now and then).
pub(crate) fn timed_out_at_once(url: &reqwest::Url) -> Error {
    let mut url = url.clone();
    url.set_fragment(None);
    crate::reasons::timed_out(url.as_str())
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
    /// Set by `finish_send`: the body is complete, so a later `send` or
    /// `finish_send` is a mistake (the task ignores them, and a caller
    /// waiting for their answer would wait for ever).
    send_finished: AtomicBool,
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
    let mut spec = Spec::decode_for(opts, client.compose())?;
    spec.max_body = Some(spec.max_body.unwrap_or(client.max_body()));
    if client.timeout_of(spec.timeout) == Some(Duration::ZERO) {
        spec.checked = spec.checked.and_then(|c| Err(timed_out_at_once(&c.url)));
    }
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
        send_finished: AtomicBool::new(false),
    });
    if env.monitor(&handle, &pid).is_none() {
        // Already dead: run the request to its cancellation all the same,
        // so that the path is the usual one.
        handle.cmds.send(Command::Cancel);
    }
    let out =
        Replier::new(pid, reference, progress).decode_with(spec.compose.decoding(client.compose()));
    let live = Live::new(&LIVE_TASKS);
    let state = client.resilience().clone();
    rt.spawn(task::drive(http, state, Box::new(spec), rx, out, live));
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
    if !handle.upload || handle.send_finished.load(Ordering::Acquire) {
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
/// no longer takes a body; `badarg` after `finish_send`.
#[rustler::nif]
fn send(handle: ResourceArc<Handle>, data: Term) -> NifResult<Atom> {
    queue_send(&handle, data)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn send_dirty(handle: ResourceArc<Handle>, data: Term) -> NifResult<Atom> {
    queue_send(&handle, data)
}

/// Ends a streamed body: `ok`, or `finished` when the request no longer
/// takes a body. Only once: a second call raises `badarg`.
#[rustler::nif]
fn finish_send(handle: ResourceArc<Handle>) -> NifResult<Atom> {
    if !handle.upload || handle.send_finished.swap(true, Ordering::AcqRel) {
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
