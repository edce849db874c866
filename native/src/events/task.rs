//! The task behind one event stream: connect, check the response head,
//! read and parse the body while there is credit, and (SSE) reconnect
//! after the reconnection delay when the stream ends or fails.
//!
//! Every wait also listens for commands: credit (`active/2`), `Cancel`
//! (`close/1` or the owner's death, both ending with `closed`), or the
//! handle's end (garbage collected: the stream ends with `cancelled`).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use rustler::{Atom, Encoder, Env, Term};

use super::batch::batch_len;
use super::lines::Splitter;
use super::pipe::{self, Batch, Built, Pending};
use super::sse::{self, Parser};
use super::{atom, Format, Opts};
use crate::compose::Decoding;
use crate::error::{Code, Error};
use crate::inbox::{Command, Receiver};
use crate::reply::{encode_resp, Head, Replier};
use crate::request::build::build;
use crate::request::Spec;
use crate::term::EncodeBinary;

/// How a stream ends: the reason of `closed`, or an error.
enum End {
    Closed(Atom),
    Failed(Failure),
}

enum Failure {
    /// A transport error (or `cancelled`).
    Transport(Error),
    /// A status the stream does not accept.
    Status(u16),
    /// SSE: a media type other than `text/event-stream`.
    ContentType(String),
    LineTooLong(usize),
    EventTooLong,
}

impl Failure {
    fn code_and_reason(&self) -> (Atom, String) {
        match self {
            Failure::Transport(e) => (crate::atoms::unknown(), e.reason().to_owned()),
            Failure::Status(s) => (atom::http_status(), format!("HTTP status {s}")),
            Failure::ContentType(t) => (
                atom::content_type(),
                format!("expected text/event-stream, got {t:?}"),
            ),
            Failure::LineTooLong(n) => (
                atom::line_too_long(),
                format!("a line is longer than max_line ({n} bytes)"),
            ),
            Failure::EventTooLong => (
                atom::event_too_long(),
                format!(
                    "an event's data is longer than {} bytes",
                    sse::MAX_EVENT_DATA
                ),
            ),
        }
    }
}

/// What ended one connection.
enum Outcome {
    /// The whole stream is over.
    End(End),
    /// The body ended (`None`) or the connection failed: a reconnect may apply.
    Dropped(Option<Error>),
}

impl From<End> for Outcome {
    fn from(e: End) -> Self {
        Outcome::End(e)
    }
}

/// The body parsed into events, queued until there is credit for them.
enum Decoder {
    Sse {
        parser: Parser,
        queue: VecDeque<sse::Event>,
        json: bool,
    },
    Lines {
        splitter: Splitter,
        queue: VecDeque<Vec<u8>>,
        json: bool,
    },
}

