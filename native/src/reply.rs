//! Messages from a request task to the Erlang process that asked.
//!
//! Every message is `{erqwest_response, Ref, ...}`. A [`Replier`] sends at
//! most one final message (`reply` of a complete body, `fin` or `error`);
//! if it is dropped before that (the runtime shut down, the task panicked)
//! its destructor sends the final `error`, so a caller is never left
//! waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Encoder, Env, LocalPid, ResourceArc, Term};

use crate::atoms;
use crate::error::{Code, Error};
use crate::term::{encode_headers, encode_version, EncodeBinary};

/// Bodies at least this large are handed to Erlang as resource binaries
/// that point into reqwest's buffer, instead of being copied.
const ZERO_COPY_THRESHOLD: usize = 64 * 1024;

/// What the NIF functions on a handle may know of the task's progress. Each
/// flag is set only after the message it stands for was sent, so that a
/// caller told `finished` can rely on finding that message in its mailbox
/// (or on having consumed it already).
#[derive(Default)]
pub struct Progress {
    /// The final message is being sent (set just before `enif_send`).
    sending_final: AtomicBool,
    /// The final message was sent.
    delivered: AtomicBool,
    /// A reply came while the body was still being sent, and was sent on.
    upload_closed: AtomicBool,
}

impl Progress {
    /// Whether the final message was sent. While it is being sent this
    /// waits for the send to return: the caller may already have received
    /// it, and answering "still to come" would leave it waiting for a
    /// message it holds (a sync `cancel` after `finish_send`, a `read` after
    /// the last chunk). The wait is the tail of one `enif_send` on another
    /// thread.
    pub fn is_delivered(&self) -> bool {
        if self.delivered.load(Ordering::Acquire) {
            return true;
        }
        if !self.sending_final.load(Ordering::Acquire) {
            return false;
        }
        while !self.delivered.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        true
    }

    pub fn upload_closed(&self) -> bool {
        self.upload_closed.load(Ordering::Acquire) || self.is_delivered()
    }
}

/// The status line and headers of a response, taken apart from its body.
pub struct Head {
    pub status: u16,
    pub version: reqwest::Version,
    pub headers: reqwest::header::HeaderMap,
    pub url: String,
}

impl Head {
    /// Takes the head out of a response whose body is still to be read
    /// (the headers are moved, not copied).
    pub fn take(resp: &mut reqwest::Response) -> Self {
        Head {
            status: resp.status().as_u16(),
            version: resp.version(),
            headers: std::mem::take(resp.headers_mut()),
            url: resp.url().as_str().to_owned(),
        }
    }
}

/// A response body held by Erlang as a resource binary.
pub struct BodyBytes(Bytes);

#[rustler::resource_impl]
impl rustler::Resource for BodyBytes {}

pub struct Replier {
    pid: LocalPid,
    ref_env: OwnedEnv,
    reference: SavedTerm,
    msg_env: OwnedEnv,
    progress: Arc<Progress>,
    done: bool,
    /// The upload was cut short by the reply about to be sent.
    upload_cut: bool,
}

impl Replier {
    /// Copies `reference` (any term) so that it outlives the NIF call.
    pub fn new(pid: LocalPid, reference: Term, progress: Arc<Progress>) -> Self {
        let ref_env = OwnedEnv::new();
        let reference = ref_env.save(reference);
        Replier {
            pid,
            ref_env,
            reference,
            msg_env: OwnedEnv::new(),
            progress,
            done: false,
            upload_cut: false,
        }
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
        self.send(|env, r| {
            let resp = encode_resp(env, head, body.as_ref());
            (atoms::erqwest_response(), r, atoms::reply(), resp).encode(env)
        });
        if self.upload_cut {
            self.progress.upload_closed.store(true, Ordering::Release);
        }
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
        self.send(|env, r| (atoms::erqwest_response(), r, atoms::error(), err).encode(env));
    }

    fn final_sent(&self) {
        if self.done {
            self.progress.delivered.store(true, Ordering::Release);
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.progress.sending_final.store(true, Ordering::Release);
    }

    fn send<F>(&mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    {
        let ref_env = &self.ref_env;
        let reference = &self.reference;
        if rustler::thread::is_scheduler_thread() {
            // Only when a task is dropped on a scheduler (a spawn that lost a
            // race with runtime shutdown): enif_send needs a non-VM thread here.
            let mut env = OwnedEnv::new();
            let saved = env.run(|e| env.save(with_ref(e, ref_env, reference, build)));
            let pid = self.pid;
            // `delivered` is set once the message is really out, not before.
            let progress = self.done.then(|| self.progress.clone());
            let spawned = std::thread::Builder::new()
                .name("erqwest-reply".into())
                .spawn(move || {
                    let _ = env.send_and_clear(&pid, |e| saved.load(e));
                    if let Some(p) = progress {
                        p.delivered.store(true, Ordering::Release);
                    }
                });
            if spawned.is_err() {
                // Nothing will be sent: nobody may wait for it either.
                self.final_sent();
            }
        } else {
            // A dead recipient is not an error: there is nobody to tell.
            let _ = self
                .msg_env
                .send_and_clear(&self.pid, |env| with_ref(env, ref_env, reference, build));
            self.final_sent();
        }
    }
}

/// Builds a message in `env` around a copy of the caller's reference.
fn with_ref<'a, F>(env: Env<'a>, ref_env: &OwnedEnv, reference: &SavedTerm, build: F) -> Term<'a>
where
    F: for<'b> FnOnce(Env<'b>, Term<'b>) -> Term<'b>,
{
    let r = ref_env.run(|re| reference.load(re).in_env(env));
    build(env, r)
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

fn encode_resp<'a>(env: Env<'a>, head: &Head, body: Option<&Bytes>) -> Term<'a> {
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
        values.push(encode_body(env, b));
    }
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| atoms::error().encode(env))
}
