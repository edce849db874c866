//! The client option `base_url`: a request URL that is only a path is
//! joined to it as Req joins them, by text, so that the base's own path
//! stays (`https://h/api/v1` + `/users` is `https://h/api/v1/users`, which
//! RFC 3986 resolution would make `https://h/users`). An absolute URL is
//! used as it is.

use rustler::{Binary, NifResult, Term};

use super::bad;
use crate::error::{Code, Error};

/// A checked base URL (http or https, absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn decode(t: Term) -> NifResult<Self> {
        let b: Binary = t.decode().map_err(|_| bad("base_url: expected a binary"))?;
        let url = crate::urls::parse_url(b.as_slice())
            .map_err(|e| bad(format!("base_url: {}", e.reason())))?;
        Ok(BaseUrl(url.as_str().to_owned()))
    }

    /// The request URL `url`, joined to the base when it has no scheme.
    pub fn join(&self, url: &[u8]) -> Result<reqwest::Url, Error> {
        let text = std::str::from_utf8(url)
            .map_err(|_| Error::new(Code::Url, "URL is not valid UTF-8"))?;
        if has_scheme(text) {
            crate::urls::parse_url(url)
        } else {
            crate::urls::parse_url(join(&self.0, text).as_bytes())
        }
    }
}

/// Whether `url` starts with `scheme:` (RFC 3986: a letter, then letters,
/// digits, `+`, `-` or `.`).
fn has_scheme(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// `base` and `path` with exactly one `/` between them.
fn join(base: &str, path: &str) -> String {
    let base = base.strip_suffix('/').unwrap_or(base);
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return base.to_owned();
    }
    if path.starts_with('?') || path.starts_with('#') {
        return format!("{base}{path}");
    }
    format!("{base}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(base: &str, url: &str) -> String {
        let b = BaseUrl(reqwest::Url::parse(base).unwrap().as_str().to_owned());
        b.join(url.as_bytes())
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e.reason().to_owned())
    }

    #[test]
    fn paths_join_as_req_joins_them() {
        assert_eq!(j("https://h/api/v1", "/users"), "https://h/api/v1/users");
        assert_eq!(j("https://h/api/v1", "users"), "https://h/api/v1/users");
        assert_eq!(j("https://h/api/v1/", "/users"), "https://h/api/v1/users");
        assert_eq!(
            j("https://h/api/v1/", "users?x=1"),
            "https://h/api/v1/users?x=1"
        );
        assert_eq!(j("https://h", "/users"), "https://h/users");
        assert_eq!(j("https://h/api", ""), "https://h/api");
        assert_eq!(j("https://h/api", "?q=1"), "https://h/api?q=1");
        assert_eq!(j("https://h/api", "a:b"), "unsupported URL scheme: a");
        assert_eq!(j("https://h/api", "/a:b"), "https://h/api/a:b");
    }

    #[test]
    fn absolute_urls_are_kept() {
        assert_eq!(
            j("https://h/api", "http://other:8080/x"),
            "http://other:8080/x"
        );
        assert!(j("https://h/api", "ftp://other/x").contains("unsupported URL scheme"));
    }
}