impl Decoder {
    fn new(opts: &Opts) -> Self {
        match opts.format {
            Format::Sse => Decoder::Sse {
                parser: Parser::new(opts.max_line),
                queue: VecDeque::new(),
                json: opts.json_data,
            },
            Format::Ndjson | Format::Lines => Decoder::Lines {
                splitter: Splitter::new(opts.max_line, opts.format == Format::Ndjson),
                queue: VecDeque::new(),
                json: opts.format == Format::Ndjson,
            },
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events parsed and waiting.
    fn len(&self) -> usize {
        match self {
            Decoder::Sse { queue, .. } => queue.len(),
            Decoder::Lines { queue, .. } => queue.len(),
        }
    }

    fn feed(&mut self, chunk: &[u8], max_line: usize) -> Result<(), Failure> {
        match self {
            Decoder::Sse { parser, queue, .. } => parser.feed(chunk, queue).map_err(|e| match e {
                sse::Limit::Line => Failure::LineTooLong(max_line),
                sse::Limit::Event => Failure::EventTooLong,
            }),
            Decoder::Lines {
                splitter, queue, ..
            } => splitter
                .feed(chunk, queue)
                .map_err(|_| Failure::LineTooLong(max_line)),
        }
    }

    /// The body ended: a last line without LF still counts (not a partial SSE event).
    fn finish(&mut self) {
        if let Decoder::Lines {
            splitter, queue, ..
        } = self
        {
            splitter.finish(queue);
        }
    }

    fn restart(&mut self) {
        match self {
            Decoder::Sse { parser, .. } => parser.restart(),
            Decoder::Lines { splitter, .. } => splitter.restart(),
        }
    }

    fn last_event_id(&self) -> Option<Bytes> {
        match self {
            Decoder::Sse { parser, .. } if !parser.last_event_id().is_empty() => {
                Some(parser.last_event_id().clone())
            }
            _ => None,
        }
    }

    fn retry(&self) -> Option<Duration> {
        match self {
            Decoder::Sse { parser, .. } => parser
                .retry()
                .map(|ms| Duration::from_millis(ms).min(crate::term::MAX_TIMEOUT)),
            Decoder::Lines { .. } => None,
        }
    }

    /// Sends the next queued event; `false` when there was none.
    fn send_one(&mut self, out: &mut Replier, null: Atom) -> bool {
        let tag = atom::erqwest_events();
        match self {
            Decoder::Sse { queue, json, .. } => match queue.pop_front() {
                Some(e) => {
                    let json = *json;
                    out.notify(|env, r| {
                        (tag, r, atom::event(), encode_sse(env, &e, json, null)).encode(env)
                    });
                    true
                }
                None => false,
            },
            Decoder::Lines { queue, json, .. } => match queue.pop_front() {
                Some(line) => {
                    let json = *json;
                    out.notify(|env, r| {
                        (tag, r, atom::event(), encode_line(env, &line, json, null)).encode(env)
                    });
                    true
                }
                None => false,
            },
        }
    }
    /// Takes up to `max` queued events, in order, for one `events` list
    /// (`None` when none are queued or `max` is 0).
    fn take_batch(&mut self, max: usize) -> Option<Batch> {
        match self {
            Decoder::Sse { queue, json, .. } => {
                let n = queue.len().min(max);
                (n > 0).then(|| Batch::Sse {
                    events: queue.drain(..n).collect(),
                    json: *json,
                })
            }
            Decoder::Lines { queue, json, .. } => {
                let n = queue.len().min(max);
                (n > 0).then(|| Batch::Lines {
                    lines: queue.drain(..n).collect(),
                    json: *json,
                })
            }
        }
    }
}

/// `#{type, data, id}`, with `json_error => true` when JSON was asked
/// for and the data is not JSON (it is then the binary).
fn encode_sse<'a>(env: Env<'a>, e: &sse::Event, as_json: bool, null: Atom) -> Term<'a> {
    let id = match &e.id {
        Some(i) => i.as_ref().encode_binary(env),
        None => crate::atoms::undefined().encode(env),
    };
    let (data, bad) = match as_json {
        true => match crate::json::decode(env, &e.data, null) {
            Ok(t) => (t, false),
            Err(_) => (e.data.encode_binary(env), true),
        },
        false => (e.data.encode_binary(env), false),
    };
    let keys = [
        atom::type_().encode(env),
        atom::data().encode(env),
        atom::id().encode(env),
        atom::json_error().encode(env),
    ];
    let values = [e.kind().encode_binary(env), data, id, true.encode(env)];
    // `json_error` only when it is true.
    let n = if bad { 4 } else { 3 };
    Term::map_from_term_arrays(env, &keys[..n], &values[..n])
        .unwrap_or_else(|_| crate::atoms::error().encode(env))
}

/// A line as a binary; NDJSON as its term, or `{json_error, Line}`.
fn encode_line<'a>(env: Env<'a>, line: &[u8], as_json: bool, null: Atom) -> Term<'a> {
    if !as_json {
        return line.encode_binary(env);
    }
    match crate::json::decode(env, line, null) {
        Ok(t) => t,
        Err(_) => (atom::json_error(), line.encode_binary(env)).encode(env),
    }
}

