//! What reqwest does with a redirect, for the direct path: the same
//! statuses, method and body changes, header removals, `Referer` and limit
//! (reqwest 0.13 with tower-http's follow-redirect layer), so that a chain
//! followed here looks the same on the wire and in the answer.

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE,
    LOCATION, PROXY_AUTHORIZATION, REFERER, TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};

use crate::config::Redirects;
use crate::error::Error;
use crate::reasons;

/// A request as it goes out on each hop (the `host` header is added per hop).
#[derive(Clone)]
pub(crate) struct Template {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    /// `None`: no body at all (not an empty one).
    pub(crate) body: Option<Bytes>,
}

/// The URLs of the chain so far, for the limit and the `Referer`.
#[derive(Default)]
pub(crate) struct Chain {
    previous: Vec<Url>,
}

pub(crate) enum Next {
    /// The response is the answer.
    Stop,
    /// The next hop: the template (changed in place) goes to its new URL.
    Follow,
    Error(Error),
}

/// The next hop's URL for a `Location`, as tower-http's follow-redirect
/// (reqwest's) resolves it: joined onto the current URL, and only when
/// the result is also an http `Uri`, which holds at most 65,534 bytes.
/// Otherwise the redirect is not followed and the response is the answer.
pub(crate) fn resolve(base: &Url, location: &HeaderValue) -> Option<Url> {
    let next = base
        .join(std::str::from_utf8(location.as_bytes()).ok()?)
        .ok()?;
    http::Uri::try_from(next.as_str()).ok()?;
    Some(next)
}

/// Whether a response with this status may be followed at all; the body of
/// one that is followed is not read.
pub(crate) fn may_follow(policy: Redirects, status: u16) -> bool {
    policy != Redirects::None && matches!(status, 301 | 302 | 303 | 307 | 308)
}

impl Chain {
    /// Decides on a response's redirect and, when it is followed, turns
    /// `t` into the next hop's request.
    pub(crate) fn next(
        &mut self,
        policy: Redirects,
        status: u16,
        headers: &HeaderMap,
        t: &mut Template,
    ) -> Next {
        let Ok(status) = StatusCode::from_u16(status) else {
            return Next::Stop;
        };
        let mut method = t.method.clone();
        let mut drop_payload = false;
        match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => {
                // POST becomes GET (RFC 9110, 15.4.2 and 15.4.3).
                if method == Method::POST {
                    method = Method::GET;
                    drop_payload = true;
                }
            }
            StatusCode::SEE_OTHER => {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                drop_payload = true;
            }
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {}
            _ => return Next::Stop,
        }
        let Some(mut next) = headers.get(LOCATION).and_then(|l| resolve(&t.url, l)) else {
            return Next::Stop;
        };
        // As http's `Uri`, which reqwest's chain goes through, has none.
        next.set_fragment(None);
        let previous = t.url.clone();
        self.previous.push(previous.clone());
        match policy {
            Redirects::None => return Next::Stop,
            Redirects::Limit(max) if self.previous.len() > max => {
                return Next::Error(reasons::too_many_redirects(previous.as_str()));
            }
            Redirects::Limit(_) => {}
        }
        if next.scheme() != "http" && next.scheme() != "https" {
            return Next::Error(reasons::scheme_not_allowed(next.as_str()));
        }
        if drop_payload {
            for h in [
                CONTENT_TYPE,
                CONTENT_LENGTH,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
            ] {
                t.headers.remove(h);
            }
            t.body = None;
        }
        t.method = method;
        t.url = next;
        Next::Follow
    }

    /// The headers of the hop about to go out: the template's, less the
    /// credentials when it leaves the previous origin, with a `Referer`.
    pub(crate) fn hop_headers(&self, t: &Template) -> HeaderMap {
        let mut headers = t.headers.clone();
        if let Some(prev) = self.previous.last() {
            let cross = t.url.host_str() != prev.host_str()
                || t.url.port_or_known_default() != prev.port_or_known_default()
                || t.url.scheme() != prev.scheme();
            if cross {
                for h in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                    headers.remove(h);
                }
                headers.remove("cookie2");
            }
            if let Some(r) = referer(&t.url, prev) {
                headers.insert(REFERER, r);
            }
        }
        headers
    }
}

