//! Messages from a request task to the Erlang process that asked.
//!
//! Every message is `{erqwest_response, Ref, ...}` (event streams use
//! their own tag, see [`Replier::with_tag`]). A [`Replier`] sends at
//! most one final message (`reply` of a complete body, `fin` or `error`);
//! if it is dropped before that (the runtime shut down, the task panicked)
//! its destructor sends the final `error`, so a caller is never left
//! waiting.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustler::env::OwnedEnv;
use rustler::{Atom, Encoder, Env, LocalPid, OwnedBinary, ResourceArc, Term};

use crate::atoms;
use crate::compose::Decoding;
use crate::error::{Code, Error};
use crate::term::{encode_headers, encode_version, EncodeBinary};

/// Bodies at least this large are handed to Erlang as resource binaries
/// that point into reqwest's buffer, instead of being copied.
const ZERO_COPY_THRESHOLD: usize = 64 * 1024;

/// What the NIF functions on a handle may know of the task's progress.
///
/// A flag is set under the lock together with sending the message it
/// stands for, and read under the same lock: a caller told `finished`
/// can rely on that message being in its mailbox or already consumed,
/// never still on its way.
#[derive(Default)]
pub struct Progress {
    flags: Mutex<Flags>,
}

#[derive(Default, Clone, Copy)]
struct Flags {
    /// The final message was sent.
    delivered: bool,
    /// A reply came while the body was still being sent, and was sent on.
    upload_closed: bool,
}

