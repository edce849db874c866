//! The one place where a failure becomes an `err()` code.
//!
//! Every error that reaches Erlang is an [`Error`]: a [`Code`] that callers
//! match on and a human-readable reason. reqwest's errors are classified in
//! [`Error::from_reqwest`] and nowhere else, so that a given failure always
//! maps to the same code.

use std::fmt;

use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::term::EncodeBinary;

/// The `code` of an `err()` map, as listed in the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Timeout,
    Redirect,
    Url,
    Connect,
    Request,
    Body,
    Cancelled,
    Unknown,
    /// A long-running operation ended in failure (operation.rs).
    OperationFailed,
    /// The server canceled a long-running operation (operation.rs).
    OperationCanceled,
    /// A complete body passed `max_body` (max_body.rs); the error carries
    /// the limit.
    BodyTooLarge,
}

/// A failure of one request, ready to be sent as `#{code := _, reason := _}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: Code,
    reason: String,
    /// The `limit` of a `body_too_large` error, in bytes.
    limit: Option<u64>,
    /// What a retry policy asks beyond the code (never sent to Erlang).
    cause: Cause,
}

impl Error {
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Error {
            code,
            reason: reason.into(),
            limit: None,
            cause: Cause::Other,
        }
    }

    /// The same error, known to have this cause.
    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = cause;
        self
    }

    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// A complete response body would hold more than `limit` bytes.
    pub fn body_too_large(limit: u64) -> Self {
        Error {
            code: Code::BodyTooLarge,
            reason: format!("the response body is larger than max_body ({limit} bytes)"),
            limit: Some(limit),
            cause: Cause::Other,
        }
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn cancelled(reason: &str) -> Self {
        Error::new(Code::Cancelled, reason)
    }

    /// Classifies a reqwest error. Order matters: a timeout while connecting
    /// is a `timeout`, not a `connect`, because that is what callers retry on.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        let code = if e.is_timeout() || has_io_kind(e, std::io::ErrorKind::TimedOut) {
            Code::Timeout
        } else if e.is_redirect() {
            Code::Redirect
        } else if e.is_connect() {
            Code::Connect
        } else if e.is_body() || e.is_decode() {
            Code::Body
        } else if e.is_request() {
            Code::Request
        } else {
            Code::Unknown
        };
        Error::new(code, chain(e)).with_cause(Cause::of(e))
    }
}

/// Why a request failed before its response, finer than its [`Code`]:
/// what retry policies that follow Req's `:safe_transient` ask about (a
/// refused connect is worth another try; a name that does not resolve or a
/// certificate that does not verify is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The peer refused the connection.
    Refused,
    /// The connection closed or was reset before a whole response came.
    Closed,
    Other,
}

impl Cause {
    /// The cause found in an error's source chain (an io error's kind, or
    /// hyper's incomplete message).
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Cause {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(inner) = cur {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as K;
                match io.kind() {
                    K::ConnectionRefused => return Cause::Refused,
                    K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::UnexpectedEof => return Cause::Closed,
                    _ => {}
                }
            }
            if let Some(h) = inner.downcast_ref::<hyper::Error>() {
                if h.is_incomplete_message() || h.is_closed() {
                    return Cause::Closed;
                }
            }
            cur = inner.source();
        }
        Cause::Other
    }
}

/// reqwest's `Display` stops at the outermost layer ("error sending
/// request"); the useful part is usually further down the source chain.
fn chain(e: &dyn std::error::Error) -> String {
    extend(e.to_string(), e.source())
}

/// `s` followed by each error of a source chain that it does not say
/// already, joined by ": " (how every reason text is built, so that the
/// scheduler engine's read as reqwest's do).
pub(crate) fn extend(mut s: String, first: Option<&dyn std::error::Error>) -> String {
    let mut cur = first;
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = inner.source();
    }
    s
}

fn has_io_kind(e: &dyn std::error::Error, kind: std::io::ErrorKind) -> bool {
    let mut cur = e.source();
    while let Some(inner) = cur {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.kind() == kind {
                return true;
            }
        }
        cur = inner.source();
    }
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.reason)
    }
}

impl Encoder for Code {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Code::Timeout => atoms::timeout(),
            Code::Redirect => atoms::redirect(),
            Code::Url => atoms::url(),
            Code::Connect => atoms::connect(),
            Code::Request => atoms::request(),
            Code::Body => atoms::body(),
            Code::Cancelled => atoms::cancelled(),
            Code::Unknown => atoms::unknown(),
            Code::OperationFailed => atoms::operation_failed(),
            Code::OperationCanceled => atoms::operation_canceled(),
            Code::BodyTooLarge => atoms::body_too_large(),
        }
        .encode(env)
    }
}

impl Encoder for Error {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let mut keys = vec![atoms::code().encode(env), atoms::reason().encode(env)];
        let mut values = vec![
            self.code.encode(env),
            self.reason.as_bytes().encode_binary(env),
        ];
        if let Some(limit) = self.limit {
            keys.push(atoms::limit().encode(env));
            values.push(limit.encode(env));
        }
        Term::map_from_term_arrays(env, &keys, &values)
            .unwrap_or_else(|_| atoms::error().encode(env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_follows_the_source_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(Wrapped(inner));
        let s = chain(&outer);
        assert!(s.contains("wrapped"), "{s}");
        assert!(s.contains("refused"), "{s}");
    }

    #[test]
    fn timed_out_io_source_is_found() {
        let inner = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let outer = std::io::Error::other(Wrapped(inner));
        assert!(has_io_kind(&outer, std::io::ErrorKind::TimedOut));
        assert!(!has_io_kind(&outer, std::io::ErrorKind::ConnectionReset));
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
