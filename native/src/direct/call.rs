//! A whole direct request: its hops (redirects followed here, as reqwest
//! would), its deadlines, and the runtime task that answers instead when
//! the body is large or must be decoded, or a hop leaves this path's
//! reach.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use reqwest::header::{HeaderMap, HeaderValue, HOST, LOCATION, RETRY_AFTER};
use reqwest::Url;
use std::str::FromStr;
use url::Position;

use super::conn::Body;
use super::exchange::{Answering, Exchange, Forms, Marks, Step};
use super::fd::{Fd, Interest};
use super::received::Collected;
use super::redirect::{self, Chain, Next, Template};
use super::tasks::{self, Gate, Resolver};
use super::Transport;
use crate::compose::Decoding;
use crate::error::{Code, Error};
use crate::max_body::MaxBody;
use crate::reply::Head;
use crate::resilience::stepwise::Stepwise;

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
    /// Retries and the client's in-flight count (resilience/stepwise.rs).
    stepwise: Stepwise,
    /// With retries on: the request as first asked (redirects change
    /// `template`), its `timeout` (each attempt's own, as on the runtime),
    /// and when the next attempt is due.
    retry: Option<Box<Again>>,
    /// A hop that could not start: the answer at the next `advance`.
    failed: Option<Error>,
}

/// What the layers above the engine decided for the request: its
/// `timeout` (each attempt's), its `max_body`, and its retries.
pub(crate) struct Policy {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_body: MaxBody,
    pub(crate) stepwise: Stepwise,
}

struct Again {
    first: Template,
    timeout: Option<Duration>,
    at: Option<Instant>,
}

impl Flow {
    pub(crate) fn new(
        t: Arc<Transport>,
        http: reqwest::Client,
        rt: tokio::runtime::Handle,
        gate: Arc<Gate>,
        template: Template,
        policy: Policy,
    ) -> Self {
        let Policy {
            timeout,
            max_body,
            stepwise,
        } = policy;
        let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
        let retry = stepwise.attempts().is_some().then(|| {
            Box::new(Again {
                first: template.clone(),
                timeout,
                at: None,
            })
        });
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
            stepwise,
            retry,
            failed: None,
        };
        flow.stepwise.attempt();
        flow.start_hop();
        flow
    }

    /// After a final-looking outcome: waits for another attempt when the
    /// retry policy says so (`timeout` bounds each attempt, not the waits
    /// between them, as on the runtime). `true` when an attempt is due
    /// later.
    fn retry_later(&mut self, wait: Option<Duration>) -> bool {
        let (Some(wait), Some(again)) = (wait, self.retry.as_mut()) else {
            return false;
        };
        let Some(at) = Instant::now().checked_add(wait) else {
            return false;
        };
        again.at = Some(at);
        self.hop = None;
        true
    }

    /// Whether an attempt is due: then it is started (`advance` goes on
    /// with it).
    pub(crate) fn retry_due(&mut self, now: Instant) -> bool {
        let Some(again) = self.retry.as_mut() else {
            return false;
        };
        if again.at.is_none_or(|at| at > now) {
            return false;
        }
        again.at = None;
        self.template = again.first.clone();
        self.chain = Chain::default();
        self.deadline = again.timeout.and_then(|d| now.checked_add(d));
        self.stepwise.attempt();
        self.start_hop();
        true
    }

    /// The error of a deadline that has passed, unless the retry policy
    /// takes a timeout for another attempt (then one is due later).
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Error> {
        let e = self.expired(now)?;
        let wait = self.stepwise.after_error(&self.method(), &e);
        if self.retry_later(wait) {
            return None;
        }
        Some(e)
    }

    /// The final message's `attempts`, when retries are on.
    pub(crate) fn attempts(&self) -> Option<u32> {
        self.stepwise.attempts()
    }

    /// The next hop on this path, or on reqwest's when it leaves this
    /// path's reach.
    fn start_hop(&mut self) {
        match self.t.route(&self.template.url) {
            Some(route) => {
                let mut headers = self.chain.hop_headers(&self.template);
                self.t.add_cookies(&mut headers, &self.template.url);
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
                    Answering {
                        follows,
                        max_body: self.max_body,
                        under_timeout: self.under_timeout(),
                    },
                    self.resolver.clone(),
                ));
            }
            None => self.hand_off(),
        }
    }

    /// Whether a timeout runs over this attempt's body, as reqwest
    /// decides it: the request's own, or the client's read timeout.
    fn under_timeout(&self) -> bool {
        self.deadline.is_some() || self.t.read_timeout.is_some()
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
            self.stepwise.finish(),
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
            let step = hop.advance();
            if matches!(step, Step::Done(..) | Step::Redirect(_) | Step::Bulk) {
                let marks = hop.marks();
                self.note(marks);
            }
            match step {
                Step::Done(mut head, body) => {
                    self.hop = None;
                    let wait = self.stepwise.after_status(
                        &self.method(),
                        head.status,
                        head.headers.get(RETRY_AFTER).map(|v| v.as_bytes()),
                    );
                    if self.retry_later(wait) {
                        // The body was read (its connection is reused);
                        // it is dropped here, never copied to Erlang.
                        return Outcome::Parked;
                    }
                    head.meta = self.stepwise.meta();
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
                                (self.max_body, self.under_timeout()),
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
                        Next::Stop => {
                            let mut head = head;
                            head.meta = self.stepwise.meta();
                            return Outcome::Reply(head, Bytes::new());
                        }
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
                            self.stepwise.finish(),
                        ));
                    }
                    return Outcome::Parked;
                }
                Step::Handoff => {
                    self.hand_off();
                    return Outcome::Parked;
                }
                Step::Failed(e) => {
                    self.hop = None;
                    let wait = self.stepwise.after_error(&self.method(), &e);
                    if self.retry_later(wait) {
                        return Outcome::Parked;
                    }
                    return Outcome::Error(e);
                }
            }
        }
    }

    /// Gives the policy layer what a hop measured (`timings`).
    fn note(&mut self, m: Marks) {
        if !self.stepwise.timed() {
            return;
        }
        if let Some(d) = m.connect {
            self.stepwise.connected(d);
        }
        if let Some(at) = m.head {
            self.stepwise.head(at, m.peer);
        }
    }

    /// The method the request was made with (a redirect may change the
    /// template's; retries go by the first).
    fn method(&self) -> reqwest::Method {
        match &self.retry {
            Some(again) => again.first.method.clone(),
            None => self.template.method.clone(),
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
        let retry = self.retry.as_ref().and_then(|a| a.at);
        [self.deadline, hop, retry].into_iter().flatten().min()
    }

    /// The error of a deadline that has passed, if one has.
    pub(crate) fn expired(&self, now: Instant) -> Option<Error> {
        // Waiting between attempts: the attempt's own timeout is over.
        if self.retry.as_ref().is_some_and(|a| a.at.is_some()) {
            return None;
        }
        if self.deadline.is_some_and(|d| d <= now) {
            // In the body, reqwest's words for it (no URL), as for the
            // read timeout.
            if self.hop.as_ref().is_some_and(|h| h.in_body()) {
                return Some(crate::reasons::body_timed_out());
            }
            return Some(crate::reasons::timed_out(self.template.url.as_str()));
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
