//! The task that follows one operation: the first request, then a poll
//! of the status URL after each wait (a tokio timer, or the next `poll/1`
//! in a manual loop) until a terminal state, then the result.
//!
//! Cancellation and `max_wait` are not checked here: [`drive`] races the
//! whole of [`follow`] against them, so a cancel drops whatever request is
//! in flight at once.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use reqwest::{StatusCode, Url};
use rustler::{Encoder, Env, Term};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::headers;
use super::json;
use super::opts::{Checked, OpOpts, Spec};
use super::status::{self, State};
use crate::atoms;
use crate::error::{Code, Error};
use crate::max_body::MaxBody;
use crate::reply::{Head, Replier};
use crate::term::EncodeBinary;

/// Status documents larger than this are refused: they are small by
/// nature, and a status URL sending megabytes is not one.
const DOC_LIMIT: usize = 1024 * 1024;

/// What the NIF functions on the handle share with the task.
pub struct Shared {
    pub cancel: Notify,
    seen: Mutex<Seen>,
}

impl Shared {
    pub fn new(poll_interval: Duration) -> Self {
        Shared {
            cancel: Notify::new(),
            seen: Mutex::new(Seen {
                state: State::Pending,
                status: String::new(),
                percent: None,
                retry_after: poll_interval,
                status_url: None,
            }),
        }
    }

    /// What the last poll said.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// The operation as last seen, for `status/1` and the progress messages.
#[derive(Clone, Debug)]
pub struct Seen {
    pub state: State,
    /// The server's own word for the state; empty when it gave none.
    pub status: String,
    pub percent: Option<u8>,
    /// The wait before the next poll: `Retry-After`, else `poll_interval`.
    pub retry_after: Duration,
    pub status_url: Option<String>,
}

impl Seen {
    /// `#{state, status, percent_complete, retry_after}`, plus `status_url`
    /// when `with_url`.
    pub fn encode<'a>(&self, env: Env<'a>, with_url: bool) -> Term<'a> {
        let state = match self.state {
            State::Pending => atoms::pending(),
            State::Running => atoms::running(),
            State::Succeeded => atoms::succeeded(),
            State::Failed => atoms::failed(),
            State::Canceled => atoms::canceled(),
        };
        let mut keys = vec![
            atoms::state().encode(env),
            atoms::status().encode(env),
            atoms::percent_complete().encode(env),
            atoms::retry_after().encode(env),
        ];
        let mut values = vec![
            state.encode(env),
            self.status.as_bytes().encode_binary(env),
            match self.percent {
                Some(p) => p.encode(env),
                None => atoms::undefined().encode(env),
            },
            u64::try_from(self.retry_after.as_millis())
                .unwrap_or(u64::MAX)
                .encode(env),
        ];
        if with_url {
            keys.push(atoms::status_url().encode(env));
            values.push(match &self.status_url {
                Some(u) => u.as_bytes().encode_binary(env),
                None => atoms::undefined().encode(env),
            });
        }
        Term::map_from_term_arrays(env, &keys, &values)
            .unwrap_or_else(|_| atoms::error().encode(env))
    }
}

/// How the task moves from one poll to the next.
pub enum Mode {
    /// After `Retry-After` or `poll_interval`, on a tokio timer.
    Auto,
    /// When `poll/1` asks; a closed channel means the handle is gone.
    Manual(mpsc::UnboundedReceiver<()>),
}

pub struct Ctx {
    pub http: reqwest::Client,
    pub opts: OpOpts,
    pub timeout: Option<Duration>,
    pub shared: Arc<Shared>,
    /// The client's `max_body`, for the answer and the result.
    pub(crate) max_body: MaxBody,
}

impl Ctx {
    fn send(
        &self,
        mut rb: reqwest::RequestBuilder,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
        if let Some(t) = self.timeout {
            rb = rb.timeout(t);
        }
        rb.send()
    }

    fn get(&self, url: &Url) -> reqwest::RequestBuilder {
        self.http
            .get(url.clone())
            .headers(self.opts.poll_headers.clone())
    }
}

/// A failure on its way to Erlang: an `err()` and the keys an operation
/// adds to it.
#[derive(Debug)]
pub struct Failure {
    err: Error,
    problem: Option<Value>,
    http_status: Option<u16>,
}

impl Failure {
    fn new(code: Code, reason: impl Into<String>) -> Self {
        Error::new(code, reason).into()
    }

    /// A terminal state with the server's problem, if it gave one.
    fn terminal(code: Code, what: &str, problem: Option<Value>) -> Self {
        let reason = match problem.as_ref().and_then(status::describe) {
            Some(d) => format!("{what}: {d}"),
            None => what.to_owned(),
        };
        Failure {
            err: Error::new(code, reason),
            problem,
            http_status: None,
        }
    }

