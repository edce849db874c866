//! A whole direct request: its hops (redirects followed here, as reqwest
//! would), its deadlines, and the runtime task that answers instead when
//! the body is large or must be decoded, or a hop leaves this path's
//! reach.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use reqwest::header::{HeaderMap, HeaderValue, HOST, LOCATION};
use reqwest::Url;
use std::str::FromStr;
use url::Position;

use super::conn::Body;
use super::exchange::{Exchange, Forms, Step};
use super::fd::{Fd, Interest};
use super::received::Collected;
use super::redirect::{self, Chain, Next, Template};
use super::tasks::{self, Gate, Resolver};
use super::Transport;
use crate::error::{Code, Error};
use crate::reply::Head;

pub(crate) enum Outcome {
    Reply(Head, Bytes),
    Error(Error),
    Wait(Interest, Arc<Fd>),
    /// Call again at once.
    Again,
    /// A runtime task answers (or wakes the process) by message.
    Parked,
}

pub(crate) struct Flow {
    t: Arc<Transport>,
    http: reqwest::Client,
    rt: tokio::runtime::Handle,
    gate: Arc<Gate>,
    resolver: Arc<Resolver>,
    template: Template,
    chain: Chain,
    hop: Option<Exchange>,
    task: Option<tokio::task::AbortHandle>,
    deadline: Option<Instant>,
    /// A hop that could not start: the answer at the next `advance`.
    failed: Option<Error>,
}

impl Flow {
    pub(crate) fn new(
        t: Arc<Transport>,
        http: reqwest::Client,
        rt: tokio::runtime::Handle,
        gate: Arc<Gate>,
        template: Template,
        deadline: Option<Instant>,
    ) -> Self {
        let resolver = Arc::new(Resolver {
            rt: rt.clone(),
            gate: gate.clone(),
            transport: t.clone(),
        });
        let mut flow = Flow {
            t,
            http,
            rt,
            gate,
            resolver,
            template,
            chain: Chain::default(),
            hop: None,
            task: None,
            deadline,
            failed: None,
        };
        flow.start_hop();
        flow
    }

    /// The next hop on this path, or on reqwest's when it leaves this
    /// path's reach.
    fn start_hop(&mut self) {
        match self.t.route(&self.template.url) {
            Some(route) => {
                let headers = self.chain.hop_headers(&self.template);
                let (req, forms) = match hop_request(&self.template, headers) {
                    Ok(hop) => hop,
                    Err(e) => {
                        self.failed = Some(e);
                        return;
                    }
                };
                self.hop = Some(Exchange::start(
                    self.t.clone(),
                    route,
                    req,
                    forms,
                    self.template.url.as_str().to_owned(),
                    follows,
                    self.resolver.clone(),
                ));
            }
            None => self.hand_off(),
        }
    }

    /// The rest of the request goes through reqwest.
    fn hand_off(&mut self) {
        let headers = self.chain.hop_headers(&self.template);
        self.hop = None;
        self.task = Some(tasks::handoff(
            &self.rt,
            self.gate.clone(),
            self.http.clone(),
            self.template.clone(),
            headers,
        ));
    }

    pub(crate) fn advance(&mut self) -> Outcome {
        loop {
            if let Some(e) = self.failed.take() {
                return Outcome::Error(e);
            }
            let Some(hop) = &mut self.hop else {
                return Outcome::Parked;
            };
            match hop.advance() {
                Step::Done(head, body) => {
                    self.hop = None;
                    let decode = tasks::compressed(self.t.accept, &head);
                    return match body {
                        Collected::Whole(body) if !decode => Outcome::Reply(head, body),
                        body => {
                            let accept = decode.then_some(self.t.accept);
                            self.task = Some(tasks::complete(
                                &self.rt,
                                self.gate.clone(),
                                accept,
                                head,
                                body,
                            ));
                            Outcome::Parked
                        }
                    };
                }
                Step::Redirect(head) => {
                    self.hop = None;
                    match self.chain.next(
                        self.t.redirects,
                        head.status,
                        &head.headers,
                        &mut self.template,
                    ) {
                        // (`failed` is seen at the top of the loop.)
                        Next::Follow => self.start_hop(),
                        // `follows` said it would be followed.
                        Next::Stop => return Outcome::Reply(head, Bytes::new()),
                        Next::Error(e) => return Outcome::Error(e),
                    }
                }
                Step::Again => return Outcome::Again,
                Step::Wait(i, fd) => return Outcome::Wait(i, fd),
                Step::Parked => return Outcome::Parked,
                Step::Bulk => {
                    if let Some(hop) = self.hop.take() {
                        self.task = Some(super::bulk::spawn(
                            &self.rt,
                            self.gate.clone(),
                            self.t.accept,
                            hop,
                        ));
                    }
                    return Outcome::Parked;
                }
                Step::Handoff => {
                    self.hand_off();
                    return Outcome::Parked;
                }
                Step::Failed(e) => return Outcome::Error(e),
            }
        }
    }

