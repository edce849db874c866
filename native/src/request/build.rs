//! A checked request turned into a reqwest request, ready to execute.
//!
//! Kept apart from the task so that everything that shapes what goes on
//! the wire (framing headers; query, composed bodies and auth through compose.rs)
//! lives in one place, and so that other tasks (retries, event streams)
//! can build the same request again.

use std::future::Future;
use std::time::Duration;

use super::{Checked, RequestBody};
use crate::body;
use crate::error::Error;

/// A request ready for `reqwest::Client::execute`, and the sender of its
/// body when the body is streamed by the caller.
pub(crate) struct Built {
    pub(crate) request: reqwest::Request,
    pub(crate) upload: Option<body::Sender>,
}

/// Builds the request on `http` (whose defaults, such as its timeout and
/// default headers, then apply). Async because a multipart body opens its
/// files here, on the runtime; that wait comes first, so that nothing but
/// the arguments is held across it. Not an `async fn`, which would keep
/// its arguments twice (rust-lang/rust#62958): this future is part of
/// every request's task.
#[allow(clippy::manual_async_fn)] // on purpose, see above
pub(crate) fn build(
    http: &reqwest::Client,
    method: reqwest::Method,
    mut checked: Checked,
    timeout: Option<Duration>,
) -> impl Future<Output = Result<Built, Error>> + '_ {
    async move {
        checked.compose.open_files().await?;
        build_opened(http, method, checked, timeout)
    }
}

/// The same for a request with no files to open (no multipart body): no
/// wait, so it may run in a NIF call (the direct path composes with it).
pub(crate) fn build_opened(
    http: &reqwest::Client,
    method: reqwest::Method,
    checked: Checked,
    timeout: Option<Duration>,
) -> Result<Built, Error> {
    let Checked {
        url,
        mut headers,
        body,
        compose,
    } = checked;
    if matches!(body, RequestBody::Stream) {
        chunked_unless_sized(&mut headers);
    }
    compose.strip_replaced(&mut headers);
    let content_type_set = headers.contains_key(reqwest::header::CONTENT_TYPE);
    let mut rb = http.request(method, url).headers(headers);
    if let Some(t) = timeout {
        rb = rb.timeout(t);
    }
    let mut upload = None;
    match body {
        RequestBody::Empty => {}
        RequestBody::Full(b) => rb = rb.body(b),
        RequestBody::Stream => {
            let (tx, body) = body::channel();
            rb = rb.body(reqwest::Body::wrap(body));
            upload = Some(tx);
        }
    }
    rb = compose.apply(rb, content_type_set)?;
    let request = rb.build().map_err(|e| {
        // A header value reqwest refused (a bearer token with a newline,
        // say) is a bad request, as a bad header is.
        if e.is_builder() {
            Error::new(
                crate::error::Code::Request,
                Error::from_reqwest(&e).reason(),
            )
        } else {
            Error::from_reqwest(&e)
        }
    })?;
    Ok(Built { request, upload })
}

/// hyper sends no body at all for a GET, HEAD or CONNECT whose length it
/// does not know, unless the request sets its framing headers itself. A
/// streamed body the caller asked for must go out, so it is sent chunked
/// (unless the caller gave a length or a transfer-encoding of their own).
fn chunked_unless_sized(headers: &mut reqwest::header::HeaderMap) {
    use reqwest::header::{HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
    if !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING) {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_bodies_are_chunked_unless_sized() {
        use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
        let mut h = HeaderMap::new();
        chunked_unless_sized(&mut h);
        assert_eq!(
            h.get(TRANSFER_ENCODING),
            Some(&HeaderValue::from_static("chunked"))
        );
        let mut sized = HeaderMap::new();
        sized.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        chunked_unless_sized(&mut sized);
        assert!(sized.get(TRANSFER_ENCODING).is_none());
    }
}
