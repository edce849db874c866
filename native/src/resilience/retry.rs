//! Retries: which outcomes are retried ([`RetryPolicy::classify`]), how long
//! to wait before the next attempt (exponential backoff with full jitter,
//! or the server's `Retry-After`), and the per-host [`Budget`] that keeps
//! retries from multiplying the load during an outage.
//!
//! Pure logic: no I/O here, so that every rule is unit-tested below.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use rustler::{Atom, Error as NifError, MapIterator, NifResult, Term};

use super::atoms;
use crate::error::{Cause, Code};
use crate::term::{decode_int, decode_list, decode_ms};

/// Which methods may be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Methods {
    /// GET, HEAD, OPTIONS, PUT, DELETE and TRACE (RFC 9110's idempotent ones).
    Idempotent,
    All,
    Only(Vec<Method>),
}

impl Methods {
    pub fn allows(&self, m: &Method) -> bool {
        match self {
            Methods::Idempotent => is_idempotent(m),
            Methods::All => true,
            Methods::Only(list) => list.contains(m),
        }
    }
}

pub fn is_idempotent(m: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(m)
}

/// `budget => #{ratio, min_per_sec}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries allowed per request sent (0.2: at most 20% more requests).
    pub ratio: f64,
    /// Retries allowed each second whatever the ratio says.
    pub min_per_sec: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_sec: 10,
        }
    }
}

/// A decoded `retry => #{...}` map; defaults are those of guides/resilience.md.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub methods: Methods,
    pub statuses: Vec<u16>,
    pub retry_connect: bool,
    pub retry_timeout: bool,
    /// Only a refused connect (`connect` covers it and more).
    pub retry_refused: bool,
    /// A connection that closed before a whole response came.
    pub retry_closed: bool,
    pub base: Duration,
    pub max: Duration,
    pub max_retry_after: Duration,
    pub budget: Option<BudgetConfig>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            methods: Methods::Idempotent,
            statuses: vec![408, 429, 500, 502, 503, 504],
            retry_connect: true,
            retry_timeout: true,
            retry_refused: false,
            retry_closed: false,
            base: Duration::from_millis(500),
            max: Duration::from_millis(30_000),
            max_retry_after: Duration::from_millis(60_000),
            budget: Some(BudgetConfig::default()),
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the outcome to the caller.
    Done,
    /// Try again, after the server's `Retry-After` if it gave one.
    Retry { after: Option<Duration> },
}

/// One attempt's outcome, as far as the policy cares.
pub enum Outcome<'a> {
    Status(u16, Option<&'a [u8]>),
    Failed(Code, Cause),
}