/// What the task keeps across connections.
struct Stream<'o> {
    opts: Opts,
    credit: u64,
    decoder: Decoder,
    out: &'o mut Replier,
}

impl Stream<'_> {
    /// Applies a command; `Err` when it ends the stream.
    fn command(&mut self, c: Option<Command>) -> Result<(), End> {
        match c {
            Some(Command::Active(credit)) => {
                self.credit = credit.apply(self.credit);
                Ok(())
            }
            Some(Command::Cancel) => Err(End::Closed(atom::normal())),
            Some(_) => Ok(()),
            None => Err(End::Failed(Failure::Transport(Error::cancelled(
                "handle dropped",
            )))),
        }
    }

    /// Sends queued events while there is credit; `passive` when it runs
    /// out. With `batch`, as few `events` lists as the credit and
    /// [`MAX_BATCH`](super::MAX_BATCH) allow; credit still counts events.
    /// A long list is left building in `pending` (see `pipe.rs`).
    async fn deliver(&mut self, pending: &mut Option<Pending>) {
        if self.opts.batch {
            return self.deliver_batches(pending).await;
        }
        while self.credit > 0 && self.decoder.send_one(self.out, self.opts.null) {
            self.credit -= 1;
            if self.credit == 0 {
                self.notify_passive();
            }
        }
    }

    async fn deliver_batches(&mut self, pending: &mut Option<Pending>) {
        loop {
            let max = batch_len(self.credit, usize::MAX);
            let Some(batch) = self.decoder.take_batch(max) else {
                return;
            };
            // At most the credit, so this never wraps.
            self.credit -= batch.len() as u64;
            let passive = self.credit == 0;
            self.flush(pending).await;
            if batch.len() >= pipe::MIN_EVENTS {
                *pending = Some(pipe::spawn(batch, self.opts.null, passive));
            } else {
                let null = self.opts.null;
                let tag = atom::erqwest_events();
                self.out
                    .notify(|env, r| (tag, r, atom::events(), batch.encode(env, null)).encode(env));
                if passive {
                    self.notify_passive();
                }
            }
            if passive {
                return;
            }
        }
    }

    /// Sends the list being built, once it is.
    async fn flush(&mut self, pending: &mut Option<Pending>) {
        if let Some(p) = pending.take() {
            let passive = p.passive;
            let built = p.finish().await;
            self.send_built(built, passive);
        }
    }

    fn send_built(&mut self, built: Result<Built, tokio::task::JoinError>, passive: bool) {
        // An `Err` is a panic while building, which no input causes.
        if let Ok(Built { env, list }) = built {
            let tag = atom::erqwest_events();
            self.out
                .notify_in(env, |e, r| (tag, r, atom::events(), list.load(e)).encode(e));
        }
        if passive {
            self.notify_passive();
        }
    }

    fn notify_passive(&mut self) {
        let tag = atom::erqwest_events();
        self.out
            .notify(|env, r| (tag, r, atom::passive()).encode(env));
    }

    /// Feeds what one read of the body gave; `Some` when the body is
    /// not to be read any more.
    fn take_chunk(&mut self, r: reqwest::Result<Option<Bytes>>) -> Option<Outcome> {
        match r {
            Ok(Some(b)) => self
                .decoder
                .feed(&b, self.opts.max_line)
                .err()
                .map(|f| End::Failed(f).into()),
            Ok(None) => {
                self.decoder.finish();
                Some(Outcome::Dropped(None))
            }
            Err(e) => Some(Outcome::Dropped(Some(Error::from_reqwest(&e)))),
        }
    }

    fn notify_open(&mut self, head: &Head) {
        let tag = atom::erqwest_events();
        self.out.notify(|env, r| {
            // Without a body there is nothing to decode, so never an `Err`.
            let resp = encode_resp(env, head, None, Decoding::default()).unwrap_or_else(|e| e);
            (tag, r, atom::open(), resp).encode(env)
        });
    }

    fn notify_reconnecting(&mut self, attempt: u64, delay: Duration) {
        let tag = atom::erqwest_events();
        let id = self.decoder.last_event_id();
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.out.notify(|env, r| {
            let keys = [
                atom::attempt().encode(env),
                atom::delay().encode(env),
                atom::last_event_id().encode(env),
            ];
            let id = match &id {
                Some(i) => i.as_ref().encode_binary(env),
                None => crate::atoms::undefined().encode(env),
            };
            let values = [attempt.encode(env), ms.encode(env), id];
            let info = Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| crate::atoms::error().encode(env));
            (tag, r, atom::reconnecting(), info).encode(env)
        });
    }
}