    /// The nearest deadline: the whole request's, or its hop's own.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let hop = self.hop.as_ref().and_then(|h| h.deadline());
        match (self.deadline, hop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The error of a deadline that has passed, if one has.
    pub(crate) fn expired(&self, now: Instant) -> Option<Error> {
        if self.deadline.is_some_and(|d| d <= now) {
            return Some(Error::new(
                Code::Timeout,
                format!(
                    "error sending request for url ({}): operation timed out",
                    self.template.url
                ),
            ));
        }
        self.hop.as_ref().and_then(|h| h.expired(now))
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        // Nothing more reaches the process, and no task is left behind.
        self.gate.close();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn follows(t: &Transport, status: u16, headers: &HeaderMap, url: &str) -> bool {
    redirect::may_follow(t.redirects, status)
        && headers
            .get(LOCATION)
            .is_some_and(|l| Url::parse(url).is_ok_and(|u| redirect::resolve(&u, l).is_some()))
}

/// A hop as hyper takes it, with its target in both forms (see
/// [`Forms`]); the connection it goes on decides which.
///
/// The authority and the target are slices of the URL as it is written
/// (`host[:port]` without credentials, `path[?query]`), each parsed once.
/// A URL they do not make a valid target of (none that `parse_url` or
/// `redirect::resolve` let through) is an error: never another target.
fn hop_request(t: &Template, headers: HeaderMap) -> Result<(hyper::Request<Body>, Forms), Error> {
    let authority = &t.url[Position::BeforeHost..Position::AfterPort];
    let target = &t.url[Position::BeforePath..Position::AfterQuery];
    let host = if headers.contains_key(HOST) {
        None
    } else {
        HeaderValue::from_str(authority).ok()
    };
    let invalid = |e: &dyn std::fmt::Display| {
        Error::new(
            Code::Url,
            format!("URL is not a valid request target ({e}): {}", t.url),
        )
    };
    let pq = PathAndQuery::from_str(target).map_err(|e| invalid(&e))?;
    let absolute = hyper::Uri::builder()
        .scheme(t.url.scheme())
        .authority(authority)
        .path_and_query(pq.clone())
        .build()
        .map_err(|e| invalid(&e))?;
    let forms = Forms {
        absolute,
        origin: hyper::Uri::from(pq),
        host,
    };
    let mut req = hyper::Request::new(Body::new(t.body.clone().unwrap_or_default()));
    *req.method_mut() = t.method.clone();
    *req.headers_mut() = headers;
    Ok((req, forms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;

    fn forms(url: &str, headers: HeaderMap) -> Forms {
        let t = Template {
            method: Method::GET,
            url: Url::parse(url).expect("url"),
            headers: HeaderMap::new(),
            body: None,
        };
        hop_request(&t, headers).expect("hop").1
    }

    #[test]
    fn a_hop_takes_authority_and_target_from_the_url_as_written() {
        let f = forms("http://u:p@[::1]:8080/a/b?c=1&d=%20#frag", HeaderMap::new());
        assert_eq!(f.origin, "/a/b?c=1&d=%20");
        assert_eq!(f.absolute, "http://[::1]:8080/a/b?c=1&d=%20");
        assert_eq!(
            f.host.as_ref().map(|h| h.as_bytes()),
            Some(&b"[::1]:8080"[..])
        );
    }

    #[test]
    fn a_default_port_is_left_out_and_an_empty_path_is_a_slash() {
        let f = forms("https://Example.COM:443", HeaderMap::new());
        assert_eq!(f.origin, "/");
        assert_eq!(f.absolute, "https://example.com/");
        assert_eq!(
            f.host.as_ref().map(|h| h.as_bytes()),
            Some(&b"example.com"[..])
        );
    }

    #[test]
    fn a_target_too_long_is_an_error_not_another_target() {
        let t = Template {
            method: Method::GET,
            url: Url::parse(&format!("http://h/{}", "a".repeat(70000))).expect("url"),
            headers: HeaderMap::new(),
            body: None,
        };
        let e = hop_request(&t, HeaderMap::new()).err().map(|e| e.code());
        assert_eq!(e, Some(Code::Url));
    }

    #[test]
    fn a_given_host_header_is_kept() {
        let mut given = HeaderMap::new();
        given.insert(HOST, HeaderValue::from_static("given.example"));
        assert!(forms("http://127.0.0.1:9/x", given).host.is_none());
    }
}
