//! Following a listing to its next page: `Link` headers (RFC 8288) and
//! reference resolution (RFC 3986 section 5), for `erqwest_pages`.
//!
//! Both are proportional to their input (a server may send a long `Link`
//! header, a JSON body a long next URL), so they run here rather than in
//! the calling process; the Erlang side picks the dirty variant of each NIF
//! for big inputs.
//!
//! ```text
//! link_next([<<"<https://h/items?page=2>; rel=\"next\"">>], <<"https://h/items">>)
//!     -> {ok, <<"https://h/items?page=2">>, <<"https://h">>}
//! ```

use reqwest::Url;
use rustler::{Binary, Encoder, Env, Term};

rustler::atoms! {
    ok,
    none,
    error,
}

/// A reason quotes at most this many bytes of what it is about: hostile
/// input may be megabytes long.
const QUOTE_MAX: usize = 120;

/// One link-value of a `Link` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Link<'a> {
    /// The URI-Reference between `<` and `>`, as written (not resolved).
    pub target: &'a [u8],
    /// The value of the first `rel` parameter (RFC 8288 section 3.3 says
    /// later ones are ignored), unquoted; `None` when there is none.
    rel: Option<Vec<u8>>,
}

impl Link<'_> {
    /// Whether `name` is one of the link's relation types, which are
    /// separated by whitespace and compared case-insensitively.
    pub fn has_rel(&self, name: &str) -> bool {
        self.rel.as_deref().is_some_and(|rel| {
            rel.split(|b| b.is_ascii_whitespace())
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
        })
    }
}

/// The links of one header value, in order. A link-value that does not
/// follow the grammar (no `<`, text where a parameter should be, a quoted
/// string or a target that never ends) is skipped, never guessed at.
pub struct Links<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Links<'a> {
    pub fn new(value: &'a [u8]) -> Self {
        Links { s: value, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Moves to the comma that ends the current link-value (or the end),
    /// not stopping at commas inside quoted strings or `<>`.
    fn skip_element(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b',' => return,
                b'"' => {
                    let _ = self.quoted();
                }
                b'<' => match self.s[self.i..].iter().position(|&c| c == b'>') {
                    Some(n) => self.i += n + 1,
                    None => self.i = self.s.len(),
                },
                _ => self.i += 1,
            }
        }
    }

    /// A token (RFC 9110 section 5.6.2); empty when there is none here.
    fn token(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// A quoted string starting at the `"` under the cursor, with its
    /// backslash escapes undone; `None` when it is not terminated.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    if let Some(e) = self.peek() {
                        out.push(e);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        None
    }

    /// Parses `; name[=value]` after the `;`. Returns the name and value,
    /// or `None` when this is not a parameter.
    fn param(&mut self) -> Option<(&'a [u8], Vec<u8>)> {
        self.skip_ows();
        let name = self.token();
        if name.is_empty() {
            return None;
        }
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Some((name, Vec::new()));
        }
        self.i += 1;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            let t = self.token();
            if t.is_empty() {
                return None;
            }
            t.to_vec()
        };
        Some((name, value))
    }

    /// The parameters after a target, up to the end of the link-value.
    /// `Err` when something there is not a parameter.
    fn params(&mut self) -> Result<Option<Vec<u8>>, ()> {
        let mut rel = None;
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => return Ok(rel),
                Some(b';') => {
                    self.i += 1;
                    let (name, value) = self.param().ok_or(())?;
                    if rel.is_none() && name.eq_ignore_ascii_case(b"rel") {
                        rel = Some(value);
                    }
                }
                Some(_) => return Err(()),
            }
        }
    }
}

impl<'a> Iterator for Links<'a> {
    type Item = Link<'a>;

    fn next(&mut self) -> Option<Link<'a>> {
        loop {
            // Empty list elements (`, ,`) are allowed by the list syntax.
            while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
                self.i += 1;
            }
            self.peek()?;
            if self.peek() != Some(b'<') {
                self.skip_element();
                continue;
            }
            // Commas and semicolons are part of the target up to the `>`.
            let start = self.i + 1;
            let len = self.s[start..].iter().position(|&c| c == b'>')?;
            let target = &self.s[start..start + len];
            self.i = start + len + 1;
            match self.params() {
                Ok(rel) => return Some(Link { target, rel }),
                Err(()) => self.skip_element(),
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The target of the first link with relation type `next` over several
/// header values, as written.
pub fn find_next<'a, I>(values: I) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    values
        .into_iter()
        .flat_map(Links::new)
        .find(|l| l.has_rel("next"))
        .map(|l| l.target)
}

/// A next page's URL: `reference` resolved against the page's URL `base`
/// (RFC 3986 section 5, as the WHATWG URL parser in the `url` crate does
/// it, which also normalises the result). Only `http` and `https` URLs
/// are followed: a listing must not lead the client to `file:` or the like.
pub fn resolve(base: &[u8], reference: &[u8]) -> Result<Url, String> {
    let base = std::str::from_utf8(base)
        .ok()
        .and_then(|b| Url::parse(b).ok())
        .ok_or_else(|| format!("page URL does not parse: {}", quote(base)))?;
    let text = std::str::from_utf8(reference)
        .map_err(|_| format!("next URL is not valid UTF-8: {}", quote(reference)))?;
    let url = base
        .join(text)
        .map_err(|e| format!("next URL does not parse ({e}): {}", quote(reference)))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "next URL has scheme {other}; only http and https are followed: {}",
            quote(reference)
        )),
    }
}