/// Runs one stream until its final message is sent.
pub(super) async fn drive(
    http: reqwest::Client,
    spec: Spec,
    opts: Opts,
    mut cmds: Receiver,
    mut out: Replier,
) {
    let end = run(&http, spec, opts, &mut cmds, &mut out).await;
    let tag = atom::erqwest_events();
    match end {
        End::Closed(reason) => {
            out.final_message(|env, r| (tag, r, atom::closed(), reason).encode(env))
        }
        End::Failed(Failure::Transport(e)) => out.error(&e),
        End::Failed(f) => {
            let status = match f {
                Failure::Status(s) => Some(s),
                _ => None,
            };
            let (code, reason) = f.code_and_reason();
            out.error_map(|env| {
                let mut keys = vec![
                    crate::atoms::code().encode(env),
                    crate::atoms::reason().encode(env),
                ];
                let mut values = vec![code.encode(env), reason.as_bytes().encode_binary(env)];
                if let Some(s) = status {
                    keys.push(crate::atoms::status().encode(env));
                    values.push(s.encode(env));
                }
                Term::map_from_term_arrays(env, &keys, &values)
                    .unwrap_or_else(|_| crate::atoms::error().encode(env))
            })
        }
    }
}

async fn run(
    http: &reqwest::Client,
    spec: Spec,
    opts: Opts,
    cmds: &mut Receiver,
    out: &mut Replier,
) -> End {
    let checked = match spec.checked {
        Ok(c) => c,
        Err(e) => return End::Failed(Failure::Transport(e)),
    };
    let mut template = match build(http, spec.method, checked, spec.timeout).await {
        Ok(b) => b.request,
        Err(e) => return End::Failed(Failure::Transport(e)),
    };
    if opts.format == Format::Sse && !template.headers().contains_key(ACCEPT) {
        template
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    }
    let mut st = Stream {
        opts,
        credit: opts.active.apply(0),
        decoder: Decoder::new(&opts),
        out,
    };
    let mut attempts = 0u64;
    loop {
        let Some(mut req) = template.try_clone() else {
            return End::Failed(Failure::Transport(Error::new(
                Code::Request,
                "the request cannot be sent again",
            )));
        };
        if let Some(id) = st.decoder.last_event_id() {
            if let Ok(v) = HeaderValue::from_bytes(&id) {
                req.headers_mut().insert("last-event-id", v);
            }
        }
        let dropped = match connection(http, req, &mut st, cmds).await {
            Outcome::End(e) => return e,
            Outcome::Dropped(d) => d,
        };
        let reconnects = st.opts.reconnect
            && st.opts.max_reconnects.is_none_or(|m| attempts < m)
            && dropped.as_ref().is_none_or(worth_reconnecting);
        if !reconnects {
            return match dropped {
                None => End::Closed(atom::eof()),
                Some(e) => End::Failed(Failure::Transport(e)),
            };
        }
        attempts += 1;
        let delay = st.decoder.retry().unwrap_or(st.opts.retry);
        st.notify_reconnecting(attempts, delay);
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                c = cmds.recv() => if let Err(e) = st.command(c) { return e },
                _ = &mut sleep => break,
            }
        }
        st.decoder.restart();
    }
}