fn referer(next: &Url, previous: &Url) -> Option<HeaderValue> {
    if next.scheme() == "http" && previous.scheme() == "https" {
        return None;
    }
    let mut r = previous.clone();
    let _ = r.set_username("");
    let _ = r.set_password(None);
    r.set_fragment(None);
    HeaderValue::from_str(r.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn template(method: Method, url: &str) -> Template {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        Template {
            method,
            url: Url::parse(url).unwrap(),
            headers,
            body: Some(Bytes::from_static(b"data")),
        }
    }

    fn location(l: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_str(l).unwrap());
        h
    }

    #[test]
    fn post_becomes_get_on_302_and_303_but_not_307() {
        for (status, method, body) in [
            (302, Method::GET, ""),
            (303, Method::GET, ""),
            (307, Method::POST, "data"),
        ] {
            let mut t = template(Method::POST, "http://a/x");
            let mut c = Chain::default();
            assert!(matches!(
                c.next(Redirects::Limit(10), status, &location("/y"), &mut t),
                Next::Follow
            ));
            assert_eq!(t.method, method, "{status}");
            assert_eq!(
                t.body.as_deref(),
                (!body.is_empty()).then_some(body.as_bytes()),
                "{status}"
            );
            assert_eq!(t.headers.contains_key(CONTENT_TYPE), !body.is_empty());
            assert_eq!(t.url.as_str(), "http://a/y");
        }
    }

    #[test]
    fn head_stays_head_on_303() {
        let mut t = template(Method::HEAD, "http://a/x");
        let mut c = Chain::default();
        c.next(Redirects::Limit(10), 303, &location("/y"), &mut t);
        assert_eq!(t.method, Method::HEAD);
    }

    #[test]
    fn the_limit_counts_redirects_followed() {
        let mut t = template(Method::GET, "http://a/0");
        let mut c = Chain::default();
        for i in 1..=2 {
            let next = c.next(
                Redirects::Limit(2),
                302,
                &location(&format!("/{i}")),
                &mut t,
            );
            assert!(matches!(next, Next::Follow));
        }
        match c.next(Redirects::Limit(2), 302, &location("/3"), &mut t) {
            Next::Error(e) => {
                assert_eq!(e.code(), Code::Redirect);
                assert!(e.reason().contains("too many redirects"), "{}", e.reason());
            }
            _ => panic!("followed past the limit"),
        }
    }

    #[test]
    fn credentials_stay_on_the_origin_and_referer_is_set() {
        let mut t = template(Method::GET, "http://a/x#frag");
        let mut c = Chain::default();
        c.next(Redirects::Limit(10), 302, &location("/same"), &mut t);
        let h = c.hop_headers(&t);
        assert!(h.contains_key(AUTHORIZATION));
        assert_eq!(h.get(REFERER).unwrap(), "http://a/x");
        c.next(
            Redirects::Limit(10),
            302,
            &location("http://b:81/other"),
            &mut t,
        );
        let h = c.hop_headers(&t);
        assert!(!h.contains_key(AUTHORIZATION));
        assert_eq!(h.get(REFERER).unwrap(), "http://a/same");
    }

    #[test]
    fn a_location_too_long_for_a_uri_is_not_followed() {
        let base = "http://a/x";
        // "http://a/" and the path make exactly the most a URI holds.
        let fits = format!("/{}", "p".repeat(65534 - "http://a/".len()));
        let mut t = template(Method::GET, base);
        let mut c = Chain::default();
        assert!(matches!(
            c.next(Redirects::Limit(10), 302, &location(&fits), &mut t),
            Next::Follow
        ));
        assert_eq!(t.url.as_str().len(), 65534);
        for long in [format!("{fits}p"), format!("/{}", "p".repeat(70000))] {
            let mut t = template(Method::GET, base);
            assert!(matches!(
                c.next(Redirects::Limit(10), 302, &location(&long), &mut t),
                Next::Stop
            ));
            assert_eq!(t.url.as_str(), base);
        }
    }

    #[test]
    fn no_location_or_other_statuses_stop() {
        let mut t = template(Method::GET, "http://a/x");
        let mut c = Chain::default();
        assert!(matches!(
            c.next(Redirects::Limit(10), 302, &HeaderMap::new(), &mut t),
            Next::Stop
        ));
        assert!(matches!(
            c.next(Redirects::Limit(10), 300, &location("/y"), &mut t),
            Next::Stop
        ));
        assert!(matches!(
            c.next(Redirects::None, 302, &location("/y"), &mut t),
            Next::Stop
        ));
        assert!(matches!(
            c.next(Redirects::Limit(10), 302, &location("ftp://h/"), &mut t),
            Next::Error(_)
        ));
    }
}