fn quote(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(QUOTE_MAX)];
    let text = String::from_utf8_lossy(cut);
    if cut.len() < bytes.len() {
        format!("{text}...")
    } else {
        text.into_owned()
    }
}

/// `{ok, Url, Origin}` (the origin as `scheme://host[:port]`, for telling
/// hosts apart) or `{error, Reason}`. The fragment is dropped: it is not
/// sent, and two URLs that differ only there are the same page.
fn encode_url<'a>(env: Env<'a>, url: Result<Url, String>) -> Term<'a> {
    match url {
        Ok(mut u) => {
            u.set_fragment(None);
            let origin = u.origin().ascii_serialization();
            (ok(), u.as_str(), origin).encode(env)
        }
        Err(reason) => (error(), reason).encode(env),
    }
}

fn link_next_term<'a>(env: Env<'a>, values: &[Binary], base: &Binary) -> Term<'a> {
    match find_next(values.iter().map(|b| b.as_slice())) {
        Some(target) => encode_url(env, resolve(base.as_slice(), target)),
        None => none().encode(env),
    }
}

/// `link_next(HeaderValues, PageUrl)`: `{ok, Url, Origin}` for the first
/// `rel="next"` link, `none` without one, `{error, Reason}` when its
/// target does not resolve. `badarg` unless given a list of binaries and
/// a binary.
#[rustler::nif]
fn link_next<'a>(env: Env<'a>, values: Vec<Binary<'a>>, base: Binary<'a>) -> Term<'a> {
    link_next_term(env, &values, &base)
}

/// [`link_next`] on a dirty scheduler, for long headers.
#[rustler::nif(schedule = "DirtyCpu")]
fn link_next_dirty<'a>(env: Env<'a>, values: Vec<Binary<'a>>, base: Binary<'a>) -> Term<'a> {
    link_next_term(env, &values, &base)
}

/// `url_resolve(PageUrl, Reference)`: `{ok, Url, Origin}` or `{error, Reason}`.
#[rustler::nif]
fn url_resolve<'a>(env: Env<'a>, base: Binary<'a>, reference: Binary<'a>) -> Term<'a> {
    encode_url(env, resolve(base.as_slice(), reference.as_slice()))
}