    /// A transport error, with what was being done in the reason.
    fn transport(doing: &str, url: &Url, e: &reqwest::Error) -> Self {
        let err = Error::from_reqwest(e);
        Error::new(err.code(), format!("{doing} {url}: {}", err.reason())).into()
    }

    fn send(self, out: &mut Replier) {
        if self.problem.is_none() && self.http_status.is_none() {
            return out.error(&self.err);
        }
        out.error_map(move |env| {
            let mut keys = vec![atoms::code().encode(env), atoms::reason().encode(env)];
            let mut values = vec![
                self.err.code().encode(env),
                self.err.reason().as_bytes().encode_binary(env),
            ];
            if let Some(p) = &self.problem {
                keys.push(atoms::problem().encode(env));
                values.push(json::encode(env, p));
            }
            if let Some(s) = self.http_status {
                keys.push(atoms::http_status().encode(env));
                values.push(s.encode(env));
            }
            Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| atoms::error().encode(env))
        });
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure {
            err,
            problem: None,
            http_status: None,
        }
    }
}

/// A complete response: the operation's final `reply`.
struct Done {
    head: Head,
    body: Bytes,
}

/// What one poll found.
enum Step {
    /// Not finished; the status URL may have moved.
    Running {
        next_url: Option<Url>,
        retry_after: Option<Duration>,
    },
    /// Finished; the result is at this URL.
    Fetch(Url),
    /// Finished, with the result in hand.
    Done(Done),
}

