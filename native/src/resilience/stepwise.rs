//! Retries for an engine that waits in the calling process: the
//! scheduler engine (`direct/`). The same classifier, backoff,
//! `Retry-After` and per-host budget as [`super::Plan`], but each decision
//! is returned to the engine instead of awaited on the runtime: the
//! engine answers `{wait, Call, Ms}` and the caller's `receive ... after`
//! is the backoff, so no scheduler thread sleeps and no tokio task exists.
//!
//! A request counts in `client_info/1` from [`Stepwise`] until it is
//! dropped, as one on the runtime does. Under `max_in_flight` limits it
//! holds its place from the first attempt to the last (a retry keeps it,
//! as on the runtime); one that finds no room waits in the same FIFO
//! queues as the runtime's requests ([`Admission::Queued`]): the engine
//! runs [`Queue::wait`] on the runtime and wakes the caller by message.
//!
//! With `timings => true` it keeps a [`Clock`] that the engine feeds
//! (a connect's duration, the head's instant) and that gives the reply's
//! `timings`, with the keys and meaning of `Plan::meta`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};

use super::limit::{QueueTimeout, Queued, Slot};
use super::retry::{unit_random, Outcome, RetryPolicy, Verdict};
use super::timings::Clock;
use super::{host_key, ClientState, Meta, Overrides, QueueTimedOut};
use crate::error::Error;

/// What the scheduler engine keeps of one request's resilience.
pub struct Stepwise {
    retry: Option<Retrier>,
    attempts: u32,
    /// With `timings => true`: what the attempts measured.
    clock: Option<Clock>,
    /// Its place in the client's in-flight counts.
    _slot: Slot,
}

/// What the final message's extra keys need, apart from the request:
/// taken when the head is in, for a body finished elsewhere (a runtime
/// task), and made into [`Meta`] when that body is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finish {
    attempts: Option<u32>,
    clock: Option<Clock>,
}

impl Finish {
    /// Whether the reply gets `timings`.
    pub fn timed(&self) -> bool {
        self.clock.is_some()
    }

    /// The head came, through an engine that measured its own connect
    /// (reqwest's, for a hop handed to it).
    pub fn heard(
        &mut self,
        connect: Option<Duration>,
        at: std::time::Instant,
        peer: Option<std::net::SocketAddr>,
    ) {
        if let Some(c) = &mut self.clock {
            if let Some(d) = connect {
                c.connected(d);
            }
            c.head(at, peer);
        }
    }

    /// `attempts` and `timings`; `complete` when the body was read (now).
    pub fn meta(&self, complete: bool) -> Option<Box<Meta>> {
        if self.attempts.is_none() && self.clock.is_none() {
            return None;
        }
        Some(Box::new(Meta {
            attempts: self.attempts,
            timings: self.clock.map(|c| c.timings(complete)),
        }))
    }
}

struct Retrier {
    state: Arc<ClientState>,
    policy: Arc<RetryPolicy>,
    host: String,
    retries: u32,
}

/// How a request gets in under its client's limits.
pub enum Admission {
    /// There was room: it goes on now.
    Now(Stepwise),
    /// It is queued: [`Queue::wait`], run on the runtime, says when it may
    /// go on.
    Queued(Queue),
}

/// A request's place in its client's queues, and what it becomes once in.
pub struct Queue {
    state: Arc<ClientState>,
    policy: Option<Arc<RetryPolicy>>,
    queued: Queued,
    queue_timeout: Option<Duration>,
    deadline: Option<tokio::time::Instant>,
    clock: Option<Clock>,
}

impl ClientState {
    /// The request's resilience as the scheduler engine can carry it out,
    /// or `None` when the runtime must: hedging.
    ///
    /// Under limits the request takes its place in the client's queues
    /// here, the same queues as the runtime's requests (`Plan`), with
    /// `queue_timeout` counted from now.
    pub fn stepwise(self: &Arc<Self>, o: &Overrides, url: &Url) -> Option<Admission> {
        let d = &self.defaults;
        let hedge = o.hedge.or(d.hedge).flatten();
        let timings = o.timings.or(d.timings).unwrap_or(false);
        if hedge.is_some() {
            return None;
        }
        // Started before anything else (the queue included), as a `Plan` is.
        let clock = timings.then(Clock::start);
        let host = host_key(url);
        let policy = o.retry.clone().or_else(|| d.retry.clone()).flatten();
        if self.limits.is_unlimited() {
            let slot = self.limits.enter_unlimited(host);
            return Some(Admission::Now(self.begin(policy, slot, clock)));
        }
        Some(match self.limits.join(host) {
            Ok(slot) => Admission::Now(self.begin(policy, slot, clock)),
            Err(queued) => {
                let queue_timeout = super::queue_timeout(o, d);
                Admission::Queued(Queue {
                    state: self.clone(),
                    policy,
                    queued,
                    queue_timeout,
                    deadline: super::limit::deadline(queue_timeout),
                    clock,
                })
            }
        })
    }

