//! The tokio runtime, owned by an Erlang process through a NIF resource.
//!
//! The runtime lives on a thread of its own that waits for a stop signal,
//! then shuts the runtime down. Shutting down drops every request task; each
//! task's [`Replier`](crate::reply::Replier) then sends its final `error`,
//! so every in-flight request is answered before the owner hears
//! `erqwest_runtime_stopped`. If that thread ends any other way, the owner
//! hears `erqwest_runtime_failure`.

use std::sync::{Mutex, RwLock};
use std::time::Duration;

use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};
use tokio::sync::oneshot;

use crate::atoms;

/// How long shutdown waits for blocking work; request tasks themselves are
/// dropped at once.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Runtime {
    handle: RwLock<Option<tokio::runtime::Handle>>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

#[rustler::resource_impl]
impl rustler::Resource for Runtime {}

impl Runtime {
    /// The handle to spawn on, or `None` once stopped.
    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.handle.read().ok().and_then(|h| h.clone())
    }

    fn stop(&self) {
        if let Ok(mut h) = self.handle.write() {
            h.take();
        }
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping the sender wakes the runtime thread, which shuts down.
        self.stop();
    }
}

/// Runtime options: `#{worker_threads => pos_integer()}`.
struct RuntimeOpts {
    worker_threads: usize,
}

impl RuntimeOpts {
    fn decode(term: Term) -> NifResult<Self> {
        let mut opts = RuntimeOpts { worker_threads: 1 };
        for (k, v) in term.decode::<rustler::MapIterator>()? {
            if k.decode::<rustler::Atom>()? == atoms::worker_threads() {
                let n: usize = crate::term::decode_int(v)?;
                if n == 0 || n > 1024 {
                    return Err(rustler::Error::BadArg);
                }
                opts.worker_threads = n;
            } else {
                return Err(rustler::Error::BadArg);
            }
        }
        Ok(opts)
    }
}

fn start(pid: LocalPid, opts: RuntimeOpts) -> NifResult<ResourceArc<Runtime>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.worker_threads)
        .thread_name("erqwest-worker")
        .on_thread_start(batch_scheduling)
        .enable_all()
        .build()
        .map_err(|e| rustler::Error::Term(Box::new(format!("runtime: {e}"))))?;
    let (tx, rx) = oneshot::channel();
    let resource = ResourceArc::new(Runtime {
        handle: RwLock::new(Some(rt.handle().clone())),
        stop: Mutex::new(Some(tx)),
    });
    std::thread::Builder::new()
        .name("erqwest-runtime".into())
        .spawn(move || {
            let clean = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                rt.block_on(async {
                    let _ = rx.await;
                });
                rt.shutdown_timeout(SHUTDOWN_GRACE);
            }))
            .is_ok();
            let mut env = OwnedEnv::new();
            let _ = env.send_and_clear(&pid, |e| {
                if clean {
                    atoms::erqwest_runtime_stopped().encode(e)
                } else {
                    atoms::erqwest_runtime_failure().encode(e)
                }
            });
        })
        .map_err(|e| rustler::Error::Term(Box::new(format!("runtime thread: {e}"))))?;
    Ok(resource)
}

/// Puts the calling thread under Linux's `SCHED_BATCH` policy: its
/// wake-ups then do not preempt the thread that woke it. Without this, a
/// request's NIF call could be preempted by the very worker it woke
/// (bench/README.md: p99 of an 8 MB `req` from 2.4 ms to 0.06 ms). Best
/// effort: elsewhere, or if refused, nothing changes.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on the current thread (pid 0) with a valid,
        // initialised parameter struct.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// Starts a runtime with one worker thread; the owner `Pid` is told when it stops.
#[rustler::nif(name = "start_runtime", schedule = "DirtyIo")]
fn start_runtime_1(pid: LocalPid) -> NifResult<ResourceArc<Runtime>> {
    start(pid, RuntimeOpts { worker_threads: 1 })
}

/// Starts a runtime with options (`worker_threads`).
#[rustler::nif(name = "start_runtime", schedule = "DirtyIo")]
fn start_runtime_2(pid: LocalPid, opts: Term) -> NifResult<ResourceArc<Runtime>> {
    start(pid, RuntimeOpts::decode(opts)?)
}

/// Stops a runtime: in-flight requests get their final `error`, and later
/// requests on clients of this runtime raise `bad_runtime`.
#[rustler::nif]
fn stop_runtime(env: Env, runtime: ResourceArc<Runtime>) -> Term {
    runtime.stop();
    atoms::ok().encode(env)
}
