//! Hedged requests: when no response head has come `delay` after an
//! attempt started, another copy is sent; the first head wins and the
//! others are dropped (hyper then closes their HTTP/1 connections, or
//! resets their HTTP/2 streams).
//!
//! [`race`] also runs a lone attempt (no spares), so that timing and
//! counting are the same with and without hedging.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use rustler::{Atom, Error as NifError, MapIterator, NifResult, Term};

use super::atoms;
use super::timings::ConnectSlot;
use crate::term::{decode_int, decode_ms};

/// `hedge => #{delay := Ms, max => N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HedgePolicy {
    pub delay: Duration,
    /// Extra attempts at most (1: two in flight at worst).
    pub max: u32,
}

impl HedgePolicy {
    /// `false`, or a map with at least `delay`.
    pub fn decode(t: Term) -> NifResult<Option<Self>> {
        if t.decode::<bool>().ok() == Some(false) {
            return Ok(None);
        }
        let mut delay = None;
        let mut max = 1;
        for (k, v) in t.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atoms::delay() => delay = Some(decode_ms(v)?.ok_or(NifError::BadArg)?),
                k if k == atoms::max() => max = decode_int(v)?,
                _ => return Err(NifError::BadArg),
            }
        }
        // More than a handful of copies is a mistake, not a strategy.
        if max > 16 {
            return Err(NifError::BadArg);
        }
        Ok(Some(HedgePolicy {
            delay: delay.ok_or(NifError::BadArg)?,
            max,
        }))
    }
}

/// The outcome of a round: the winning attempt's result and connect slot.
pub struct Round {
    pub result: reqwest::Result<reqwest::Response>,
    pub connect: Option<ConnectSlot>,
}

type Attempt =
    Pin<Box<dyn Future<Output = (reqwest::Result<reqwest::Response>, Option<ConnectSlot>)> + Send>>;

fn attempt(http: &reqwest::Client, req: reqwest::Request, timed: bool) -> Attempt {
    let fut = http.execute(req);
    Box::pin(async move {
        if timed {
            let slot = ConnectSlot::default();
            let r = slot.clone().scope(fut).await;
            (r, Some(slot))
        } else {
            (fut.await, None)
        }
    })
}

/// Runs `first`, and each of `spares` after a further `delay` without a
/// head. An attempt that fails while others run is forgotten; the round
/// fails only when every started attempt did (with the last error), or
/// when the first fails before any spare was sent. `started` is called
/// as each attempt starts (so that a cancel mid-race counts them all).
pub async fn race(
    http: &reqwest::Client,
    first: reqwest::Request,
    spares: Vec<reqwest::Request>,
    delay: Duration,
    timed: bool,
    started: &(dyn Fn() + Sync),
) -> Round {
    started();
    let mut running = vec![attempt(http, first, timed)];
    let mut spares = spares.into_iter();
    let mut left = spares.len();
    let timer = tokio::time::sleep(delay);
    tokio::pin!(timer);
    let mut last_err = None;
    std::future::poll_fn(|cx| {
        loop {
            let mut i = 0;
            while i < running.len() {
                match running[i].as_mut().poll(cx) {
                    Poll::Ready((Ok(resp), slot)) => {
                        return Poll::Ready(Round {
                            result: Ok(resp),
                            connect: slot,
                        })
                    }
                    Poll::Ready((Err(e), slot)) => {
                        drop(running.swap_remove(i));
                        last_err = Some((e, slot));
                    }
                    Poll::Pending => i += 1,
                }
            }
            if running.is_empty() {
                if let Some((e, slot)) = last_err.take() {
                    return Poll::Ready(Round {
                        result: Err(e),
                        connect: slot,
                    });
                }
            }
            if left == 0 || timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(req) = spares.next() {
                left -= 1;
                started();
                running.push(attempt(http, req, timed));
                let next = tokio::time::Instant::now() + delay;
                timer.as_mut().reset(next);
            }
            // Loop: poll the new attempt (and the new timer) once.
        }
    })
    .await
}