impl Progress {
    fn flags(&self) -> Flags {
        match self.flags.lock() {
            Ok(f) => *f,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub fn is_delivered(&self) -> bool {
        self.flags().delivered
    }

    pub fn upload_closed(&self) -> bool {
        let f = self.flags();
        f.upload_closed || f.delivered
    }
}

/// The status line and headers of a response, taken apart from its body.
pub struct Head {
    pub status: u16,
    pub version: reqwest::Version,
    pub headers: reqwest::header::HeaderMap,
    pub url: String,
    /// `attempts` and `timings`, when the request asked for them.
    pub meta: Option<Box<crate::resilience::meta::Meta>>,
}

impl Head {
    /// A copy of a response's head, for when its headers are still needed.
    pub fn of(resp: &reqwest::Response) -> Self {
        Head {
            status: resp.status().as_u16(),
            version: resp.version(),
            headers: resp.headers().clone(),
            url: resp.url().as_str().to_owned(),
            meta: None,
        }
    }

    /// Takes the head out of a response whose body is still to be read
    /// (the headers are moved, not copied).
    pub fn take(resp: &mut reqwest::Response) -> Self {
        Head {
            status: resp.status().as_u16(),
            version: resp.version(),
            headers: std::mem::take(resp.headers_mut()),
            url: resp.url().as_str().to_owned(),
            meta: None,
        }
    }
}

/// A response body held by Erlang as a resource binary.
pub struct BodyBytes(Bytes);

#[rustler::resource_impl]
impl rustler::Resource for BodyBytes {}

pub struct Replier {
    pid: LocalPid,
    /// The first element of every message.
    tag: Atom,
    /// The caller's reference (any term) in the external term format:
    /// lighter to keep than an environment of its own, and decoded
    /// straight into each message.
    reference: OwnedBinary,
    progress: Arc<Progress>,
    done: bool,
    /// The upload was cut short by the reply about to be sent.
    upload_cut: bool,
    /// Whether a complete body is decoded from JSON (compose/decode.rs).
    decoding: Decoding,
}

thread_local! {
    /// Messages are built in one environment per thread, which each send
    /// clears: an environment per request was another VM allocation and
    /// about 1 KB held for the request's life.
    static MSG_ENV: RefCell<OwnedEnv> = RefCell::new(OwnedEnv::new());
}

impl Replier {
    /// Copies `reference` so that it outlives the NIF call.
    pub fn new(pid: LocalPid, reference: Term, progress: Arc<Progress>) -> Self {
        Self::with_tag(pid, reference, progress, atoms::erqwest_response())
    }

    /// The same, with `tag` instead of `erqwest_response` as the first
    /// element of each message (the final `error` of the destructor too).
    pub fn with_tag(pid: LocalPid, reference: Term, progress: Arc<Progress>, tag: Atom) -> Self {
        Replier {
            pid,
            tag,
            reference: reference.to_binary(),
            progress,
            done: false,
            upload_cut: false,
            decoding: Decoding::default(),
        }
    }

    /// Decodes a complete response body as `decoding` says.
    pub fn decode_with(mut self, decoding: Decoding) -> Self {
        self.decoding = decoding;
        self
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next reply is an early one: after it the request takes no more body.
    pub fn close_upload(&mut self) {
        self.upload_cut = true;
    }

    pub fn next(&mut self) {
        self.send(|env, r| (atoms::erqwest_response(), r, atoms::next()).encode(env));
    }

    /// The response head, with the body when it was read in full. Final
    /// unless the body is streamed.
    pub fn reply(&mut self, head: &Head, body: Option<Bytes>) {
        if body.is_some() {
            self.finish();
        }
        let decoding = self.decoding;
        self.send(
            |env, r| match encode_resp(env, head, body.as_ref(), decoding) {
                Ok(resp) => (atoms::erqwest_response(), r, atoms::reply(), resp).encode(env),
                Err(err) => (atoms::erqwest_response(), r, atoms::error(), err).encode(env),
            },
        );
    }

    pub fn chunk(&mut self, data: Bytes) {
        self.send(|env, r| {
            let bin = encode_body(env, &data);
            (atoms::erqwest_response(), r, atoms::chunk(), bin).encode(env)
        });
    }

    pub fn fin(&mut self, data: Bytes) {
        self.finish();
        self.send(|env, r| {
            let bin = encode_body(env, &data);
            (atoms::erqwest_response(), r, atoms::fin(), bin).encode(env)
        });
    }

    pub fn error(&mut self, err: &Error) {
        self.finish();
        let tag = self.tag;
        self.send(|env, r| (tag, r, atoms::error(), err).encode(env));
    }

    /// A message that is not final, of a shape the caller builds around
    /// the reference (an operation's `{erqwest_operation, Ref, progress, _}`).
    pub fn notify<F>(&mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        self.send(build);
    }

    /// A message that is not final, built in `env`, which already holds
    /// some of its terms (an event list made on another thread).
    pub fn notify_in<F>(&mut self, mut env: OwnedEnv, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        self.send_in(&mut env, build);
    }

    /// The final `error`, with an `err()` map the caller builds because it
    /// has more keys than `code` and `reason` (an operation's `problem`).
    pub fn error_map<F>(&mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>) -> Term<'a>,
    {
        self.finish();
        let tag = self.tag;
        self.send(|env, r| (tag, r, atoms::error(), build(env)).encode(env));
    }

    /// A final message of a shape the caller builds around the reference
    /// (an event stream's `{erqwest_events, Ref, closed, Reason}`).
    pub fn final_message<F>(&mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        self.finish();
        self.send(build);
    }

    fn finish(&mut self) {
        self.done = true;
    }

    fn send<F>(&mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        if rustler::thread::is_scheduler_thread() {
            // Only when a task is dropped on a scheduler (a spawn that lost a
            // race with runtime shutdown): enif_send needs a non-VM thread here.
            let mut env = OwnedEnv::new();
            let saved = env.run(|e| env.save(self.message(e, build)));
            let pid = self.pid;
            self.mark_sent();
            let _ = std::thread::Builder::new()
                .name("erqwest-reply".into())
                .spawn(move || {
                    let _ = env.send_and_clear(&pid, |e| saved.load(e));
                });
            return;
        }
        let mut build = Some(build);
        // The thread's environment, unless it is gone (thread exit) or in
        // use (cannot happen: sending does not re-enter).
        let _ = MSG_ENV.try_with(|cell| {
            if let (Ok(mut env), Some(b)) = (cell.try_borrow_mut(), build.take()) {
                self.send_in(&mut env, b);
            }
        });
        if let Some(b) = build.take() {
            self.send_in(&mut OwnedEnv::new(), b);
        }
    }

    fn send_in<F>(&self, env: &mut OwnedEnv, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        let marks = self.done || self.upload_cut;
        if !marks {
            // No flag to set: built straight into the message environment,
            // without the copy that `save` makes (one per event of a stream).
            let _ = env.send_and_clear(&self.pid, |e| self.message(e, build));
            return;
        }
        // Built first, so that the lock below is held only for the send.
        let msg = env.run(|e| env.save(self.message(e, build)));
        let guard = if marks {
            Some(self.progress.flags.lock())
        } else {
            None
        };
        // A dead recipient is not an error: there is nobody to tell.
        let _ = env.send_and_clear(&self.pid, |e| msg.load(e));
        if let Some(Ok(mut flags)) = guard {
            flags.delivered |= self.done;
            flags.upload_closed |= self.upload_cut;
        }
    }

    /// Builds a message in `env` around the caller's reference.
    fn message<'a, F>(&self, env: Env<'a>, build: F) -> Term<'a>
    where
        F: for<'b> FnOnce(Env<'b>, Term<'b>) -> Term<'b>,
    {
        // Safe: the bytes are term_to_binary's own output.
        let r = match unsafe { env.binary_to_term_trusted(self.reference.as_slice()) } {
            Some((t, _)) => t,
            None => atoms::undefined().encode(env),
        };
        build(env, r)
    }

    /// Sets the flags of a message that another thread will send.
    fn mark_sent(&self) {
        if let Ok(mut flags) = self.progress.flags.lock() {
            flags.delivered |= self.done;
            flags.upload_closed |= self.upload_cut;
        }
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if !self.done {
            let err = if std::thread::panicking() {
                Error::new(Code::Unknown, "internal error: request task panicked")
            } else {
                Error::cancelled("runtime stopped")
            };
            self.error(&err);
        }
    }
}

fn encode_body<'a>(env: Env<'a>, data: &Bytes) -> Term<'a> {
    if data.len() < ZERO_COPY_THRESHOLD {
        return data.as_ref().encode_binary(env);
    }
    let res = ResourceArc::new(BodyBytes(data.clone()));
    res.make_binary(env, |b| b.0.as_ref()).to_term(env)
}

/// The `resp()` map, or the `err()` of a body that does not decode.
pub(crate) fn encode_resp<'a>(
    env: Env<'a>,
    head: &Head,
    body: Option<&Bytes>,
    decoding: Decoding,
) -> Result<Term<'a>, Term<'a>> {
    let mut keys = vec![
        atoms::status().encode(env),
        atoms::headers().encode(env),
        atoms::version().encode(env),
        atoms::url().encode(env),
    ];
    let mut values = vec![
        head.status.encode(env),
        encode_headers(env, &head.headers),
        encode_version(env, head.version),
        head.url.as_bytes().encode_binary(env),
    ];
    if let Some(b) = body {
        keys.push(atoms::body().encode(env));
        values.push(if decoding.applies(head, b) {
            decoding.body(env, head, b, || encode_body(env, b))?
        } else {
            encode_body(env, b)
        });
    }
    if let Some(m) = &head.meta {
        m.encode_into(env, &mut keys, &mut values);
    }
    Ok(Term::map_from_term_arrays(env, &keys, &values)
        .unwrap_or_else(|_| atoms::error().encode(env)))
}
