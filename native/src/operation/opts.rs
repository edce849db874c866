//! The options of an operation, decoded once on the scheduler: the first
//! request (`req_opts()`, without streaming) and `op_opts()`.
//!
//! Shape errors are `badarg` at once; content errors of the first request
//! (a URL that does not parse, a bad header) become its final `error`, as
//! for any request.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use rustler::{Atom, Error as NifError, MapIterator, NifResult, Term};

use crate::atoms;
use crate::compose;
use crate::error::Error;
use crate::request::{self, BodyMode, RequestBody};
use crate::term::{decode_header_list, decode_int, decode_ms, header_map, MAX_TIMEOUT};

/// `poll_interval` when neither it nor a `Retry-After` says otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// `max_wait` by default: ten minutes, as the poller document has it.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);

/// The request that starts the operation.
pub struct Spec {
    pub method: reqwest::Method,
    pub checked: Result<Checked, Error>,
    /// How the result's body is decoded (compose/decode.rs).
    pub decoding: compose::Decoding,
    /// Applies to every exchange of the operation: the first request, each
    /// poll and the result fetch.
    pub timeout: Option<Duration>,
}

pub struct Checked {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Query, composed body and auth of the first request (compose.rs).
    pub compose: compose::Wire,
}

impl Spec {
    /// Decodes `req_opts()` as any request does; `body => stream` and
    /// `response_body => stream` are `badarg`: an operation hands over
    /// complete bodies; so are `retry`, `hedge`, `timings` and
    /// `queue_timeout`, which an operation's own polling does not apply.
    pub fn decode(term: Term, defaults: &compose::Defaults) -> NifResult<Self> {
        let req = request::Spec::decode_for(term, defaults)?;
        if req.upload || req.response_body == BodyMode::Stream || !req.resilience.is_empty() {
            return Err(NifError::BadArg);
        }
        let checked = req.checked.map(|c| Checked {
            url: c.url,
            headers: c.headers,
            body: match c.body {
                RequestBody::Full(b) => Some(b),
                RequestBody::Empty | RequestBody::Stream => None,
            },
            compose: c.compose,
        });
        Ok(Spec {
            method: req.method,
            decoding: req.compose.decoding(defaults),
            checked,
            timeout: req.timeout,
        })
    }
}

/// `op_opts()`: how to poll.
#[derive(Debug, Clone)]
pub struct OpOpts {
    pub poll_interval: Duration,
    /// `None` for `infinity`.
    pub max_wait: Option<Duration>,
    /// Sent with every poll and with the result fetch (the first request's
    /// headers are not: they describe its body).
    pub poll_headers: HeaderMap,
}

impl Default for OpOpts {
    fn default() -> Self {
        OpOpts {
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_wait: Some(DEFAULT_MAX_WAIT),
            poll_headers: HeaderMap::new(),
        }
    }
}

impl OpOpts {
    /// Decodes `#{poll_interval => pos_integer(), max_wait => ms | infinity,
    /// poll_headers => [header()]}`; anything else is `badarg`. A zero
    /// `poll_interval` is refused: it would poll in a tight loop.
    pub fn decode(term: Term) -> NifResult<Self> {
        let mut o = OpOpts::default();
        for (k, v) in term.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atoms::poll_interval() => {
                    let ms: u64 = decode_int(v)?;
                    if ms == 0 {
                        return Err(NifError::BadArg);
                    }
                    o.poll_interval = Duration::from_millis(ms).min(MAX_TIMEOUT);
                }
                k if k == atoms::max_wait() => o.max_wait = decode_ms(v)?,
                k if k == atoms::poll_headers() => {
                    let list = decode_header_list(v)?;
                    o.poll_headers = header_map(&list).map_err(|_| NifError::BadArg)?;
                }
                _ => return Err(NifError::BadArg),
            }
        }
        Ok(o)
    }
}
