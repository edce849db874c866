//! The options of an operation, decoded once on the scheduler: the first
//! request (`req_opts()`, without streaming) and `op_opts()`.
//!
//! Shape errors are `badarg` at once; content errors of the first request
//! (a URL that does not parse, a bad header) become its final `error`, as
//! for any request.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use rustler::{Atom, Binary, Error as NifError, MapIterator, NifResult, Term};

use crate::atoms;
use crate::error::{Code, Error};
use crate::request::{decode_method, parse_url};
use crate::term::{bytes_from_iodata, decode_header_list, decode_ms, header_map};

/// `poll_interval` when neither it nor a `Retry-After` says otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// `max_wait` by default: ten minutes, as the poller document has it.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);
/// `timeout => infinity` on one request: longer than any client timeout.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The request that starts the operation.
pub struct Spec {
    pub method: reqwest::Method,
    pub checked: Result<Checked, Error>,
    /// Applies to every exchange of the operation: the first request, each
    /// poll and the result fetch.
    pub timeout: Option<Duration>,
}

pub struct Checked {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

impl Spec {
    /// Decodes `req_opts()`. `body => stream` and `response_body => stream`
    /// are `badarg`: an operation hands over complete bodies.
    pub fn decode(term: Term) -> NifResult<Self> {
        let mut method = None;
        let mut url: Option<Binary> = None;
        let mut headers = Vec::new();
        let mut body = None;
        let mut timeout = None;
        for (k, v) in term.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atoms::url() => url = Some(v.decode()?),
                k if k == atoms::method() => method = Some(decode_method(v)?),
                k if k == atoms::headers() => headers = decode_header_list(v)?,
                k if k == atoms::body() => {
                    if v.decode::<Atom>().is_ok() {
                        return Err(NifError::BadArg);
                    }
                    body = Some(v);
                }
                k if k == atoms::response_body() => {
                    if v.decode::<Atom>()? != atoms::complete() {
                        return Err(NifError::BadArg);
                    }
                }
                k if k == atoms::timeout() => timeout = Some(decode_ms(v)?.unwrap_or(FOREVER)),
                _ => return Err(NifError::BadArg),
            }
        }
        let method = method.ok_or(NifError::BadArg)?;
        let url = url.ok_or(NifError::BadArg)?;
        let checked = check(url.as_slice(), &headers, body);
        Ok(Spec {
            method,
            checked,
            timeout,
        })
    }
}

fn check(url: &[u8], headers: &[(Binary, Binary)], body: Option<Term>) -> Result<Checked, Error> {
    let url = parse_url(url)?;
    let headers = header_map(headers).map_err(|e| Error::new(Code::Request, e))?;
    let body = match body {
        None => None,
        Some(b) => Some(
            bytes_from_iodata(b).ok_or_else(|| Error::new(Code::Request, "body is not iodata"))?,
        ),
    };
    Ok(Checked { url, headers, body })
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
                    let ms: u64 = v.decode()?;
                    if ms == 0 {
                        return Err(NifError::BadArg);
                    }
                    o.poll_interval = Duration::from_millis(ms);
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