impl RetryPolicy {
    /// `false` (no retries), `true` (the defaults) or a map of overrides.
    pub fn decode(t: Term) -> NifResult<Option<Self>> {
        if let Ok(b) = t.decode::<bool>() {
            return Ok(b.then(RetryPolicy::default));
        }
        let mut p = RetryPolicy::default();
        for (k, v) in t.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atoms::max_retries() => p.max_retries = decode_int(v)?,
                k if k == atoms::methods() => p.methods = decode_methods(v)?,
                k if k == atoms::statuses() => {
                    p.statuses = decode_list(v)?
                        .into_iter()
                        .map(|s| decode_int::<u16>(s).and_then(status))
                        .collect::<NifResult<_>>()?
                }
                k if k == atoms::errors() => {
                    (p.retry_connect, p.retry_timeout) = (false, false);
                    (p.retry_refused, p.retry_closed) = (false, false);
                    for e in decode_list(v)? {
                        match e.decode::<Atom>()? {
                            a if a == crate::atoms::connect() => p.retry_connect = true,
                            a if a == crate::atoms::timeout() => p.retry_timeout = true,
                            a if a == atoms::refused() => p.retry_refused = true,
                            a if a == atoms::closed() => p.retry_closed = true,
                            _ => return Err(NifError::BadArg),
                        }
                    }
                }
                k if k == atoms::base() => p.base = finite_ms(v)?,
                k if k == atoms::max() => p.max = finite_ms(v)?,
                k if k == atoms::max_retry_after() => p.max_retry_after = finite_ms(v)?,
                k if k == atoms::budget() => p.budget = decode_budget(v)?,
                _ => return Err(NifError::BadArg),
            }
        }
        Ok(Some(p))
    }

    /// Whether `outcome` of an attempt is retried (ignoring how many
    /// retries are left and the budget, which the caller checks).
    pub fn classify(&self, outcome: Outcome) -> Verdict {
        match outcome {
            Outcome::Status(s, retry_after) if self.statuses.contains(&s) => {
                match retry_after.map(|v| parse_retry_after(v, SystemTime::now())) {
                    // Unparseable: as if absent.
                    None | Some(None) => Verdict::Retry { after: None },
                    Some(Some(d)) if d <= self.max_retry_after => Verdict::Retry { after: Some(d) },
                    // The server wants longer than we may wait: its answer stands.
                    Some(Some(_)) => Verdict::Done,
                }
            }
            Outcome::Status(..) => Verdict::Done,
            Outcome::Failed(Code::Connect, _) if self.retry_connect => {
                Verdict::Retry { after: None }
            }
            Outcome::Failed(Code::Timeout, _) if self.retry_timeout => {
                Verdict::Retry { after: None }
            }
            // Never a cancel, whatever caused it.
            Outcome::Failed(Code::Cancelled, _) => Verdict::Done,
            Outcome::Failed(_, Cause::Refused) if self.retry_refused => {
                Verdict::Retry { after: None }
            }
            Outcome::Failed(_, Cause::Closed) if self.retry_closed => {
                Verdict::Retry { after: None }
            }
            Outcome::Failed(..) => Verdict::Done,
        }
    }

    /// The wait before retry number `retry` (1 for the first): uniform in
    /// `[0, min(max, base * 2^(retry-1))]` ("full jitter").
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let cap = self.backoff_cap(retry);
        cap.mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(31));
        self.base.saturating_mul(factor).min(self.max)
    }
}

fn status(s: u16) -> NifResult<u16> {
    if (100..=599).contains(&s) {
        Ok(s)
    } else {
        Err(NifError::BadArg)
    }
}

fn finite_ms(t: Term) -> NifResult<Duration> {
    decode_ms(t)?.ok_or(NifError::BadArg)
}

fn decode_methods(t: Term) -> NifResult<Methods> {
    if let Ok(a) = t.decode::<Atom>() {
        return match a {
            a if a == crate::atoms::all() => Ok(Methods::All),
            a if a == atoms::idempotent() => Ok(Methods::Idempotent),
            _ => Err(NifError::BadArg),
        };
    }
    let list = decode_list(t)?
        .into_iter()
        .map(crate::request::decode_method)
        .collect::<NifResult<_>>()?;
    Ok(Methods::Only(list))
}

