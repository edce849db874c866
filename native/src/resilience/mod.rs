//! Resilience inside the runtime: retries, hedging, concurrency limits and
//! timings, wrapped around reqwest's `execute` for one request.
//!
//! * [`retry`]: which outcomes are retried, backoff, `Retry-After`, budget;
//! * [`hedge`]: racing a second copy of a slow idempotent request;
//! * [`limit`]: per-client and per-host FIFO queues;
//! * [`timings`]: where the time went;
//! * [`stepwise`]: retries and timings carried out by the scheduler
//!   engine, which reports what it measured and waits in the caller.
//!
//! Options are client defaults ([`ClientOptions`], kept in the client's
//! [`ClientState`]) that a request may override ([`Overrides`]); the two
//! meet in a [`Plan`], which the request task asks for the response
//! future ([`Plan::execute`]) and for the extra keys of its final message.
//! With every option at its default the replies are those of erqwest
//! 0.2.5: no `attempts`, no `timings`.

pub mod hedge;
pub mod limit;
pub mod meta;
pub mod retry;
pub mod stepwise;
pub mod timings;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustler::{Atom, Encoder, Error as NifError, NifResult, Term};
use tokio::time::Instant;

use crate::error::{Code, Error};
use crate::reply::Replier;
use crate::term::{decode_bool, decode_int, decode_ms, EncodeBinary};
use hedge::HedgePolicy;
use meta::Meta;
use retry::{Budget, Outcome, RetryPolicy, Verdict};
use timings::Timings;

pub(crate) mod atoms;

/// What a client may be asked to queue for, by default.
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(5000);

/// Request options that override a client's defaults; `None` = not given.
#[derive(Default, Clone)]
pub struct Overrides {
    retry: Option<Option<Arc<RetryPolicy>>>,
    hedge: Option<Option<HedgePolicy>>,
    timings: Option<bool>,
    queue_timeout: Option<Option<Duration>>,
}

impl Overrides {
    /// Whether `key` is one of this module's request options.
    pub fn is_key(key: Atom) -> bool {
        [
            atoms::retry(),
            atoms::hedge(),
            atoms::timings(),
            atoms::queue_timeout(),
        ]
        .contains(&key)
    }

    /// Whether no option of this module was given.
    pub fn is_empty(&self) -> bool {
        self.retry.is_none()
            && self.hedge.is_none()
            && self.timings.is_none()
            && self.queue_timeout.is_none()
    }

    /// Decodes one option (`badarg` for an ill-typed value).
    pub fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        match key {
            k if k == atoms::retry() => self.retry = Some(RetryPolicy::decode(v)?.map(Arc::new)),
            k if k == atoms::hedge() => self.hedge = Some(HedgePolicy::decode(v)?),
            k if k == atoms::timings() => self.timings = Some(decode_bool(v)?),
            k if k == atoms::queue_timeout() => self.queue_timeout = Some(decode_ms(v)?),
            _ => return Err(NifError::BadArg),
        }
        Ok(())
    }
}

/// The client options of this module: the request defaults and the limits.
#[derive(Default, Clone)]
pub struct ClientOptions {
    defaults: Overrides,
    max_in_flight: Option<usize>,
    max_in_flight_per_host: Option<usize>,
}

impl ClientOptions {
    pub fn is_key(key: Atom) -> bool {
        Overrides::is_key(key)
            || key == atoms::max_in_flight()
            || key == atoms::max_in_flight_per_host()
    }

    /// Whether requests of this client can be carried out by the
    /// scheduler engine unless they ask for more: no hedging by default
    /// (retries, limits and timings are: `stepwise.rs`).
    pub fn is_stepwise(&self) -> bool {
        self.defaults.hedge.flatten().is_none()
    }

    pub fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        match key {
            k if k == atoms::max_in_flight() => self.max_in_flight = decode_limit(v)?,
            k if k == atoms::max_in_flight_per_host() => {
                self.max_in_flight_per_host = decode_limit(v)?
            }
            k => self.defaults.set(k, v)?,
        }
        Ok(())
    }
}