/// Runs the operation and sends its one final message.
pub async fn drive(ctx: Ctx, spec: Spec, mode: Mode, mut out: Replier) {
    let deadline = ctx
        .opts
        .max_wait
        .and_then(|d| Instant::now().checked_add(d));
    let outcome = tokio::select! {
        biased;
        () = ctx.shared.cancel.notified() => Err(Error::cancelled("cancelled").into()),
        () = until(deadline) => Err(Failure::new(
            Code::Timeout,
            format!(
                "operation did not finish within max_wait ({} ms)",
                ctx.opts.max_wait.map_or(0, |d| d.as_millis())
            ),
        )),
        r = follow(&ctx, spec, mode, &mut out) => r,
    };
    match outcome {
        Ok(done) => out.reply(&done.head, Some(done.body)),
        Err(f) => f.send(&mut out),
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn follow(ctx: &Ctx, spec: Spec, mut mode: Mode, out: &mut Replier) -> Result<Done, Failure> {
    let Checked {
        url,
        mut headers,
        body,
        mut compose,
    } = spec.checked?;
    compose.strip_replaced(&mut headers);
    let content_type_set = headers.contains_key(reqwest::header::CONTENT_TYPE);
    let mut rb = ctx.http.request(spec.method, url).headers(headers);
    if let Some(b) = body {
        rb = rb.body(b);
    }
    compose.open_files().await?;
    rb = compose.apply(rb, content_type_set)?;
    let resp = ctx
        .send(rb)
        .await
        .map_err(|e| Failure::from(Error::from_reqwest(&e)))?;
    if resp.status() != StatusCode::ACCEPTED {
        return read_all(ctx, resp).await;
    }
    let base = resp.url().clone();
    let accepted = read_all(ctx, resp).await?;
    let (doc_state, doc_percent, doc_location) = match status::parse(&accepted.body) {
        Some(d) if accepted.body.len() <= DOC_LIMIT => (d.state, d.percent, d.location),
        _ => (None, None, None),
    };
    let found = headers::status_url(&accepted.head.headers, &base)
        .or_else(|| doc_location.map(|l| headers::resolve(&base, &l)));
    let mut status_url = match found {
        // Accepted, with nothing to follow: the 202 is all there is.
        None => return Ok(accepted),
        Some(Ok(u)) => u,
        Some(Err(e)) => {
            return Err(Failure::new(
                Code::Url,
                format!("202 Accepted with an unusable status URL: {e}"),
            ))
        }
    };
    let result_url = headers::result_url(&accepted.head.headers, &base, &status_url);
    let mut hint = headers::retry_after(&accepted.head.headers, SystemTime::now());
    let (state, word) = doc_state
        .filter(|(s, _)| !s.is_terminal())
        .unwrap_or((State::Pending, String::new()));
    ctx.shared.update(|s| {
        *s = Seen {
            state,
            status: word,
            percent: doc_percent,
            retry_after: hint.unwrap_or(ctx.opts.poll_interval),
            status_url: Some(status_url.to_string()),
        }
    });
    if let Mode::Manual(_) = mode {
        // The answer `create/3` waits for.
        progress(out, &ctx.shared.seen());
    }
    loop {
        match &mut mode {
            Mode::Auto => tokio::time::sleep(hint.unwrap_or(ctx.opts.poll_interval)).await,
            Mode::Manual(polls) => {
                if polls.recv().await.is_none() {
                    return Err(Error::cancelled("operation dropped before it finished").into());
                }
            }
        }
        match poll(ctx, &status_url, result_url.as_ref()).await? {
            Step::Running {
                next_url,
                retry_after,
            } => {
                hint = retry_after;
                if let Some(u) = next_url {
                    ctx.shared.update(|s| s.status_url = Some(u.to_string()));
                    status_url = u;
                }
                progress(out, &ctx.shared.seen());
            }
            Step::Fetch(url) => return fetch(ctx, &url).await,
            Step::Done(done) => return Ok(done),
        }
    }
}

/// One GET of the status URL, read as the two documents describe.
/// `result_url` is where the 202 said the result would be, if it did.
async fn poll(ctx: &Ctx, url: &Url, result_url: Option<&Url>) -> Result<Step, Failure> {
    let resp = ctx
        .send(ctx.get(url))
        .await
        .map_err(|e| Failure::transport("polling", url, &e))?;
    let code = resp.status();
    if resp.url() != url && code.is_success() {
        // reqwest followed a redirect, a 303 See Other as both documents
        // have it: the result is where it led.
        ctx.shared.update(|s| s.state = State::Succeeded);
        return read_all(ctx, resp).await.map(Step::Done);
    }
    if code == StatusCode::SEE_OTHER {
        ctx.shared.update(|s| s.state = State::Succeeded);
        return match headers::location(resp.headers(), resp.url()) {
            Some(Ok(u)) => Ok(Step::Fetch(u)),
            Some(Err(e)) => Err(Failure::new(
                Code::Url,
                format!("{url} answered 303 with an unusable Location: {e}"),
            )),
            None => Err(Failure::new(
                Code::Redirect,
                format!("{url} answered 303 without a Location"),
            )),
        };
    }
    if code.is_redirection() {
        return Err(Failure::new(
            Code::Redirect,
            format!("status URL {url} answered {code} and the client does not follow redirects"),
        ));
    }
    if code == StatusCode::NO_CONTENT {
        ctx.shared.update(|s| s.state = State::Succeeded);
        return read_all(ctx, resp).await.map(Step::Done);
    }
    let head = Head::of(&resp);
    let base = resp.url().clone();
    let body = read_doc(resp, url).await?;
    if code.is_client_error() || code.is_server_error() {
        let problem = status::problem_of(&body);
        let mut reason = format!("status URL {url} answered {code}");
        if let Some(d) = problem.as_ref().and_then(status::describe) {
            reason.push_str(": ");
            reason.push_str(&d);
        }
        return Err(Failure {
            err: Error::new(Code::OperationFailed, reason),
            problem,
            http_status: Some(code.as_u16()),
        });
    }
    let retry_after = headers::retry_after(&head.headers, SystemTime::now());
    let seen = |state: State, word: String, percent: Option<u8>| {
        ctx.shared.update(|s| {
            s.state = state;
            s.status = word;
            s.percent = percent;
            s.retry_after = retry_after.unwrap_or(ctx.opts.poll_interval);
        })
    };
    // A 202 that names a status URL moves the monitor there.
    let moved = || {
        if code == StatusCode::ACCEPTED {
            headers::status_url(&head.headers, &base).and_then(Result::ok)
        } else {
            None
        }
    };
    let doc = status::parse(&body);
    match doc {
        Some(doc) if doc.state.is_some() => {
            let (state, word) = doc.state.clone().unwrap_or((State::Running, String::new()));
            seen(state, word, doc.percent);
            match state {
                State::Pending | State::Running => Ok(Step::Running {
                    next_url: moved(),
                    retry_after,
                }),
                State::Succeeded => {
                    if let Some(raw) = doc.result {
                        return Ok(Step::Done(inline(head, raw)));
                    }
                    let at = if code == StatusCode::OK || code == StatusCode::CREATED {
                        headers::location(&head.headers, &base)
                    } else {
                        None
                    }
                    .or_else(|| {
                        doc.resource_location
                            .as_deref()
                            .map(|l| headers::resolve(&base, l))
                    })
                    .or_else(|| result_url.cloned().map(Ok));
                    match at {
                        Some(Ok(u)) => Ok(Step::Fetch(u)),
                        Some(Err(e)) => Err(Failure::new(
                            Code::Url,
                            format!("operation succeeded but its result URL is unusable: {e}"),
                        )),
                        // No result anywhere: the final status document is the answer.
                        None => Ok(Step::Done(Done {
                            head,
                            body: body.clone(),
                        })),
                    }
                }
                State::Failed => Err(Failure::terminal(
                    Code::OperationFailed,
                    "operation failed",
                    doc.problem,
                )),
                State::Canceled => Err(Failure::terminal(
                    Code::OperationCanceled,
                    "operation canceled by the server",
                    doc.problem,
                )),
            }
        }
        // An OData status monitor answers 202, often without a body, while
        // the work runs.
        _ if code == StatusCode::ACCEPTED => {
            seen(State::Running, String::new(), None);
            Ok(Step::Running {
                next_url: moved(),
                retry_after,
            })
        }
        // 200 or 201 with a Location and no status: done, the result is there.
        _ if code == StatusCode::OK || code == StatusCode::CREATED => {
            match headers::location(&head.headers, &base) {
                Some(Ok(u)) => {
                    ctx.shared.update(|s| s.state = State::Succeeded);
                    Ok(Step::Fetch(u))
                }
                Some(Err(e)) => Err(Failure::new(
                    Code::Url,
                    format!("{url} answered {code} with an unusable Location: {e}"),
                )),
                None => Err(not_a_status(url, code, &body)),
            }
        }
        _ => Err(not_a_status(url, code, &body)),
    }
}

fn not_a_status(url: &Url, code: StatusCode, body: &[u8]) -> Failure {
    let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    Failure::new(
        Code::Body,
        format!("status URL {url} answered {code} without an operation status: {shown:?}"),
    )
}

/// The inline `result` as a response: the status response's head with the
/// result's own length and type.
fn inline(mut head: Head, raw: &RawValue) -> Done {
    let body = Bytes::copy_from_slice(raw.get().as_bytes());
    for h in [CONTENT_LENGTH, CONTENT_ENCODING, TRANSFER_ENCODING] {
        head.headers.remove(h);
    }
    head.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    head.headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Done { head, body }
}

/// Fetches the result from where the finished operation said it is.
async fn fetch(ctx: &Ctx, url: &Url) -> Result<Done, Failure> {
    let resp = ctx
        .send(ctx.get(url))
        .await
        .map_err(|e| Failure::transport("fetching the result from", url, &e))?;
    read_all(ctx, resp).await
}

async fn read_all(ctx: &Ctx, resp: reqwest::Response) -> Result<Done, Failure> {
    let head = Head::of(&resp);
    let body = ctx.max_body.collect(resp).await.map_err(Failure::from)?;
    Ok(Done { head, body })
}

/// Reads a status document, refusing one over [`DOC_LIMIT`].
async fn read_doc(mut resp: reqwest::Response, url: &Url) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::transport("reading the status from", url, &e))?
    {
        if buf.len() + chunk.len() > DOC_LIMIT {
            return Err(Failure::new(
                Code::Body,
                format!("status document from {url} is larger than {DOC_LIMIT} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn progress(out: &mut Replier, seen: &Seen) {
    let seen = seen.clone();
    out.notify(move |env, r| {
        (
            atoms::erqwest_operation(),
            r,
            atoms::progress(),
            seen.encode(env, false),
        )
            .encode(env)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_result_gets_its_own_length_and_type() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(999));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        let head = Head {
            status: 200,
            version: reqwest::Version::HTTP_11,
            headers,
            url: "http://h/ops/1".into(),
            meta: None,
        };
        let doc = status::parse(br#"{"state":"succeeded","result":{"n": 1}}"#).unwrap();
        let done = inline(head, doc.result.unwrap());
        assert_eq!(&done.body[..], br#"{"n": 1}"#);
        assert_eq!(done.head.headers[CONTENT_LENGTH], "8");
        assert_eq!(done.head.headers[CONTENT_TYPE], "application/json");
        assert_eq!(done.head.headers["x-kept"], "yes");
    }

    #[test]
    fn terminal_failures_describe_the_problem() {
        let p =
            serde_json::json!({"title": "Quota exceeded", "detail": "try tomorrow", "status": 429});
        let f = Failure::terminal(Code::OperationFailed, "operation failed", Some(p));
        assert_eq!(f.err.code(), Code::OperationFailed);
        assert_eq!(
            f.err.reason(),
            "operation failed: Quota exceeded: try tomorrow"
        );
        let f = Failure::terminal(
            Code::OperationCanceled,
            "operation canceled by the server",
            None,
        );
        assert_eq!(f.err.reason(), "operation canceled by the server");
    }
}
