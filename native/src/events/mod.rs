//! Event streams: a response body parsed into events inside the runtime
//! (server-sent events, NDJSON or plain lines) and delivered as
//! `{erqwest_events, Ref, ...}` messages, with `gen_tcp`-style credit.
//!
//! [`events_open`] decodes the options on the scheduler, makes a
//! [`Stream`] handle and spawns [`task::drive`]. The task sends the
//! request, parses the body ([`sse`], [`lines`]), decodes JSON when asked
//! (the crate's codec, into the message's environment) and sends each event while the owner has credit. With no
//! credit left it stops reading the body, so TCP flow control holds the
//! server back instead of a buffer growing here. An SSE stream that ends
//! or fails is reissued after the reconnection delay, with
//! `Last-Event-ID`.
//!
//! `active/2` and `close/1` queue a command for the task; the handle's
//! monitor on the owner queues the same `Cancel` as `close/1`.

mod batch;
pub mod lines;
mod pipe;
pub mod sse;
mod task;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustler::{
    Atom, Encoder, Env, Error as NifError, LocalPid, MapIterator, Monitor, NifResult, ResourceArc,
    Term,
};

use crate::client::Client;
use crate::inbox::{inbox, Command, Sender};
use crate::live::Live;
use crate::reply::{Progress, Replier};
use crate::request::Spec;
use crate::term::{decode_bool, decode_int, decode_ms};

pub(crate) mod credit;
pub use credit::Credit;

/// The atoms of event streams (a module of their own: option names
/// would otherwise shadow local variables).
pub(crate) mod atom {
    rustler::atoms! {
        erqwest_events,
        open,
        event,
        events,
        passive,
        reconnecting,
        closed,
        attempt,
        delay,
        last_event_id,
        type_ = "type",
        data,
        id,
        json_error,
        // err() codes
        http_status,
        content_type,
        line_too_long,
        event_too_long,
        // closed reasons
        eof,
        no_content,
        normal,
        // options
        format,
        sse,
        ndjson,
        lines,
        binary,
        json,
        active,
        once,
        reconnect,
        max_reconnects,
        retry,
        max_line,
        json_null,
        null,
        infinity,
        batch,
    }
}

/// The default `max_line`: longer lines end the stream.
const DEFAULT_MAX_LINE: usize = 1024 * 1024;
/// The reconnection delay until the server sends `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_millis(3000);
/// `batch => true`: the most events in one `events` message (besides the
/// credit), so that one message and the time to build it stay bounded
/// even for a network chunk of many tiny lines.
pub const MAX_BATCH: usize = 10_000;

/// Live handles and tasks, for leak checks in tests.
static LIVE_HANDLES: AtomicUsize = AtomicUsize::new(0);
static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ndjson,
    Lines,
}

/// The stream options (`erqwest_events:opts()`).
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub format: Format,
    /// SSE: decode each event's data as JSON.
    pub json_data: bool,
    pub active: Credit,
    pub reconnect: bool,
    /// `None`: no limit.
    pub max_reconnects: Option<u64>,
    pub retry: Duration,
    pub max_line: usize,
    /// What JSON `null` becomes (`null`, or `nil` for Elixir).
    pub null: Atom,
    /// `batch => true`: the queued events go out as lists, one
    /// `{erqwest_events, Ref, events, [E]}` per burst instead of one
    /// `event` message each.
    pub batch: bool,
}

impl Opts {
    fn decode(term: Term) -> NifResult<Self> {
        let mut format = Format::Sse;
        let mut json_data = None;
        let mut active = Credit::Once;
        let mut reconnect = None;
        let mut max_reconnects = None;
        let mut retry_ms = DEFAULT_RETRY;
        let mut max_line = DEFAULT_MAX_LINE;
        let mut null_atom = atom::null();
        let mut batch = false;
        for (k, v) in term.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atom::format() => {
                    format = match v.decode::<Atom>()? {
                        a if a == atom::sse() => Format::Sse,
                        a if a == atom::ndjson() => Format::Ndjson,
                        a if a == atom::lines() => Format::Lines,
                        _ => return Err(NifError::BadArg),
                    }
                }
                k if k == atom::data() => {
                    json_data = Some(match v.decode::<Atom>()? {
                        a if a == atom::binary() => false,
                        a if a == atom::json() => true,
                        _ => return Err(NifError::BadArg),
                    })
                }
                k if k == atom::active() => active = Credit::decode(v)?,
                k if k == atom::reconnect() => reconnect = Some(decode_bool(v)?),
                k if k == atom::max_reconnects() => {
                    max_reconnects = match v.decode::<Atom>() {
                        Ok(a) if a == atom::infinity() => None,
                        Ok(_) => return Err(NifError::BadArg),
                        Err(_) => Some(decode_int::<u64>(v)?),
                    }
                }
                k if k == atom::retry() => retry_ms = decode_ms(v)?.ok_or(NifError::BadArg)?,
                k if k == atom::max_line() => {
                    max_line = match decode_int::<usize>(v)? {
                        0 => return Err(NifError::BadArg),
                        n => n,
                    }
                }
                k if k == atom::json_null() => null_atom = v.decode::<Atom>()?,
                k if k == atom::batch() => batch = decode_bool(v)?,
                _ => return Err(NifError::BadArg),
            }
        }
        // `data` and `reconnect` are SSE options.
        if format != Format::Sse && (json_data.is_some() || reconnect == Some(true)) {
            return Err(NifError::BadArg);
        }
        Ok(Opts {
            format,
            json_data: json_data.unwrap_or(false),
            active,
            reconnect: reconnect.unwrap_or(format == Format::Sse),
            max_reconnects,
            retry: retry_ms,
            max_line,
            null: null_atom,
            batch,
        })
    }
}