/// `pos_integer() | infinity`.
fn decode_limit(v: Term) -> NifResult<Option<usize>> {
    if v.decode::<Atom>().ok() == Some(atoms::infinity()) {
        return Ok(None);
    }
    match decode_int::<usize>(v)? {
        // tokio's semaphores hold at most usize::MAX >> 3 permits.
        n if n == 0 || n > tokio::sync::Semaphore::MAX_PERMITS => Err(NifError::BadArg),
        n => Ok(Some(n)),
    }
}

/// A client's defaults, its queues and its retry budgets, shared by its
/// requests.
pub struct ClientState {
    defaults: Overrides,
    limits: Arc<limit::Limits>,
    budgets: Mutex<HashMap<String, Budget>>,
}

impl ClientState {
    pub fn new(o: &ClientOptions) -> Arc<Self> {
        Arc::new(ClientState {
            defaults: o.defaults.clone(),
            limits: Arc::new(limit::Limits::new(
                o.max_in_flight,
                o.max_in_flight_per_host,
            )),
            budgets: Mutex::default(),
        })
    }

    /// The in-flight and queued counts of `client_info/1`.
    pub fn info(&self) -> limit::Info {
        self.limits.info()
    }

    /// A request to `host` earns its share of a retry (`budget`).
    fn deposit(&self, host: &str, c: &retry::BudgetConfig) {
        let mut budgets = self.budgets();
        // Looked up first: a new key is only allocated for a new host.
        match budgets.get_mut(host) {
            Some(b) => b.deposit(c),
            None => {
                let mut b = Budget::new(std::time::Instant::now());
                b.deposit(c);
                budgets.insert(host.to_owned(), b);
            }
        }
    }

    fn budgets(&self) -> MutexGuard<'_, HashMap<String, Budget>> {
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the attempts found out, for the final message.
#[derive(Default)]
struct Record {
    attempts: u32,
    queued: Duration,
    connect: Option<Duration>,
    headers: Option<Duration>,
    remote_addr: Option<std::net::SocketAddr>,
    queue_timed_out: bool,
    /// The request's place in the limits, held until [`Plan::release`]
    /// just before the final message (a streamed body is still in flight
    /// after the head).
    slot: Option<limit::Slot>,
}

/// One request's resolved options and what its attempts recorded.
pub struct Plan {
    state: Arc<ClientState>,
    retry: Option<Arc<RetryPolicy>>,
    hedge: Option<HedgePolicy>,
    timings: bool,
    queue_timeout: Option<Duration>,
    start: Instant,
    record: Mutex<Record>,
}

impl Plan {
    pub fn new(state: Arc<ClientState>, o: Overrides) -> Self {
        let d = &state.defaults;
        let queue_timeout = queue_timeout(&o, d);
        Plan {
            retry: o.retry.or_else(|| d.retry.clone()).flatten(),
            hedge: o.hedge.or(d.hedge).flatten(),
            timings: o.timings.or(d.timings).unwrap_or(false),
            queue_timeout,
            state,
            start: Instant::now(),
            record: Mutex::default(),
        }
    }

    fn rec(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects are timed for this request (its attempts need a slot).
    /// Every client's connector has the timer, so a request that asks
    /// for timings gets `connect` and `reused` whatever its client says.
    fn times_connects(&self) -> bool {
        self.timings
    }

    /// Waits for room under the limits, then makes attempts until one's
    /// outcome is final. Dropping the future (a cancel) drops the queue
    /// place, the attempt in flight or the wait between attempts at once.
    ///
    /// Not an `async fn`, which would keep the request twice in the
    /// future (rust-lang/rust#62958), a future every request's task holds.
    #[allow(clippy::manual_async_fn)] // on purpose, see above
    pub fn execute<'a>(
        &'a self,
        http: &'a reqwest::Client,
        request: reqwest::Request,
    ) -> impl Future<Output = Result<reqwest::Response, Error>> + 'a {
        async move {
            let single = self.retry.is_none() && self.hedge.is_none() && !self.times_connects();
            if single && self.state.limits.is_unlimited() {
                // What `execute_rounds` comes to with nothing to queue for,
                // retry, race or time: one attempt, recorded the same way.
                let slot = self.state.limits.enter_unlimited(host_key(request.url()));
                {
                    let mut r = self.rec();
                    r.queued = self.start.elapsed();
                    r.slot = Some(slot);
                    r.attempts += 1;
                }
                let result = http.execute(request).await;
                return self.finish_round(hedge::Round {
                    result,
                    connect: None,
                });
            }
            // Boxed: queues, retries and races make a future of over 2 KB,
            // which would otherwise be part of every request's task.
            Box::pin(self.execute_rounds(http, request)).await
        }
    }

