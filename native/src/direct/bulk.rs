//! The rest of a large body, read by a runtime task instead of NIF calls.
//!
//! The direct path pays off for small exchanges, where a reply read
//! inside the NIF call saves the trips between a scheduler and a tokio
//! thread. A body over a megabyte gains nothing from it: read on the
//! scheduler it took one call of up to 128 KB or 200 µs after another
//! (about 2,200 for 256 MB), and those calls were the path's longest.
//! Here the same `Exchange` goes on in a task that waits on the socket
//! with tokio's reactor, reads without the calls' limits, and answers by
//! message as `tasks::complete` does. The connection goes back to the
//! pool from the task when the body is in.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::unix::AsyncFd;

use super::exchange::{Exchange, Step};
use super::fd::{Fd, Interest};
use super::received::Collected;
use super::tasks::{self, Gate};
use super::Accept;
use crate::error::{Code, Error};
use crate::max_body::MaxBody;
use crate::reply::Head;
use crate::resilience::stepwise::Finish;

/// Reads the rest of `ex`'s body on `rt` and answers `gate` with the
/// whole response (decoded as reqwest would with `accept`), with the
/// extra keys of `finish`.
pub(crate) fn spawn(
    rt: &tokio::runtime::Handle,
    gate: Arc<Gate>,
    accept: Accept,
    ex: Exchange,
    max_body: MaxBody,
    finish: Finish,
) -> tokio::task::AbortHandle {
    let under_timeout = ex.under_timeout();
    rt.spawn(async move {
        let r = match read_rest(ex).await {
            Ok((head, body)) => {
                let body = body.join();
                let r = if tasks::compressed(accept, &head) {
                    tasks::decoded(accept, head, body, (max_body, under_timeout)).await
                } else {
                    Ok((head, body))
                };
                // `attempts` and `timings`, `total` now that it is read.
                r.map(|(mut head, body)| {
                    head.meta = finish.meta(true);
                    (head, body)
                })
            }
            Err(e) => Err(e),
        };
        gate.answer(r);
    })
    .abort_handle()
}

async fn read_rest(mut ex: Exchange) -> Result<(Head, Collected), Error> {
    let mut watch: Option<Watch> = None;
    let mut step = ex.advance();
    loop {
        step = match step {
            Step::Done(head, body) => return Ok((head, body)),
            Step::Failed(e) => return Err(e),
            // This task's share is done: others on the worker get theirs.
            Step::Again | Step::Bulk => {
                tokio::task::yield_now().await;
                ex.advance()
            }
            Step::Wait(interest, fd) => {
                let w = match &watch {
                    Some(w) => w,
                    None => watch.insert(Watch::new(&fd)?),
                };
                let ready = w.fd.ready(interest.into());
                let guard = match ex.deadline() {
                    Some(d) => {
                        let at = tokio::time::Instant::from_std(d);
                        match tokio::time::timeout_at(at, ready).await {
                            Ok(g) => g,
                            Err(_) => match ex.expired(Instant::now()) {
                                Some(e) => return Err(e),
                                None => {
                                    step = Step::Wait(interest, fd);
                                    continue;
                                }
                            },
                        }
                    }
                    None => ready.await,
                };
                let mut guard = guard.map_err(|e| watch_error(&e))?;
                let next = ex.advance();
                // It read until the socket had no more: a later event
                // finds the readiness set again (tokio counts them).
                if matches!(next, Step::Wait(..)) {
                    guard.clear_ready();
                }
                next
            }
            // None of these follow a body's first bytes.
            Step::Redirect(_) | Step::Parked | Step::Handoff => {
                return Err(Error::new(Code::Unknown, "request left the body"));
            }
        };
    }
}

/// The socket in tokio's reactor, through a descriptor of its own: the
/// exchange may close its socket (and the number be reused by another of
/// the reactor's) before this task is over.
struct Watch {
    fd: AsyncFd<OwnedFd>,
}

impl Watch {
    fn new(fd: &Fd) -> Result<Self, Error> {
        // Safe: `fd` is open while the exchange holds it, and the copy is
        // this `OwnedFd`'s alone.
        let copy = unsafe { libc::fcntl(fd.raw(), libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            return Err(watch_error(&std::io::Error::last_os_error()));
        }
        let owned = unsafe { OwnedFd::from_raw_fd(copy) };
        let interest = tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE;
        // Safe: the `OwnedFd` keeps its descriptor open, and to the same
        // socket, for as long as the `AsyncFd` holds it.
        unsafe { AsyncFd::register_with_interest(owned, interest) }
            .map(|fd| Watch { fd })
            .map_err(|e| watch_error(&e.into_parts().1))
    }
}

impl From<Interest> for tokio::io::Interest {
    fn from(i: Interest) -> Self {
        match i {
            Interest::Read => tokio::io::Interest::READABLE,
            Interest::Write => tokio::io::Interest::WRITABLE,
        }
    }
}

fn watch_error(e: &std::io::Error) -> Error {
    Error::new(Code::Body, format!("error reading a response body: {e}"))
}
