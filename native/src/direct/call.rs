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
use super::exchange::{Answering, Exchange, Forms, Step};
use super::fd::{Fd, Interest};
use super::received::Collected;
use super::redirect::{self, Chain, Next, Template};
use super::tasks::{self, Gate, Resolver};
use super::Transport;
use crate::compose::Decoding;
use crate::error::{Code, Error};
use crate::max_body::MaxBody;
use crate::reply::Head;

/// JSON bodies up to this many bytes are decoded in the NIF call that
/// read their last byte. The decoder made 80-110 MB/s of terms from an
/// array of small objects on this machine under load (a 1.8 KB body in
/// 18 µs, 70 KB in 650 µs): 32 KB stays near a third of the 1 ms a NIF
/// call may take. Longer ones are decoded on the runtime.
const DECODE_HERE: usize = 32 * 1024;

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
    max_body: MaxBody,
}

impl Flow {
    pub(crate) fn new(
        t: Arc<Transport>,
        http: reqwest::Client,
        rt: tokio::runtime::Handle,
        gate: Arc<Gate>,
        template: Template,
        deadline: Option<Instant>,
        max_body: MaxBody,
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
            max_body,
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
                let (req, forms) = hop_request(&self.template, headers);
                self.hop = Some(Exchange::start(
                    self.t.clone(),
                    route,
                    req,
                    forms,
                    self.template.url.as_str().to_owned(),
                    Answering {
                        follows,
                        max_body: self.max_body,
                    },
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
            self.max_body,
        ));
    }

    pub(crate) fn advance(&mut self) -> Outcome {
        loop {
            let Some(hop) = &mut self.hop else {
                return Outcome::Parked;
            };
            match hop.advance() {
                Step::Done(head, body) => {
                    self.hop = None;
                    let decode = tasks::compressed(self.t.accept, &head);
                    return match body {
                        Collected::Whole(body) if !decode && !self.heavy(&head, &body) => {
                            Outcome::Reply(head, body)
                        }
                        body => {
                            let accept = decode.then_some(self.t.accept);
                            self.task = Some(tasks::complete(
                                &self.rt,
                                self.gate.clone(),
                                accept,
                                head,
                                body,
                                self.max_body,
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
                            self.max_body,
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

    /// How the answer's body is decoded (`decode => json | auto`).
    pub(crate) fn decoding(&self) -> Decoding {
        self.gate.decoding()
    }

    /// Whether the body is JSON to decode and too long to decode in a NIF
    /// call: then the runtime decodes it and answers (`tasks::complete`).
    fn heavy(&self, head: &Head, body: &Bytes) -> bool {
        body.len() > DECODE_HERE && self.gate.decoding().applies(head, body)
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
            .and_then(|l| std::str::from_utf8(l.as_bytes()).ok())
            .is_some_and(|l| Url::parse(url).is_ok_and(|u| u.join(l).is_ok()))
}

/// A hop as hyper takes it, with its target in both forms (see
/// [`Forms`]); the connection it goes on decides which.
///
/// The authority and the target are slices of the URL as it is written
/// (`host[:port]` without credentials, `path[?query]`), each parsed once.
fn hop_request(t: &Template, headers: HeaderMap) -> (hyper::Request<Body>, Forms) {
    let authority = &t.url[Position::BeforeHost..Position::AfterPort];
    let target = &t.url[Position::BeforePath..Position::AfterQuery];
    let host = if headers.contains_key(HOST) {
        None
    } else {
        HeaderValue::from_str(authority).ok()
    };
    // A parsed URL's path and query always make a valid target, and its
    // scheme, host and port a valid URI.
    let pq = PathAndQuery::from_str(target).unwrap_or_else(|_| PathAndQuery::from_static("/"));
    let absolute = hyper::Uri::builder()
        .scheme(t.url.scheme())
        .authority(authority)
        .path_and_query(pq.clone())
        .build()
        .unwrap_or_default();
    let forms = Forms {
        absolute,
        origin: hyper::Uri::from(pq),
        host,
    };
    let mut req = hyper::Request::new(Body::new(t.body.clone().unwrap_or_default()));
    *req.method_mut() = t.method.clone();
    *req.headers_mut() = headers;
    (req, forms)
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
        hop_request(&t, headers).1
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
    fn a_given_host_header_is_kept() {
        let mut given = HeaderMap::new();
        given.insert(HOST, HeaderValue::from_static("given.example"));
        assert!(forms("http://127.0.0.1:9/x", given).host.is_none());
    }
}