/// [`url_resolve`] on a dirty scheduler, for long URLs.
#[rustler::nif(schedule = "DirtyCpu")]
fn url_resolve_dirty<'a>(env: Env<'a>, base: Binary<'a>, reference: Binary<'a>) -> Term<'a> {
    encode_url(env, resolve(base.as_slice(), reference.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_of(values: &[&str]) -> Option<String> {
        find_next(values.iter().map(|v| v.as_bytes()))
            .map(|t| String::from_utf8(t.to_vec()).unwrap_or_default())
    }

    fn rels(value: &str) -> Vec<(String, Option<String>)> {
        Links::new(value.as_bytes())
            .map(|l| {
                (
                    String::from_utf8_lossy(l.target).into_owned(),
                    l.rel.map(|r| String::from_utf8_lossy(&r).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn github_style_header() {
        let h = "<https://api.github.com/repositories/1/issues?page=2>; rel=\"next\", \
                 <https://api.github.com/repositories/1/issues?page=5>; rel=\"last\"";
        assert_eq!(
            next_of(&[h]).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
    }

    #[test]
    fn rel_values_are_space_separated_and_case_insensitive() {
        assert_eq!(next_of(&["</a>; rel=\"prev NEXT\""]).as_deref(), Some("/a"));
        assert_eq!(next_of(&["</a>; REL=Next"]).as_deref(), Some("/a"));
        assert_eq!(next_of(&["</a>; rel=\"nextpage\""]), None);
        assert_eq!(next_of(&["</a>; rel=\"next-ish prev\""]), None);
    }

    #[test]
    fn only_the_first_rel_parameter_counts() {
        assert_eq!(next_of(&["</a>; rel=prev; rel=next"]), None);
    }

    #[test]
    fn commas_and_semicolons_inside_the_target() {
        let h = "</x;y,z?a=1,2;b>; rel=\"last\", </p;q,r?s=1,2>; title=\"a, b; c\"; rel=next";
        assert_eq!(next_of(&[h]).as_deref(), Some("/p;q,r?s=1,2"));
    }

    #[test]
    fn several_header_values_in_order() {
        let hs = ["</1>; rel=prev", "</2>; rel=next", "</3>; rel=next"];
        assert_eq!(next_of(&hs).as_deref(), Some("/2"));
    }

    #[test]
    fn quoted_strings_with_escapes_and_commas() {
        let h = "</a>; title=\"say \\\"hi\\\", ok\"; rel=\"n\\ext\"";
        assert_eq!(rels(h), vec![("/a".into(), Some("next".into()))]);
    }

    #[test]
    fn malformed_link_values_are_skipped() {
        // Text instead of a parameter, a bare URL, a dangling quote.
        assert_eq!(
            next_of(&["</a> rel=next, </b>; rel=next"]).as_deref(),
            Some("/b")
        );
        assert_eq!(
            next_of(&["http://x/; rel=next, </b>; rel=next"]).as_deref(),
            Some("/b")
        );
        assert_eq!(next_of(&["</a>; rel=\"next"]), None);
        assert_eq!(
            next_of(&["</a>; =next, </c>; rel=next"]).as_deref(),
            Some("/c")
        );
        assert_eq!(next_of(&["</a; rel=next"]), None);
        assert_eq!(next_of(&["", ",,, ,", ";;;", "<>", ">"]), None);
    }

    #[test]
    fn empty_target_is_a_link_to_the_page_itself() {
        assert_eq!(next_of(&["<>; rel=next"]).as_deref(), Some(""));
    }

    #[test]
    fn params_without_values_and_whitespace() {
        let h = " \t</a> \t; \tcrossorigin ;\trel = next \t";
        assert_eq!(rels(h), vec![("/a".into(), Some("next".into()))]);
    }

    #[test]
    fn hostile_input_terminates() {
        let long_lt = "<".repeat(100_000);
        let quotes = "</a>; x=\"".to_string() + &"\\".repeat(100_001);
        let commas = ",".repeat(100_000);
        let many = "</a>; rel=prev, ".repeat(10_000) + "</z>; rel=next";
        assert_eq!(next_of(&[&long_lt]), None);
        assert_eq!(next_of(&[&quotes]), None);
        assert_eq!(next_of(&[&commas]), None);
        assert_eq!(next_of(&[&many]).as_deref(), Some("/z"));
        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let _ = find_next([bytes.as_slice()]);
    }

    /// RFC 3986 section 5.4, as normalised by the WHATWG URL parser
    /// (`//g` gains a `/` path).
    #[test]
    fn rfc3986_reference_resolution_examples() {
        let base = b"http://a/b/c/d;p?q";
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("g?y#s", "http://a/b/c/g?y#s"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y#s"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            // Abnormal examples (section 5.4.2).
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("g#s/./x", "http://a/b/c/g#s/./x"),
            ("g#s/../x", "http://a/b/c/g#s/../x"),
            ("http:g", "http://a/b/c/g"),
        ];
        for (reference, expected) in cases {
            let got = resolve(base, reference.as_bytes()).map(|u| u.to_string());
            assert_eq!(got.as_deref(), Ok(expected), "reference {reference:?}");
        }
    }

    #[test]
    fn absolute_references_replace_the_base() {
        let u = resolve(b"http://a/b", b"https://other.example:8443/x?y=1");
        assert_eq!(
            u.map(|u| (u.to_string(), u.origin().ascii_serialization())),
            Ok((
                "https://other.example:8443/x?y=1".into(),
                "https://other.example:8443".into()
            ))
        );
    }

    #[test]
    fn bad_bases_references_and_schemes_are_errors() {
        assert!(resolve(b"not a url", b"/x").is_err());
        assert!(resolve(b"http://a/", b"http://[::1").is_err());
        assert!(resolve(b"http://a/", &[0xff, 0xfe]).is_err());
        let e = resolve(b"http://a/", b"file:///etc/passwd").unwrap_err();
        assert!(e.contains("scheme file"), "{e}");
        assert!(resolve(b"http://a/", b"javascript:alert(1)").is_err());
    }

    #[test]
    fn reasons_quote_a_bounded_prefix() {
        let long = vec![b'\xff'; 1_000_000];
        let e = resolve(b"http://a/", &long).unwrap_err();
        assert!(e.len() < 1000, "{}", e.len());
    }
}
