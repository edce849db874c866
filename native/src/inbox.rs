//! Commands from the NIF functions on a handle to its request task.
//!
//! Most requests never get a command: a body read in full only ever hears
//! `Cancel`, and usually not even that. So the queue is a `VecDeque`
//! under a mutex (no allocation until something is queued) with a
//! `Notify` to wake the task; creating a tokio channel instead allocated a
//! block of 32 slots (about 2 KB) for every request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// What a NIF call on the handle asks of the task.
pub enum Command {
    Send(Bytes),
    FinishSend,
    Read {
        length: usize,
        period: Option<Duration>,
    },
    Cancel,
    /// More credit for an event stream (`erqwest_events:active/2`).
    Active(crate::events::credit::Credit),
}

struct Inbox {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Command>,
    /// The sender is gone: nothing more will be queued.
    closed: bool,
}

impl Inbox {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned one is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new queue: the handle's end and the task's end.
pub fn inbox() -> (Sender, Receiver) {
    let inbox = Arc::new(Inbox {
        state: Mutex::new(State::default()),
        wake: Notify::new(),
    });
    (
        Sender(inbox.clone()),
        Receiver {
            inbox,
            closed: false,
        },
    )
}

/// The handle's end. Dropping it tells the task that nobody will send or
/// read any more.
pub struct Sender(Arc<Inbox>);

impl Sender {
    pub fn send(&self, cmd: Command) {
        self.0.state().queue.push_back(cmd);
        // A single waiter: `notify_one` keeps the wake-up for a task that
        // is not waiting yet.
        self.0.wake.notify_one();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.state().closed = true;
        self.0.wake.notify_one();
    }
}

/// The task's end.
pub struct Receiver {
    inbox: Arc<Inbox>,
    closed: bool,
}

impl Receiver {
    /// The next command, or `None` once the sender is gone and the queue
    /// is empty. Never resolves again after `None`, so it can stay in a
    /// `select!`; dropping it while it waits loses nothing (the queue is
    /// looked at before every wait).
    pub async fn recv(&mut self) -> Option<Command> {
        if self.closed {
            return std::future::pending().await;
        }
        loop {
            {
                let mut state = self.inbox.state();
                if let Some(cmd) = state.queue.pop_front() {
                    return Some(cmd);
                }
                if state.closed {
                    self.closed = true;
                    return None;
                }
            }
            self.inbox.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn commands_arrive_in_order_then_none_after_the_sender_is_dropped() {
        let (tx, mut rx) = inbox();
        tx.send(Command::FinishSend);
        tx.send(Command::Cancel);
        drop(tx);
        let mut seen = Vec::new();
        loop {
            match poll_once(pin!(rx.recv())) {
                Poll::Ready(Some(Command::FinishSend)) => seen.push("finish"),
                Poll::Ready(Some(Command::Cancel)) => seen.push("cancel"),
                Poll::Ready(Some(_)) => seen.push("other"),
                Poll::Ready(None) => break,
                Poll::Pending => panic!("a queued command or the close was missed"),
            }
        }
        assert_eq!(seen, ["finish", "cancel"]);
        // Closed stays pending for ever after.
        assert!(poll_once(pin!(rx.recv())).is_pending());
    }

    #[test]
    fn a_wait_dropped_before_its_wake_up_loses_nothing() {
        let (tx, mut rx) = inbox();
        {
            let mut waiting = pin!(rx.recv());
            assert!(poll_once(waiting.as_mut()).is_pending());
            tx.send(Command::Cancel);
            // Dropped here without being polled again, as `select!` does
            // when another branch wins.
        }
        assert!(matches!(
            poll_once(pin!(rx.recv())),
            Poll::Ready(Some(Command::Cancel))
        ));
        assert!(poll_once(pin!(rx.recv())).is_pending());
    }
}
