//! The task that drives one request, in up to three phases, each
//! listening for `Cancel`: uploading a streamed body (with an early reply
//! possible), waiting for the response, and reading the body (all at
//! once, or per `read` call).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::build::{build, Built};
use super::{BodyMode, Spec, FOREVER};
use crate::body;
use crate::error::Error;
use crate::inbox::{Command, Receiver};
use crate::live::Live;
use crate::max_body::MaxBody;
use crate::reply::{Head, Replier};
use crate::resilience::{ClientState, Plan};

/// Yields before a complete HTTP/1 reply, for the pool (see its use).
const POOL_YIELDS: usize = 2;

/// Runs one request until its final message is sent (by `out`, or by its
/// destructor if the task is dropped first); `live` counts the task until
/// its future is dropped.
///
/// Not an `async fn`, which would keep its arguments twice in the task
/// (rust-lang/rust#62958); and the request is built here, so that `run`
/// is not given the whole spec to keep too. Every byte of this future is
/// paid for each request in flight (bench/README.md).
#[allow(clippy::manual_async_fn)] // on purpose, see above
pub(super) fn drive(
    http: reqwest::Client,
    state: Arc<ClientState>,
    spec: Box<Spec>,
    mut cmds: Receiver,
    mut out: Replier,
    live: Live,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let _live = live;
        let Spec {
            method,
            checked,
            response_body: mode,
            timeout,
            resilience,
            max_body,
            ..
        } = unbox(spec);
        // Retries, hedging, limits and timings (resilience/).
        let plan = Plan::new(state, resilience);
        // In a future of its own: a `match` on `checked` here would keep
        // it in this one to the end (rustc keeps a scrutinee's room).
        let built = async { build(&http, method, checked?, timeout).await }.await;
        let limit = max_body.unwrap_or_default();
        if let Err(e) = run(&http, &plan, built, mode, limit, &mut cmds, &mut out).await {
            if !out.is_done() {
                plan.send_error(&mut out, &e);
            }
        }
    }
}

/// Frees the box now: `*spec` in the task itself would free it only with
/// the task, the box being one of its arguments.
fn unbox(spec: Box<Spec>) -> Spec {
    *spec
}

/// Not an `async fn` either, for the reason given at `drive`.
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn run<'a>(
    http: &'a reqwest::Client,
    plan: &'a Plan,
    built: Result<Built, Error>,
    mode: BodyMode,
    limit: MaxBody,
    cmds: &'a mut Receiver,
    out: &'a mut Replier,
) -> impl Future<Output = Result<(), Error>> + 'a {
    async move {
        let Built { request, upload } = built?;
        // An upload cut short by an early reply stays open until the
        // response is read: aborting it earlier could close the connection
        // under it.
        let fut = plan.execute(http, request);
        tokio::pin!(fut);
        let (resp, _unfinished_upload) = match upload {
            Some(tx) => upload_phase(fut.as_mut(), tx, cmds, out).await?,
            None => (await_response(fut.as_mut(), cmds, mode).await?, None),
        };
        let (mut head, resp) = take_head(resp);
        match mode {
            BodyMode::Complete => {
                let body = collect(resp, limit, cmds).await?;
                head.meta = plan.meta(true);
                plan.release();
                // hyper-util puts an HTTP/1 connection back in the pool from
                // a task of its own, woken once the body is done: letting it
                // run first keeps the caller's next request from finding no
                // idle connection and opening another one. One yield was
                // often not enough (the connection task still had to mark
                // itself ready); two gave one connection per worker
                // (bench/README.md).
                if head.version < reqwest::Version::HTTP_2 {
                    for _ in 0..POOL_YIELDS {
                        tokio::task::yield_now().await;
                    }
                }
                out.reply(&head, Some(body));
                Ok(())
            }
            BodyMode::Stream => {
                head.meta = plan.meta(false);
                out.reply(&head, None);
                read_phase(resp, cmds, out, plan).await
            }
        }
    }
}

