//! Long-running operations: a request answered `202 Accepted`, followed
//! to completion inside the runtime.
//!
//! [`start_operation`] decodes the options on the scheduler, makes an
//! [`Operation`] handle and spawns one task ([`task::drive`]). The task
//! sends the request; on 202 it polls the status URL on tokio timers (no
//! Erlang process, no thread per operation), telling the caller after each
//! poll with `{erqwest_operation, Ref, progress, Map}`, and ends with the
//! one final `{erqwest_response, Ref, reply | error, _}` of every request.
//!
//! In manual mode the task waits for [`operation_poll`] instead of a
//! timer, for `erqwest_operation:poll/1` loops.
//!
//! Modules: [`opts`] (options), [`status`] (status documents),
//! [`headers`] (status URL and `Retry-After`), [`json`] (problems as
//! terms), [`task`] (the poll loop).

mod headers;
mod json;
mod opts;
mod status;
mod task;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustler::{
    Atom, Encoder, Env, Error as NifError, LocalPid, Monitor, NifResult, ResourceArc, Term,
};
use tokio::sync::mpsc;

use crate::atoms;
use crate::client::Client;
use crate::live::Live;
use crate::reply::{Progress, Replier};
use opts::{OpOpts, Spec};
use task::{Ctx, Mode, Shared};

/// Operation tasks alive, for leak checks in tests.
static LIVE_OPERATIONS: AtomicUsize = AtomicUsize::new(0);

/// The Erlang side of an operation.
pub struct Operation {
    shared: Arc<Shared>,
    /// Manual mode only: each message asks for one poll. Dropping the
    /// handle closes it, which ends a manual operation (nobody can poll).
    /// An automatic one runs on, as a request does.
    polls: Option<mpsc::UnboundedSender<()>>,
    progress: Arc<Progress>,
}

#[rustler::resource_impl]
impl rustler::Resource for Operation {
    const IMPLEMENTS_DOWN: bool = true;

    /// The process receiving the messages died: stop polling for nobody.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _mon: Monitor) {
        self.shared.cancel.notify_one();
    }
}

#[allow(clippy::too_many_arguments)]
fn start<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    req: Term<'a>,
    op: Term<'a>,
    mode: Atom,
) -> NifResult<ResourceArc<Operation>> {
    let http = client.get().ok_or(NifError::BadArg)?;
    let spec = Spec::decode(req, client.compose())?;
    let opts = OpOpts::decode(op)?;
    let manual = match mode {
        m if m == atoms::auto() => false,
        m if m == atoms::manual() => true,
        _ => return Err(NifError::BadArg),
    };
    let rt = client
        .runtime()
        .handle()
        .ok_or(NifError::RaiseAtom("bad_runtime"))?;
    let shared = Arc::new(Shared::new(opts.poll_interval));
    let (polls, mode) = if manual {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Mode::Manual(rx))
    } else {
        (None, Mode::Auto)
    };
    let progress = Arc::new(Progress::default());
    let handle = ResourceArc::new(Operation {
        shared: shared.clone(),
        polls,
        progress: progress.clone(),
    });
    if env.monitor(&handle, &pid).is_none() {
        // Already dead: the task starts cancelled and ends at once.
        shared.cancel.notify_one();
    }
    let out = Replier::new(pid, reference, progress).decode_with(spec.decoding);
    let ctx = Ctx {
        http,
        opts,
        timeout: spec.timeout,
        shared,
        max_body: client.max_body(),
    };
    let live = Live::new(&LIVE_OPERATIONS);
    rt.spawn(async move {
        let _live = live;
        task::drive(ctx, spec, mode, out).await;
    });
    Ok(handle)
}

/// Starts an operation: `erqwest_operation:start/5` (`auto`) or
/// `create/3` (`manual`).
#[rustler::nif]
fn start_operation<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    req: Term<'a>,
    op: Term<'a>,
    mode: Atom,
) -> NifResult<ResourceArc<Operation>> {
    start(env, client, pid, reference, req, op, mode)
}

/// The same on a dirty scheduler, for bodies given as lists and long
/// header lists (decoding them takes time in proportion to their size).
#[rustler::nif(schedule = "DirtyCpu")]
fn start_operation_dirty<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term<'a>,
    req: Term<'a>,
    op: Term<'a>,
    mode: Atom,
) -> NifResult<ResourceArc<Operation>> {
    start(env, client, pid, reference, req, op, mode)
}

/// Asks a manual operation for one poll: `ok` (a `progress` or the final
/// message follows) or `finished` (the final message was already sent).
/// `badarg` for an automatic operation.
#[rustler::nif]
fn operation_poll(op: ResourceArc<Operation>) -> NifResult<Atom> {
    let polls = op.polls.as_ref().ok_or(NifError::BadArg)?;
    if op.progress.is_delivered() {
        return Ok(atoms::finished());
    }
    // A closed channel means the task already ended; its final message
    // is on its way.
    let _ = polls.send(());
    Ok(atoms::ok())
}

/// Cancels: `ok` when a final message is still to come (`error` with code
/// `cancelled`, or whatever was already on its way), `finished` when it
/// was already delivered.
#[rustler::nif]
fn operation_cancel(op: ResourceArc<Operation>) -> Atom {
    if op.progress.is_delivered() {
        return atoms::finished();
    }
    op.shared.cancel.notify_one();
    atoms::ok()
}

/// What the last poll said: `#{state, status, percent_complete,
/// retry_after, status_url}`.
#[rustler::nif]
fn operation_info<'a>(env: Env<'a>, op: ResourceArc<Operation>) -> Term<'a> {
    op.shared.seen().encode(env, true)
}

/// How many operation tasks are alive, for leak checks.
#[rustler::nif]
fn live_operations(env: Env) -> Term {
    LIVE_OPERATIONS.load(Ordering::Relaxed).encode(env)
}
