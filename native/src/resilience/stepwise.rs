//! Retries for an engine that waits in the calling process: the
//! scheduler engine (`direct/`). The same classifier, backoff,
//! `Retry-After` and per-host budget as [`super::Plan`], but each decision
//! is returned to the engine instead of awaited on the runtime: the
//! engine answers `{wait, Call, Ms}` and the caller's `receive ... after`
//! is the backoff, so no scheduler thread sleeps and no tokio task exists.
//!
//! A request counts in `client_info/1` from [`Stepwise`] until it is
//! dropped, as one on the runtime does.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};

use super::limit::Slot;
use super::retry::{unit_random, Outcome, RetryPolicy, Verdict};
use super::{host_key, ClientState, Meta, Overrides};
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

impl ClientState {
    /// The request's resilience as the scheduler engine can carry it out,
    /// or `None` when the runtime must: hedging, timings and limits (a
    /// queue, and timing connects, need the runtime's tasks).
    pub fn stepwise(self: &Arc<Self>, o: &Overrides, url: &Url) -> Option<Stepwise> {
        let d = &self.defaults;
        let hedge = o.hedge.or(d.hedge).flatten();
        let timings = o.timings.or(d.timings).unwrap_or(false);
        if hedge.is_some() || timings || !self.limits.is_unlimited() {
            return None;
        }
        let host = host_key(url);
        let policy = o.retry.clone().or_else(|| d.retry.clone()).flatten();
        let retry = policy.map(|policy| {
            if let Some(c) = &policy.budget {
                self.deposit(&host, c);
            }
            Retrier {
                state: self.clone(),
                policy,
                host: host.clone(),
                retries: 0,
            }
        });
        Some(Stepwise {
            retry,
            attempts: 0,
            _slot: self.limits.enter_unlimited(host),
        })
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