/// Errors of the network, which a new connection may not meet again.
fn worth_reconnecting(e: &Error) -> bool {
    matches!(e.code(), Code::Connect | Code::Timeout | Code::Body)
}

/// One connection: the response head, then the body while there is credit.
async fn connection(
    http: &reqwest::Client,
    req: reqwest::Request,
    st: &mut Stream<'_>,
    cmds: &mut Receiver,
) -> Outcome {
    let fut = http.execute(req);
    tokio::pin!(fut);
    let result = loop {
        tokio::select! {
            biased;
            c = cmds.recv() => if let Err(e) = st.command(c) { return e.into() },
            r = &mut fut => break r,
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Dropped(Some(Error::from_reqwest(&e))),
    };
    if let Some(end) = check_head(&resp, st.opts.format) {
        return end.into();
    }
    st.notify_open(&Head::take(&mut resp));
    // Once set, the body is not read any more; the events parsed before
    // it still go out first, as credit allows.
    let mut stop: Option<Outcome> = None;
    // A list being built (batch); dropped unsent if the stream is cancelled.
    let mut pending: Option<Pending> = None;
    loop {
        st.deliver(&mut pending).await;
        if st.decoder.is_empty() {
            if let Some(o) = stop {
                st.flush(&mut pending).await;
                return o;
            }
        }
        let want_body = stop.is_none() && st.credit > 0 && st.decoder.is_empty();
        let mut built = None;
        tokio::select! {
            biased;
            c = cmds.recv() => if let Err(e) = st.command(c) { return e.into() },
            b = pipe::join(&mut pending), if pending.is_some() => built = Some(b),
            r = resp.chunk(), if want_body => stop = st.take_chunk(r),
        }
        if let Some(b) = built {
            if let Some(p) = pending.take() {
                st.send_built(b, p.passive);
            }
        }
        if st.opts.batch {
            stop = top_up(&mut resp, st, stop).await;
        }
    }
}

/// With `batch`: more of the body while it is already there (hyper hands
/// over at most 8 KB at a time), so that one list carries up to the credit
/// or [`MAX_BATCH`](super::MAX_BATCH) events instead of one chunk's worth; at most
/// [`TOP_UP_BYTES`] per round, without waiting for the network.
async fn top_up(
    resp: &mut reqwest::Response,
    st: &mut Stream<'_>,
    mut stop: Option<Outcome>,
) -> Option<Outcome> {
    let mut read = 0;
    while stop.is_none()
        && read < TOP_UP_BYTES
        && !st.decoder.is_empty()
        && st.decoder.len() < batch_len(st.credit, usize::MAX)
    {
        let mut r = ready_now(resp.chunk()).await;
        if r.is_none() {
            // Asking woke hyper's connection task: let it run once.
            tokio::task::yield_now().await;
            r = ready_now(resp.chunk()).await;
        }
        match r {
            None => break,
            Some(r) => {
                read += match &r {
                    Ok(Some(b)) => b.len(),
                    _ => 0,
                };
                stop = st.take_chunk(r);
            }
        }
    }
    stop
}

/// The most body bytes [`top_up`] takes in one round.
const TOP_UP_BYTES: usize = 256 * 1024;

/// The future's output if it is ready when first polled, else `None`
/// (the future is dropped: reading a body chunk loses nothing that way).
async fn ready_now<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match fut.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// `None` when the stream may be read; else how it ends.
fn check_head(resp: &reqwest::Response, format: Format) -> Option<End> {
    let status = resp.status();
    if status == StatusCode::NO_CONTENT {
        return Some(End::Closed(atom::no_content()));
    }
    if format != Format::Sse {
        return (!status.is_success()).then(|| End::Failed(Failure::Status(status.as_u16())));
    }
    if status != StatusCode::OK {
        return Some(End::Failed(Failure::Status(status.as_u16())));
    }
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("text/event-stream") {
        None
    } else {
        Some(End::Failed(Failure::ContentType(ct)))
    }
}
