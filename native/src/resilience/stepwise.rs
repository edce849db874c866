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

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};

use super::limit::{QueueTimeout, Queued, Slot};
use super::retry::{unit_random, Outcome, RetryPolicy, Verdict};
use super::{host_key, ClientState, Meta, Overrides, QueueTimedOut};
use crate::error::Error;

/// What the scheduler engine keeps of one request's resilience.
pub struct Stepwise {
    retry: Option<Retrier>,
    attempts: u32,
    /// Its place in the client's in-flight counts.
    _slot: Slot,
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
}

impl ClientState {
    /// The request's resilience as the scheduler engine can carry it out,
    /// or `None` when the runtime must: hedging and timings (timing
    /// connects needs the runtime's tasks).
    ///
    /// Under limits the request takes its place in the client's queues
    /// here, the same queues as the runtime's requests (`Plan`), with
    /// `queue_timeout` counted from now.
    pub fn stepwise(self: &Arc<Self>, o: &Overrides, url: &Url) -> Option<Admission> {
        let d = &self.defaults;
        let hedge = o.hedge.or(d.hedge).flatten();
        let timings = o.timings.or(d.timings).unwrap_or(false);
        if hedge.is_some() || timings {
            return None;
        }
        let host = host_key(url);
        let policy = o.retry.clone().or_else(|| d.retry.clone()).flatten();
        if self.limits.is_unlimited() {
            let slot = self.limits.enter_unlimited(host);
            return Some(Admission::Now(self.begin(policy, slot)));
        }
        Some(match self.limits.join(host) {
            Ok(slot) => Admission::Now(self.begin(policy, slot)),
            Err(queued) => {
                let queue_timeout = super::queue_timeout(o, d);
                Admission::Queued(Queue {
                    state: self.clone(),
                    policy,
                    queued,
                    queue_timeout,
                    deadline: super::limit::deadline(queue_timeout),
                })
            }
        })
    }

    /// A request in flight: it earns its share of the retry budget, as on
    /// the runtime once a request leaves the queue.
    fn begin(self: &Arc<Self>, policy: Option<Arc<RetryPolicy>>, slot: Slot) -> Stepwise {
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
        Stepwise {
            retry,
            attempts: 0,
            _slot: slot,
        }
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
        } = self;
        // Kept for the error: the place, which has it, goes in the wait.
        let host = queued.host().to_owned();
        match queued.wait(deadline).await {
            Ok(slot) => Ok(state.begin(policy, slot)),
            Err(QueueTimeout) => Err(QueueTimedOut::new(&host, queue_timeout)),
        }
    }
}

impl Stepwise {
    /// An attempt is being sent.
    pub fn attempt(&mut self) {
        self.attempts += 1;
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

    /// The final message's `attempts`, when retries are on (as `Plan::meta`).
    pub fn meta(&self) -> Option<Box<Meta>> {
        self.attempts().map(|n| {
            Box::new(Meta {
                attempts: Some(n),
                timings: None,
            })
        })
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
