//! A scheduler-engine request that found its client's limits full. It
//! waits in the client's queues (`resilience/stepwise.rs`, the runtime's
//! requests wait in the same ones) in a small runtime task, and its
//! caller waits in `receive`, holding no scheduler, for the message that
//! says it may go on: erqwest_direct's `{select, _, Ref, _}`, sent once,
//! for the room, for the `queue_timeout`, or for a runtime that stopped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::direct::{Flow, Gate, Policy, Template, Transport};
use crate::error::Error;
use crate::max_body::MaxBody;
use crate::resilience::stepwise::{Queue, Stepwise};
use crate::resilience::QueueTimedOut;

/// What the request needs to go on once in.
pub(super) struct Start {
    pub(super) t: Arc<Transport>,
    pub(super) http: reqwest::Client,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) gate: Arc<Gate>,
    pub(super) template: Template,
    pub(super) timeout: Option<Duration>,
    pub(super) max_body: MaxBody,
}

/// The queued request. Dropping it (its caller died) stops the task,
/// which leaves the queue or gives back the room it got.
pub(super) struct Queued {
    /// Boxed: a `Call` holds this or a running request, in one enum.
    start: Option<Box<Start>>,
    result: oneshot::Receiver<Result<Stepwise, QueueTimedOut>>,
    task: tokio::task::AbortHandle,
}

/// What a wake brought.
pub(super) enum Woken {
    /// In: the request starts (its `timeout` from now, as on the runtime,
    /// where it bounds the attempts and not the queue).
    Go(Box<Flow>),
    TimedOut(QueueTimedOut),
    Failed(Error),
    /// Nothing yet (a stray wake): wait on.
    Still(Queued),
}

impl Queued {
    pub(super) fn spawn(queue: Queue, start: Start) -> Self {
        let (tx, rx) = oneshot::channel();
        let tell = Tell {
            tx: Some(tx),
            gate: start.gate.clone(),
        };
        let task = start
            .rt
            .spawn(async move { tell.send(queue.wait().await) })
            .abort_handle();
        Queued {
            start: Some(Box::new(start)),
            result: rx,
            task,
        }
    }

    pub(super) fn woken(mut self) -> Woken {
        use oneshot::error::TryRecvError;
        match self.result.try_recv() {
            Ok(Ok(stepwise)) => match self.start.take() {
                Some(s) => {
                    let s = *s;
                    let policy = Policy {
                        timeout: s.timeout,
                        max_body: s.max_body,
                        stepwise,
                    };
                    Woken::Go(Box::new(Flow::new(
                        s.t, s.http, s.rt, s.gate, s.template, policy,
                    )))
                }
                None => Woken::Failed(gone()),
            },
            Ok(Err(e)) => Woken::TimedOut(e),
            Err(TryRecvError::Empty) => Woken::Still(self),
            // The runtime dropped the task: it is shutting down.
            Err(TryRecvError::Closed) => Woken::Failed(gone()),
        }
    }
}

/// What the runtime engine answers for a request its stopped runtime
/// dropped.
fn gone() -> Error {
    Error::cancelled("runtime stopped")
}

/// The task's one message to the caller: sent when the wait ends, or
/// when the task is dropped unfinished (a runtime that stops drops its
/// tasks), so that the caller, which waits without a deadline, never
/// waits for ever. None after the caller closed the gate.
struct Tell {
    tx: Option<oneshot::Sender<Result<Stepwise, QueueTimedOut>>>,
    gate: Arc<Gate>,
}

impl Tell {
    fn send(mut self, r: Result<Stepwise, QueueTimedOut>) {
        if let Some(tx) = self.tx.take() {
            // A caller gone drops the answer, and with it the room.
            let _ = tx.send(r);
        }
    }
}

impl Drop for Tell {
    fn drop(&mut self) {
        // The result (or the channel closed) first: the poll the wake
        // brings finds it.
        drop(self.tx.take());
        self.gate.wake();
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.task.abort();
        // Nothing reaches the process after this (a wake under way is
        // in its mailbox already: erqwest_direct flushes it).
        if let Some(s) = &self.start {
            s.gate.close();
        }
    }
}
