//! Request URLs as erqwest takes them: UTF-8, `http` or `https`, and
//! no longer than an HTTP request's URI holds. Below every layer that
//! reads a URL (composing a base URL, a request, a redirect).

use crate::error::{Code, Error};

/// The longest URL a request can go to: http's `Uri`, which reqwest
/// makes of every URL (and hyper sends), holds at most `u16::MAX - 1`
/// bytes. A longer one failed later as reqwest's "builder error".
pub(crate) const MAX_URL_LEN: usize = u16::MAX as usize - 1;

/// A request's URL, or the `url` error that says what is wrong with it.
pub(crate) fn parse_url(bytes: &[u8]) -> Result<reqwest::Url, Error> {
    let too_long = |n: usize| {
        Error::new(
            Code::Url,
            format!(
                "URL is too long: {n} bytes, where a request's URL holds at most {MAX_URL_LEN}"
            ),
        )
    };
    if bytes.len() > MAX_URL_LEN {
        // Not repeated in the reason: it could be megabytes.
        return Err(too_long(bytes.len()));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::new(Code::Url, "URL is not valid UTF-8"))?;
    let url =
        reqwest::Url::parse(text).map_err(|e| Error::new(Code::Url, format!("{e}: {text}")))?;
    // Parsing may make it longer (percent-encoding, a "/" added).
    if url.as_str().len() > MAX_URL_LEN {
        return Err(too_long(url.as_str().len()));
    }
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Error::new(
            Code::Url,
            format!("unsupported URL scheme: {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            parse_url(b"http://127.0.0.1:8080/x").map(|u| u.port()),
            Ok(Some(8080))
        );
        assert_eq!(
            parse_url(b"not a url").map_err(|e| e.code()),
            Err(Code::Url)
        );
        assert_eq!(
            parse_url(b"http://h/\xff").map_err(|e| e.code()),
            Err(Code::Url)
        );
        assert_eq!(parse_url(b"ftp://h/").map_err(|e| e.code()), Err(Code::Url));
    }

    #[test]
    fn a_url_longer_than_a_uri_holds_is_a_url_error() {
        let url = |len: usize| {
            let mut u = b"http://h/".to_vec();
            u.resize(len, b'a');
            u
        };
        assert!(parse_url(&url(MAX_URL_LEN)).is_ok());
        for len in [MAX_URL_LEN + 1, 1 << 20] {
            let e = parse_url(&url(len))
                .err()
                .map(|e| (e.code(), e.reason().len() < 200));
            assert_eq!(e, Some((Code::Url, true)), "{len}");
        }
        // Grown past the limit by parsing: a space in the path is
        // percent-encoded.
        let mut spaced = url(MAX_URL_LEN - 1);
        spaced[10] = b' ';
        assert_eq!(parse_url(&spaced).map_err(|e| e.code()), Err(Code::Url));
    }
}