fn decode_budget(t: Term) -> NifResult<Option<BudgetConfig>> {
    if let Ok(b) = t.decode::<bool>() {
        return Ok(b.then(BudgetConfig::default));
    }
    let mut c = BudgetConfig::default();
    for (k, v) in t.decode::<MapIterator>()? {
        match k.decode::<Atom>()? {
            k if k == atoms::ratio() => {
                let r = v
                    .decode::<f64>()
                    .or_else(|_| v.decode::<u64>().map(|i| i as f64))?;
                if !(0.0..=1000.0).contains(&r) {
                    return Err(NifError::BadArg);
                }
                c.ratio = r;
            }
            k if k == atoms::min_per_sec() => c.min_per_sec = decode_int(v)?,
            _ => return Err(NifError::BadArg),
        }
    }
    Ok(Some(c))
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a
/// date in the past is no wait. `None` when it is neither.
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly many digits: longer than anyone waits.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A per-host retry budget: each request deposits `ratio` of a retry, each
/// retry takes one whole one; besides, up to `min_per_sec` retries a second
/// are always allowed, so that a quiet host can still retry.
#[derive(Debug)]
pub struct Budget {
    balance: f64,
    window_start: Instant,
    window_used: u32,
}

/// Unused credit is capped at the deposits of this many requests, so that
/// a long quiet spell does not pay for a storm of retries later.
const CREDIT_REQUESTS: f64 = 100.0;

impl Budget {
    pub fn new(now: Instant) -> Self {
        Budget {
            balance: 0.0,
            window_start: now,
            window_used: 0,
        }
    }

    pub fn deposit(&mut self, c: &BudgetConfig) {
        self.balance = (self.balance + c.ratio).min(c.ratio * CREDIT_REQUESTS);
    }

    /// Takes one retry if there is one to take.
    pub fn withdraw(&mut self, c: &BudgetConfig, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_used = 0;
        }
        if self.window_used < c.min_per_sec {
            self.window_used += 1;
            return true;
        }
        // A little slack for the float sum of ratios (5 x 0.2 < 1.0).
        if self.balance >= 1.0 - 1e-9 {
            self.balance -= 1.0;
            return true;
        }
        false
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // std's hasher keys are random per process and per thread.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1
}

/// A uniform number in `[0, 1)` for the jitter (xorshift64*: statistical
/// quality is all that matters here, not unpredictability).
pub fn unit_random() -> f64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_retry_the_transient_statuses_only() {
        let p = RetryPolicy::default();
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                p.classify(Outcome::Status(s, None)),
                Verdict::Retry { after: None }
            );
        }
        for s in [200, 201, 301, 400, 404, 501] {
            assert_eq!(p.classify(Outcome::Status(s, None)), Verdict::Done);
        }
    }

    #[test]
    fn errors_retried_are_connect_and_timeout_never_cancelled() {
        let p = RetryPolicy::default();
        let retry = Verdict::Retry { after: None };
        assert_eq!(
            p.classify(Outcome::Failed(Code::Connect, Cause::Other)),
            retry
        );
        assert_eq!(
            p.classify(Outcome::Failed(Code::Timeout, Cause::Other)),
            retry
        );
        for c in [Code::Cancelled, Code::Body, Code::Request, Code::Url] {
            assert_eq!(p.classify(Outcome::Failed(c, Cause::Other)), Verdict::Done);
            // Closed or refused count only when asked for.
            assert_eq!(p.classify(Outcome::Failed(c, Cause::Closed)), Verdict::Done);
        }
        let no_timeouts = RetryPolicy {
            retry_timeout: false,
            ..RetryPolicy::default()
        };
        assert_eq!(
            no_timeouts.classify(Outcome::Failed(Code::Timeout, Cause::Other)),
            Verdict::Done
        );
    }

    /// Req's `:safe_transient` errors: a refused or closed connection and
    /// a timeout, but not any other connect failure (a name that does not
    /// resolve, a certificate that does not verify), never a cancel.
    #[test]
    fn refused_and_closed_without_connect() {
        let p = RetryPolicy {
            retry_connect: false,
            retry_refused: true,
            retry_closed: true,
            ..RetryPolicy::default()
        };
        let retry = Verdict::Retry { after: None };
        assert_eq!(
            p.classify(Outcome::Failed(Code::Connect, Cause::Refused)),
            retry
        );
        assert_eq!(
            p.classify(Outcome::Failed(Code::Request, Cause::Closed)),
            retry
        );
        assert_eq!(
            p.classify(Outcome::Failed(Code::Connect, Cause::Closed)),
            retry
        );
        assert_eq!(
            p.classify(Outcome::Failed(Code::Connect, Cause::Other)),
            Verdict::Done
        );
        assert_eq!(
            p.classify(Outcome::Failed(Code::Cancelled, Cause::Closed)),
            Verdict::Done
        );
    }

    #[test]
    fn retry_after_is_obeyed_up_to_the_limit() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.classify(Outcome::Status(429, Some(b"2"))),
            Verdict::Retry {
                after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(p.classify(Outcome::Status(503, Some(b"61"))), Verdict::Done);
        assert_eq!(
            p.classify(Outcome::Status(503, Some(b"soon"))),
            Verdict::Retry { after: None }
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let s = |v: &str| parse_retry_after(v.as_bytes(), now);
        assert_eq!(s("0"), Some(Duration::ZERO));
        assert_eq!(s(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            s("Sun, 06 Nov 1994 08:49:40 GMT"),
            Some(Duration::from_secs(3))
        );
        // RFC 850 and asctime, which recipients must accept too.
        assert_eq!(
            s("Sunday, 06-Nov-94 08:49:41 GMT"),
            Some(Duration::from_secs(4))
        );
        assert_eq!(s("Sun Nov  6 08:49:42 1994"), Some(Duration::from_secs(5)));
        assert_eq!(s("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(s("-1"), None);
        assert_eq!(s("1.5"), None);
        assert_eq!(s(""), None);
        assert_eq!(
            s("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after(b"\xff\xfe", now), None);
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        let caps: Vec<u128> = (1..=6).map(|n| p.backoff_cap(n).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 7.0), Duration::from_millis(400));
        assert_eq!(p.backoff_cap(u32::MAX), Duration::from_millis(1000));
        // Random draws stay in bounds and are spread over the range.
        let draws: Vec<Duration> = (0..2000).map(|_| p.backoff(2, unit_random())).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(200)));
        let low = draws
            .iter()
            .filter(|d| **d < Duration::from_millis(100))
            .count();
        assert!(
            (800..1200).contains(&low),
            "{low} of 2000 in the lower half"
        );
    }

    #[test]
    fn unit_random_is_in_range() {
        for _ in 0..10_000 {
            let u = unit_random();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn budget_holds_retries_to_the_ratio_when_everything_fails() {
        let c = BudgetConfig {
            ratio: 0.2,
            min_per_sec: 0,
        };
        let now = Instant::now();
        let mut b = Budget::new(now);
        let mut retries = 0;
        for _ in 0..1000 {
            b.deposit(&c);
            // Every request fails and asks for up to three retries.
            for _ in 0..3 {
                if b.withdraw(&c, now) {
                    retries += 1;
                }
            }
        }
        assert_eq!(retries, 200);
    }

    #[test]
    fn budget_floor_allows_min_per_sec_each_second() {
        let c = BudgetConfig {
            ratio: 0.0,
            min_per_sec: 10,
        };
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        let first: usize = (0..50).filter(|_| b.withdraw(&c, t0)).count();
        assert_eq!(first, 10);
        let later = t0 + Duration::from_millis(1001);
        let second: usize = (0..50).filter(|_| b.withdraw(&c, later)).count();
        assert_eq!(second, 10);
    }

    #[test]
    fn budget_credit_is_capped() {
        let c = BudgetConfig {
            ratio: 0.5,
            min_per_sec: 0,
        };
        let now = Instant::now();
        let mut b = Budget::new(now);
        for _ in 0..10_000 {
            b.deposit(&c);
        }
        let burst: usize = (0..1000).filter(|_| b.withdraw(&c, now)).count();
        assert_eq!(burst, 50);
    }

    #[test]
    fn methods() {
        assert!(Methods::Idempotent.allows(&Method::PUT));
        assert!(!Methods::Idempotent.allows(&Method::POST));
        assert!(!Methods::Idempotent.allows(&Method::PATCH));
        assert!(Methods::All.allows(&Method::POST));
        assert!(Methods::Only(vec![Method::POST]).allows(&Method::POST));
        assert!(!Methods::Only(vec![Method::POST]).allows(&Method::GET));
    }
}