/// Apart from `run`: a local borrowed there would keep its room in the
/// future after being moved on (rustc's layout is conservative).
fn take_head(mut resp: reqwest::Response) -> (Head, reqwest::Response) {
    let head = Head::take(&mut resp);
    (head, resp)
}

fn cancelled() -> Error {
    Error::cancelled("cancelled")
}

/// Streams the request body until `finish_send`, sending `next` each time
/// hyper asks for more; returns the response, which may come early (then
/// with the body sender, still open).
async fn upload_phase<F>(
    mut fut: Pin<&mut F>,
    mut tx: body::Sender,
    cmds: &mut Receiver,
    out: &mut Replier,
) -> Result<(reqwest::Response, Option<body::Sender>), Error>
where
    F: Future<Output = Result<reqwest::Response, Error>>,
{
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    let mut owe_next = true;
    let mut finish_asked = false;
    loop {
        if finish_asked && queue.is_empty() && !tx.is_finished() {
            tx.finish();
        }
        let answered = tokio::select! {
            biased;
            c = cmds.recv() => {
                match c {
                    Some(Command::Cancel) => return Err(cancelled()),
                    Some(Command::Send(b)) if !finish_asked => {
                        queue.push_back(b);
                        owe_next = true;
                    }
                    Some(Command::FinishSend) => {
                        finish_asked = true;
                        owe_next = false;
                    }
                    Some(_) => {}
                    None if tx.is_finished() => {}
                    None => return Err(Error::cancelled("handle dropped before finish_send")),
                }
                None
            }
            r = fut.as_mut() => Some(r),
            permit = tx.reserve(), if !queue.is_empty() => {
                match (permit, queue.pop_front()) {
                    (Some(p), Some(chunk)) => tx.push(p, chunk),
                    // hyper dropped the body: the response future says why.
                    _ => queue.clear(),
                }
                None
            }
            _ = tx.demand(), if owe_next && queue.is_empty() && !finish_asked => {
                owe_next = false;
                out.next();
                None
            }
        };
        if let Some(r) = answered {
            let resp = r?;
            if tx.is_finished() {
                return Ok((resp, None));
            }
            out.close_upload();
            return Ok((resp, Some(tx)));
        }
    }
}

async fn await_response<F>(
    mut fut: Pin<&mut F>,
    cmds: &mut Receiver,
    mode: BodyMode,
) -> Result<reqwest::Response, Error>
where
    F: Future<Output = Result<reqwest::Response, Error>>,
{
    loop {
        tokio::select! {
            biased;
            c = cmds.recv() => match c {
                Some(Command::Cancel) => return Err(cancelled()),
                // Nobody could read a streamed body any more.
                None if mode == BodyMode::Stream => return Err(Error::cancelled("handle dropped")),
                _ => {}
            },
            r = fut.as_mut() => return r,
        }
    }
}

/// Reads the whole body within `limit` (`max_body`), still listening for
/// `cancel`. Not an `async fn`, for the reason given at `drive`.
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn collect(
    mut resp: reqwest::Response,
    limit: MaxBody,
    cmds: &mut Receiver,
) -> impl Future<Output = Result<Bytes, Error>> + '_ {
    async move {
        // An announced length over the limit fails before a byte is read.
        if let Some(n) = resp.content_length() {
            limit.admit(n)?;
        }
        let mut parts = Parts::with_capacity(resp.content_length().unwrap_or(0));
        loop {
            tokio::select! {
                biased;
                c = cmds.recv() => if let Some(Command::Cancel) = c {
                    return Err(cancelled());
                },
                r = resp.chunk() => match r.map_err(|e| Error::from_reqwest(&e))? {
                    Some(b) => {
                        // Counted before it is kept: memory stays within the limit.
                        limit.admit_len(parts.len.saturating_add(b.len()))?;
                        parts.push(b);
                    }
                    None => return Ok(parts.take()),
                },
            }
        }
    }
}

