//! reqwest's words for the failures the scheduler engine finds itself.
//!
//! The runtime engine's reasons are reqwest's errors with their source
//! chains ([`crate::error::Error::from_reqwest`]); 0.2.5 code saw those
//! texts. The scheduler engine meets the same failures without reqwest's
//! error types around them, so each one is built here, with the layers
//! reqwest (on hyper-util and hyper) puts around it, and a reason is the
//! same text whichever engine answered. `erqwest_pipeline_SUITE`'s
//! `reason_texts` group compares the two engines case by case.

use std::error::Error as StdError;
use std::io;

use crate::error::{extend, Cause, Code, Error};

/// reqwest's outer layer for a request that failed before its response.
fn sending(url: &str) -> String {
    format!("error sending request for url ({url})")
}

/// hyper-util's layer for a failure while connecting.
fn connecting(url: &str) -> String {
    format!("{}: client error (Connect)", sending(url))
}

/// The request's own `timeout` passed before the response's head.
pub(crate) fn timed_out(url: &str) -> Error {
    Error::new(
        Code::Timeout,
        format!("{}: operation timed out", sending(url)),
    )
}

/// `connect_timeout` passed while connecting, outside the TCP connect
/// (a name being looked up, a TLS handshake): reqwest's own timer
/// around the whole connect.
pub(crate) fn connect_timed_out(url: &str) -> Error {
    Error::new(
        Code::Timeout,
        format!("{}: operation timed out", connecting(url)),
    )
}

/// `connect_timeout` passed during the TCP connect itself: hyper-util's
/// timer around it (tokio's `Elapsed`), which fires before reqwest's.
pub(crate) fn tcp_connect_timed_out(url: &str) -> Error {
    Error::new(
        Code::Timeout,
        format!(
            "{}: tcp connect error: deadline has elapsed",
            connecting(url)
        ),
    )
}

/// The TCP connect failed (refused, unreachable, ...).
pub(crate) fn tcp_connect(url: &str, e: &io::Error) -> Error {
    Error::new(
        Code::Connect,
        extend(format!("{}: tcp connect error", connecting(url)), Some(e)),
    )
    .with_cause(Cause::of(e))
}

/// The name did not resolve: hyper-util's "dns error" around reqwest's
/// resolver's "error resolving DNS" around the system's answer.
pub(crate) fn dns(url: &str, e: &io::Error) -> Error {
    Error::new(
        Code::Connect,
        extend(
            format!("{}: dns error: error resolving DNS", connecting(url)),
            Some(e),
        ),
    )
}

/// The TLS handshake failed (tokio-rustls's error inside hyper-util's).
/// No cause: the runtime engine finds none in its chain either (a server
/// that closes in the handshake is not retried as `closed` on it).
pub(crate) fn handshake(url: &str, e: &io::Error) -> Error {
    Error::new(Code::Connect, extend(connecting(url), Some(e)))
}

/// hyper failed the exchange before the response's head (the server
/// closed, sent a head that does not parse or is too large): hyper-util's
/// "SendRequest" layer around hyper's error and its sources.
pub(crate) fn send_request(url: &str, e: &hyper::Error) -> Error {
    let code = if e.is_timeout() {
        Code::Timeout
    } else {
        Code::Request
    };
    Error::new(
        code,
        extend(
            format!("{}: client error (SendRequest)", sending(url)),
            Some(e),
        ),
    )
    .with_cause(Cause::of(e))
}

/// Writing the request failed outside hyper (a write held back by the
/// engine's cork).
pub(crate) fn write_failed(url: &str, e: &io::Error) -> Error {
    Error::new(Code::Request, extend(sending(url), Some(e)))
}

/// Reading or decoding the response body failed: reqwest's decode error
/// around the cause and its sources; when a timeout runs over the body
/// (`under_timeout`: the request's own or a read timeout), reqwest's timeout
/// wrapper puts its body error between the two.
pub(crate) fn body(e: &(dyn StdError + 'static), under_timeout: bool) -> Error {
    let outer = if under_timeout {
        "error decoding response body: request or response body error"
    } else {
        "error decoding response body"
    };
    Error::new(Code::Body, extend(outer.to_string(), Some(e)))
}

/// The read timeout passed in the body: reqwest says it without a URL.
pub(crate) fn body_timed_out() -> Error {
    Error::new(
        Code::Timeout,
        "error decoding response body: request or response body error: operation timed out",
    )
}

/// More redirects than the policy allows; `url` is the last one followed.
pub(crate) fn too_many_redirects(url: &str) -> Error {
    Error::new(
        Code::Redirect,
        format!("error following redirect for url ({url}): too many redirects"),
    )
}

/// A redirect to a scheme other than HTTP(S).
pub(crate) fn scheme_not_allowed(url: &str) -> Error {
    Error::new(
        Code::Unknown,
        format!("builder error for url ({url}): URL scheme is not allowed"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_reads_as_hyper_utils_connect_error() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let r = tcp_connect("http://h/", &e);
        assert_eq!(r.code(), Code::Connect);
        assert_eq!(r.cause(), Cause::Refused);
        assert!(r.reason().starts_with(
            "error sending request for url (http://h/): client error (Connect): tcp connect error: "
        ));
    }

    #[test]
    fn a_body_error_has_the_timeout_layer_only_under_a_timeout() {
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "cut");
        assert_eq!(
            body(&e, true).reason(),
            "error decoding response body: request or response body error: cut"
        );
        assert_eq!(
            body(&e, false).reason(),
            "error decoding response body: cut"
        );
    }

    #[test]
    fn dns_names_reqwests_resolver() {
        let e = io::Error::other("no such name");
        assert_eq!(
            dns("http://x.invalid/", &e).reason(),
            "error sending request for url (http://x.invalid/): client error (Connect): \
             dns error: error resolving DNS: no such name"
        );
    }
}
