//! `batch => true` on a fast stream: a list's terms are built on a thread
//! of tokio's blocking pool while the stream's task goes on reading and
//! parsing what follows.
//!
//! For small events the task's time splits about evenly between parsing
//! and making terms (maps, binaries, JSON), and the runtime's other
//! threads sit idle during a stream (bench/README.md, event streams), so
//! overlapping the two nearly halves the time per event. The task still
//! sends every message itself, in order: a list being built is waited for
//! before anything else goes out, and dropped unsent when the stream is
//! cancelled (as queued events are).

use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{Atom, Env, Term};
use tokio::task::{JoinError, JoinHandle};

use super::{batch, sse};

/// Lists shorter than this are built in the task: for them the hand-off
/// would cost more than it saves, and it would add its latency to slow
/// streams, whose lists are short.
pub(super) const MIN_EVENTS: usize = 256;

/// Events taken from the queue for one `events` list.
pub(super) enum Batch {
    Sse { events: Vec<sse::Event>, json: bool },
    Lines { lines: Vec<Vec<u8>>, json: bool },
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        match self {
            Batch::Sse { events, .. } => events.len(),
            Batch::Lines { lines, .. } => lines.len(),
        }
    }

    /// The list of the events' terms.
    pub(super) fn encode<'a>(&self, env: Env<'a>, null: Atom) -> Term<'a> {
        match self {
            Batch::Sse { events, json } => batch::sse_list(env, events, *json, null),
            Batch::Lines { lines, json } => batch::lines_list(env, lines, *json, null),
        }
    }
}

/// A list in the making, and whether `passive` is to follow it.
pub(super) struct Pending {
    handle: JoinHandle<Built>,
    pub(super) passive: bool,
}

/// The list, in an environment of its own, ready to be sent.
pub(super) struct Built {
    pub(super) env: OwnedEnv,
    pub(super) list: SavedTerm,
}

/// Starts building `batch`'s list on the blocking pool.
pub(super) fn spawn(batch: Batch, null: Atom, passive: bool) -> Pending {
    let handle = tokio::task::spawn_blocking(move || {
        let env = OwnedEnv::new();
        let list = env.run(|e| env.save(batch.encode(e, null)));
        Built { env, list }
    });
    Pending { handle, passive }
}

impl Pending {
    /// Waits for the list.
    pub(super) async fn finish(self) -> Result<Built, JoinError> {
        self.handle.await
    }
}

/// Waits for the list being built; never resolves when there is none, so
/// that it can stay in a `select!`.
pub(super) async fn join(pending: &mut Option<Pending>) -> Result<Built, JoinError> {
    match pending {
        Some(p) => (&mut p.handle).await,
        None => std::future::pending().await,
    }
}