/// Serves `read` calls until the body ends. Not an `async fn` either.
#[allow(clippy::manual_async_fn)] // on purpose, see above
fn read_phase<'a>(
    mut resp: reqwest::Response,
    cmds: &'a mut Receiver,
    out: &'a mut Replier,
    plan: &'a Plan,
) -> impl Future<Output = Result<(), Error>> + 'a {
    async move {
        let mut reads: VecDeque<(usize, Option<Duration>)> = VecDeque::new();
        loop {
            let (length, period) = match reads.pop_front() {
                Some(r) => r,
                None => match cmds.recv().await {
                    Some(Command::Read { length, period }) => (length, period),
                    Some(Command::Cancel) | None => return Err(cancelled()),
                    Some(_) => continue,
                },
            };
            let deadline = period.map(|p| Instant::now() + p);
            let sleep =
                tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + FOREVER));
            tokio::pin!(sleep);
            // Sized up front: growing by doubling from record-sized chunks
            // copied each piece several times (bench/README.md).
            let expected = resp
                .content_length()
                .map_or(length, |n| n.min(length as u64) as usize);
            let mut parts = Parts::with_capacity(expected as u64);
            loop {
                tokio::select! {
                    biased;
                    c = cmds.recv() => match c {
                        Some(Command::Cancel) | None => return Err(cancelled()),
                        Some(Command::Read { length, period }) => reads.push_back((length, period)),
                        Some(_) => {}
                    },
                    _ = &mut sleep, if deadline.is_some() => {
                        out.chunk(parts.take());
                        break;
                    }
                    r = resp.chunk() => match r.map_err(|e| Error::from_reqwest(&e))? {
                        Some(b) => {
                            parts.push(b);
                            if parts.len >= length {
                                out.chunk(parts.take());
                                break;
                            }
                        }
                        None => {
                            plan.release();
                            out.fin(parts.take());
                            return Ok(());
                        }
                    },
                }
            }
        }
    }
}

/// Chunks gathered into one `Bytes`, without a copy when there is only one.
struct Parts {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
    len: usize,
    hint: usize,
}

impl Parts {
    fn with_capacity(hint: u64) -> Self {
        Parts {
            first: None,
            rest: None,
            len: 0,
            hint: usize::try_from(hint).unwrap_or(0).min(64 * 1024 * 1024),
        }
    }

    fn push(&mut self, b: Bytes) {
        self.len += b.len();
        if let Some(buf) = &mut self.rest {
            buf.extend_from_slice(&b);
        } else if let Some(first) = self.first.take() {
            let mut buf = BytesMut::with_capacity(self.hint.max(first.len() + b.len()));
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&b);
            self.rest = Some(buf);
        } else {
            self.first = Some(b);
        }
    }

    fn take(&mut self) -> Bytes {
        self.len = 0;
        match (self.rest.take(), self.first.take()) {
            (Some(buf), _) => buf.freeze(),
            (None, Some(b)) => b,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future returned by `f`.
    fn future_size<F, A, B, C, D, E, G, R>(_: &F) -> usize
    where
        F: FnOnce(A, B, C, D, E, G) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// Each request in flight holds this future: it was 8.5 KB before the
    /// changes that this bound keeps (bench/README.md), and about 1.8 KB
    /// after. The rest is room for other compiler versions.
    #[test]
    fn the_task_future_stays_small() {
        let size = future_size(&drive);
        assert!(size <= 2048, "the request task's future is {size} bytes");
    }

    #[test]
    fn parts_keep_a_single_chunk_without_copying() {
        let mut p = Parts::with_capacity(0);
        let b = Bytes::from(vec![1u8; 10]);
        let ptr = b.as_ptr();
        p.push(b);
        let out = p.take();
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(p.take().len(), 0);
    }

    #[test]
    fn parts_concatenate_in_order() {
        let mut p = Parts::with_capacity(6);
        p.push(Bytes::from_static(b"ab"));
        p.push(Bytes::from_static(b"cd"));
        p.push(Bytes::from_static(b"ef"));
        assert_eq!(p.len, 6);
        assert_eq!(p.take(), Bytes::from_static(b"abcdef"));
    }
}