/// The Erlang side of an event stream. Dropping it (garbage collection)
/// ends the stream: nobody could give credit or close it any more.
pub struct Stream {
    cmds: Sender,
    progress: Arc<Progress>,
}

#[rustler::resource_impl]
impl rustler::Resource for Stream {
    const IMPLEMENTS_DOWN: bool = true;

    /// The owner died: close the connection, as a socket's would be.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _mon: Monitor) {
        self.cmds.send(Command::Cancel);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        LIVE_HANDLES.fetch_sub(1, Ordering::Relaxed);
    }
}

fn start<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    req: Term<'a>,
    opts: Term<'a>,
) -> NifResult<ResourceArc<Stream>> {
    let http = client.get().ok_or(NifError::BadArg)?;
    let spec = Spec::decode_for(req, client.compose())?;
    // The request may be sent again on reconnect, so its body must be whole.
    if spec.upload || spec.response_body != crate::request::BodyMode::Complete {
        return Err(NifError::BadArg);
    }
    let opts = Opts::decode(opts)?;
    let rt = client
        .runtime()
        .handle()
        .ok_or(NifError::RaiseAtom("bad_runtime"))?;
    let progress = Arc::new(Progress::default());
    let (tx, rx) = inbox();
    LIVE_HANDLES.fetch_add(1, Ordering::Relaxed);
    let handle = ResourceArc::new(Stream {
        cmds: tx,
        progress: progress.clone(),
    });
    if env.monitor(&handle, &pid).is_none() {
        // Already dead: the task starts closed and ends at once.
        handle.cmds.send(Command::Cancel);
    }
    let out = Replier::with_tag(pid, reference, progress, atom::erqwest_events());
    let live = Live::new(&LIVE_TASKS);
    rt.spawn(async move {
        let _live = live;
        task::drive(http, spec, opts, rx, out).await;
    });
    Ok(handle)
}

/// Opens an event stream: `erqwest_events:open/5`.
#[rustler::nif]
fn events_open<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    req: Term<'a>,
    opts: Term<'a>,
) -> NifResult<ResourceArc<Stream>> {
    start(env, client, pid, reference, req, opts)
}

/// The same on a dirty scheduler, for bodies given as lists and long
/// header lists.
#[rustler::nif(schedule = "DirtyCpu")]
fn events_open_dirty<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    req: Term<'a>,
    opts: Term<'a>,
) -> NifResult<ResourceArc<Stream>> {
    start(env, client, pid, reference, req, opts)
}

/// Gives credit: `ok`, or `finished` once the final message was sent.
#[rustler::nif]
fn events_active(handle: ResourceArc<Stream>, credit: Term) -> NifResult<Atom> {
    let credit = Credit::decode(credit)?;
    if handle.progress.is_delivered() {
        return Ok(crate::atoms::finished());
    }
    handle.cmds.send(Command::Active(credit));
    Ok(crate::atoms::ok())
}

/// Ends the stream: `ok` (a `closed` message follows, unless another
/// final message was already on its way) or `finished`.
#[rustler::nif]
fn events_close(handle: ResourceArc<Stream>) -> Atom {
    if handle.progress.is_delivered() {
        return crate::atoms::finished();
    }
    handle.cmds.send(Command::Cancel);
    crate::atoms::ok()
}

/// `{LiveHandles, LiveTasks}` of event streams, for leak checks.
#[rustler::nif]
fn live_events(env: Env) -> Term {
    (
        LIVE_HANDLES.load(Ordering::Relaxed),
        LIVE_TASKS.load(Ordering::Relaxed),
    )
        .encode(env)
}

/// Runs a parser over `chunks` at once: for property tests of the parser
/// from Erlang. SSE gives `[{Type, Data, Id}]`, the others `[Line]`; a
/// limit gives `{error, line_too_long | event_too_long}`.
#[rustler::nif(schedule = "DirtyCpu")]
fn events_parse<'a>(
    env: Env<'a>,
    format_atom: Atom,
    chunks: Term<'a>,
    max_line_bytes: usize,
) -> NifResult<Term<'a>> {
    use crate::term::EncodeBinary;
    use std::collections::VecDeque;
    let chunks = crate::term::decode_list(chunks)?
        .into_iter()
        .map(|t| t.decode::<rustler::Binary>())
        .collect::<NifResult<Vec<_>>>()?;
    let limit = |code: Atom| Ok((crate::atoms::error(), code).encode(env));
    if format_atom == atom::sse() {
        let mut p = sse::Parser::new(max_line_bytes);
        let mut out = VecDeque::new();
        for c in &chunks {
            if let Err(e) = p.feed(c.as_slice(), &mut out) {
                return limit(match e {
                    sse::Limit::Line => atom::line_too_long(),
                    sse::Limit::Event => atom::event_too_long(),
                });
            }
        }
        let items: Vec<Term> = out
            .iter()
            .map(|e| {
                let id = match &e.id {
                    Some(i) => i.as_ref().encode_binary(env),
                    None => crate::atoms::undefined().encode(env),
                };
                (e.kind().encode_binary(env), e.data.encode_binary(env), id).encode(env)
            })
            .collect();
        return Ok(items.encode(env));
    }
    let skip_blank = match format_atom {
        a if a == atom::ndjson() => true,
        a if a == atom::lines() => false,
        _ => return Err(NifError::BadArg),
    };
    let mut s = lines::Splitter::new(max_line_bytes, skip_blank);
    let mut out = VecDeque::new();
    for c in &chunks {
        if s.feed(c.as_slice(), &mut out).is_err() {
            return limit(atom::line_too_long());
        }
    }
    s.finish(&mut out);
    let items: Vec<Term> = out.iter().map(|l| l.encode_binary(env)).collect();
    Ok(items.encode(env))
}