    /// A request in flight: it earns its share of the retry budget, as on
    /// the runtime once a request leaves the queue.
    /// Its `queued` time ends here.
    fn begin(
        self: &Arc<Self>,
        policy: Option<Arc<RetryPolicy>>,
        slot: Slot,
        clock: Option<Clock>,
    ) -> Stepwise {
        let retry = policy.map(|policy| {
            if let Some(c) = &policy.budget {
                self.deposit(slot.host(), c);
            }
            Retrier {
                state: self.clone(),
                policy,
                host: slot.host().to_owned(),
                retries: 0,
            }
        });
        let mut stepwise = Stepwise {
            retry,
            attempts: 0,
            clock,
            _slot: slot,
        };
        stepwise.admitted();
        stepwise
    }
}

impl Queue {
    /// Waits for room, until the `queue_timeout`. Dropping the future
    /// leaves the queue at once.
    pub async fn wait(self) -> Result<Stepwise, QueueTimedOut> {
        let Queue {
            state,
            policy,
            queued,
            queue_timeout,
            deadline,
            clock,
        } = self;
        // Kept for the error: the place, which has it, goes in the wait.
        let host = queued.host().to_owned();
        match queued.wait(deadline).await {
            Ok(slot) => Ok(state.begin(policy, slot, clock)),
            Err(QueueTimeout) => Err(QueueTimedOut::new(&host, queue_timeout)),
        }
    }
}

impl Stepwise {
    /// The request got its place under the limits (at once when there
    /// are none): the end of `queued`. A queue that makes it wait calls
    /// this when it lets the request go.
    pub fn admitted(&mut self) {
        if let Some(c) = &mut self.clock {
            c.admitted();
        }
    }

    /// An attempt is being sent.
    pub fn attempt(&mut self) {
        self.attempts += 1;
        if let Some(c) = &mut self.clock {
            c.attempt();
        }
    }

    /// Whether the engine's measures are wanted (`timings => true`).
    pub fn timed(&self) -> bool {
        self.clock.is_some()
    }

    /// A hop of the current attempt opened a connection in `d`.
    pub fn connected(&mut self, d: Duration) {
        if let Some(c) = &mut self.clock {
            c.connected(d);
        }
    }

    /// The final response's head came at `at`, from `peer`.
    pub fn head(&mut self, at: std::time::Instant, peer: Option<std::net::SocketAddr>) {
        if let Some(c) = &mut self.clock {
            c.head(at, peer);
        }
    }

    /// After an attempt answered `status`: how long to wait before the
    /// next one, or `None` when this answer is final.
    pub fn after_status(
        &mut self,
        method: &Method,
        status: u16,
        retry_after: Option<&[u8]>,
    ) -> Option<Duration> {
        self.retry
            .as_mut()?
            .next(method, Outcome::Status(status, retry_after))
    }

    /// The same after an attempt failed with `e`.
    pub fn after_error(&mut self, method: &Method, e: &Error) -> Option<Duration> {
        self.retry
            .as_mut()?
            .next(method, Outcome::Failed(e.code(), e.cause()))
    }

    /// The final message's `attempts` (when retries are on) and
    /// `timings` (when asked for), its body read now (as `Plan::meta`).
    pub fn meta(&self) -> Option<Box<Meta>> {
        self.finish().meta(true)
    }

    /// The same, for a body that another task finishes.
    pub fn finish(&self) -> Finish {
        Finish {
            attempts: self.attempts(),
            clock: self.clock,
        }
    }

    pub fn attempts(&self) -> Option<u32> {
        self.retry.as_ref().map(|_| self.attempts.max(1))
    }
}

impl Retrier {
    fn next(&mut self, method: &Method, outcome: Outcome) -> Option<Duration> {
        let p = &self.policy;
        if self.retries >= p.max_retries || !p.methods.allows(method) {
            return None;
        }
        let after = match p.classify(outcome) {
            Verdict::Done => return None,
            Verdict::Retry { after } => after,
        };
        if let Some(c) = &p.budget {
            let granted = self
                .state
                .budgets()
                .get_mut(&self.host)
                .is_some_and(|b| b.withdraw(c, std::time::Instant::now()));
            if !granted {
                return None;
            }
        }
        self.retries += 1;
        Some(after.unwrap_or_else(|| p.backoff(self.retries, unit_random())))
    }
}