    async fn execute_rounds(
        &self,
        http: &reqwest::Client,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, Error> {
        let host = host_key(request.url());
        let deadline = limit::deadline(self.queue_timeout);
        match self.state.limits.enter(&host, deadline).await {
            Ok(slot) => {
                let mut r = self.rec();
                r.queued = self.start.elapsed();
                r.slot = Some(slot);
            }
            Err(limit::QueueTimeout) => {
                self.rec().queue_timed_out = true;
                return Err(QueueTimedOut::new(&host, self.queue_timeout).0);
            }
        }
        let budget = self.retry.as_ref().and_then(|p| p.budget);
        if let Some(c) = &budget {
            self.state.deposit(&host, c);
        }
        let mut request = request;
        let mut retries = 0;
        loop {
            let spare = match &self.retry {
                Some(p) if retries < p.max_retries && p.methods.allows(request.method()) => {
                    request.try_clone()
                }
                _ => None,
            };
            let round = self.round(http, request).await;
            let verdict = match (&self.retry, &round.result) {
                (Some(p), Ok(resp)) => p.classify(Outcome::Status(
                    resp.status().as_u16(),
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .map(|v| v.as_bytes()),
                )),
                (Some(p), Err(e)) => {
                    let e = Error::from_reqwest(e);
                    p.classify(Outcome::Failed(e.code(), e.cause()))
                }
                (None, _) => Verdict::Done,
            };
            let (policy, next, after) = match (&self.retry, spare, verdict) {
                (Some(p), Some(next), Verdict::Retry { after }) => (p, next, after),
                _ => return self.finish_round(round),
            };
            if let Some(c) = &budget {
                let granted = self
                    .state
                    .budgets()
                    .get_mut(&host)
                    .is_some_and(|b| b.withdraw(c, std::time::Instant::now()));
                if !granted {
                    return self.finish_round(round);
                }
            }
            // A retried response's body is dropped unread, never copied.
            drop(round);
            retries += 1;
            let wait = after.unwrap_or_else(|| policy.backoff(retries, retry::unit_random()));
            tokio::time::sleep(wait).await;
            request = next;
        }
    }

    /// One attempt, or a hedged race of several.
    async fn round(&self, http: &reqwest::Client, request: reqwest::Request) -> hedge::Round {
        let mut spares = Vec::new();
        let mut delay = Duration::ZERO;
        if let Some(h) = &self.hedge {
            if retry::is_idempotent(request.method()) {
                delay = h.delay;
                spares = (0..h.max).map_while(|_| request.try_clone()).collect();
            }
        }
        let started = || self.rec().attempts += 1;
        hedge::race(
            http,
            request,
            spares,
            delay,
            self.times_connects(),
            &started,
        )
        .await
    }

    fn finish_round(&self, round: hedge::Round) -> Result<reqwest::Response, Error> {
        let mut r = self.rec();
        r.connect = round.connect.as_ref().and_then(|s| s.get());
        match round.result {
            Ok(resp) => {
                r.headers = Some(self.start.elapsed());
                r.remote_addr = resp.remote_addr();
                Ok(resp)
            }
            Err(e) => Err(Error::from_reqwest(&e)),
        }
    }

    /// The extra keys of the reply; `complete` when the body was read too
    /// (then `total` is known).
    pub fn meta(&self, complete: bool) -> Option<Box<Meta>> {
        let r = self.rec();
        let attempts = (self.retry.is_some() || self.hedge.is_some()).then_some(r.attempts.max(1));
        let timings = self.timings.then(|| {
            let t = Timings {
                queued: r.queued,
                connect: r.connect,
                headers: r.headers.unwrap_or_default(),
                total: complete.then(|| self.start.elapsed()),
                remote_addr: r.remote_addr,
            };
            let reused = r.connect.is_none();
            (t, reused)
        });
        if attempts.is_none() && timings.is_none() {
            return None;
        }
        Some(Box::new(Meta { attempts, timings }))
    }

    /// Gives the request's place in the limits back. Called before the
    /// final message, so that a caller who has its answer sees the
    /// request gone from `client_info/1` and can take its place at once.
    pub fn release(&self) {
        let slot = self.rec().slot.take();
        drop(slot);
    }

    /// Sends the final `error`: with `attempts` when retries or hedging
    /// were on, and code `queue_timeout` for a request that never left
    /// the queue.
    pub fn send_error(&self, out: &mut Replier, e: &Error) {
        self.release();
        let (queue_timed_out, attempts) = {
            let r = self.rec();
            (r.queue_timed_out, r.attempts)
        };
        if queue_timed_out {
            // No attempt was made: no count to give.
            out.error_map(|env| queue_timeout_map(env, e));
            return;
        }
        // No attempt at all (a bad URL): no count to give either.
        let with_attempts = (self.retry.is_some() || self.hedge.is_some()) && attempts > 0;
        if !with_attempts {
            out.error(e);
            return;
        }
        out.error_map(|env| {
            let k = [
                crate::atoms::code().encode(env),
                crate::atoms::reason().encode(env),
                atoms::attempts().encode(env),
            ];
            let v = [
                e.code().encode(env),
                e.reason().as_bytes().encode_binary(env),
                attempts.encode(env),
            ];
            Term::map_from_term_arrays(env, &k, &v)
                .unwrap_or_else(|_| crate::atoms::error().encode(env))
        });
    }
}

/// A request's `queue_timeout`: its own, its client's, or 5 s.
fn queue_timeout(o: &Overrides, d: &Overrides) -> Option<Duration> {
    o.queue_timeout
        .or(d.queue_timeout)
        .unwrap_or(Some(DEFAULT_QUEUE_TIMEOUT))
}

/// A request still queued when its `queue_timeout` struck, on either
/// engine: `#{code => queue_timeout, reason => ...}`.
pub struct QueueTimedOut(Error);

impl QueueTimedOut {
    fn new(host: &str, queue_timeout: Option<Duration>) -> Self {
        let ms = queue_timeout.map_or(0, |d| d.as_millis());
        QueueTimedOut(Error::new(
            Code::Unknown,
            format!("still queued for {host} after {ms} ms"),
        ))
    }
}

impl Encoder for QueueTimedOut {
    fn encode<'a>(&self, env: rustler::Env<'a>) -> Term<'a> {
        queue_timeout_map(env, &self.0)
    }
}

fn queue_timeout_map<'a>(env: rustler::Env<'a>, e: &Error) -> Term<'a> {
    let k = [
        crate::atoms::code().encode(env),
        crate::atoms::reason().encode(env),
    ];
    let v = [
        atoms::queue_timeout().encode(env),
        e.reason().as_bytes().encode_binary(env),
    ];
    Term::map_from_term_arrays(env, &k, &v).unwrap_or_else(|_| crate::atoms::error().encode(env))
}

/// `host:port` (the port the scheme implies when none is given).
fn host_key(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_carry_the_implied_port() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(host_key(&u("http://a.example/x")), "a.example:80");
        assert_eq!(host_key(&u("https://a.example/x")), "a.example:443");
        assert_eq!(host_key(&u("http://127.0.0.1:8080/")), "127.0.0.1:8080");
    }
}
