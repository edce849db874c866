//! `decode => none | json | auto`: a complete response body decoded from
//! JSON into terms on the runtime's thread, inside the environment the
//! reply is built in, so that the caller receives the finished term and
//! spends no scheduler time parsing.

use rustler::{Atom, Encoder, Env, Error as NifError, NifResult, Term};

use crate::json;
use crate::reply::Head;
use crate::term::{encode_headers, EncodeBinary};

rustler::atoms! {
    none,
    json,
    auto,
    null,
    // the err() of a body that does not decode
    code,
    reason,
    body,
    status,
    headers,
    decode_code = "decode",
}

/// When a response body is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Never: the body stays a binary (erqwest 0.2.5's replies).
    #[default]
    None,
    /// Always; a body that is not JSON is an error.
    Json,
    /// When the content type is `application/json` or `*/*+json` and
    /// the body is not empty.
    Auto,
}

impl Mode {
    pub fn decode(t: Term) -> NifResult<Self> {
        match t.decode::<Atom>()? {
            a if a == none() => Ok(Mode::None),
            a if a == json() => Ok(Mode::Json),
            a if a == auto() => Ok(Mode::Auto),
            _ => Err(NifError::BadArg),
        }
    }
}

/// How one response is decoded: the mode and the atom for JSON `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decoding {
    mode: Mode,
    null: Option<Atom>,
}

impl Decoding {
    pub fn new(mode: Mode, null: Option<Atom>) -> Self {
        Decoding { mode, null }
    }

    /// Whether this response's body is to be decoded.
    pub fn applies(&self, head: &Head, body: &[u8]) -> bool {
        match self.mode {
            Mode::None => false,
            Mode::Json => true,
            Mode::Auto => !body.is_empty() && is_json(head),
        }
    }

    /// The body as a term, or the `err()` map to send instead:
    /// `#{code := decode, reason, body := Raw, status, headers}`, where
    /// `raw` makes the body's binary (only needed then).
    pub fn body<'a>(
        &self,
        env: Env<'a>,
        head: &Head,
        bytes: &[u8],
        raw: impl FnOnce() -> Term<'a>,
    ) -> Result<Term<'a>, Term<'a>> {
        json::decode(env, bytes, self.null.unwrap_or_else(null)).map_err(|e| {
            let keys = [code(), reason(), body(), status(), headers()].map(|k| k.encode(env));
            let values = [
                decode_code().encode(env),
                e.to_string().as_bytes().encode_binary(env),
                raw(),
                head.status.encode(env),
                encode_headers(env, &head.headers),
            ];
            Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| decode_code().encode(env))
        })
    }
}

/// `application/json`, or any `type/subtype+json` (`application/problem+json`).
fn is_json(head: &Head) -> bool {
    let Some(ct) = head.headers.get(reqwest::header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(ct) = ct.to_str() else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((ty, sub)) => {
            (ty == "application" && sub == "json") || (!ty.is_empty() && sub.ends_with("+json"))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

    fn head(ct: Option<&'static str>) -> Head {
        let mut headers = HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        Head {
            status: 200,
            version: reqwest::Version::HTTP_11,
            headers,
            url: String::new(),
            meta: None,
        }
    }

    #[test]
    fn auto_decodes_json_content_types_only() {
        let auto = Decoding::new(Mode::Auto, None);
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
            "text/vnd.x+json",
        ] {
            assert!(auto.applies(&head(Some(ct)), b"1"), "{ct}");
        }
        for ct in [
            "text/plain",
            "application/jsonx",
            "application/x-json-stream",
            "json",
            "+json",
        ] {
            assert!(!auto.applies(&head(Some(ct)), b"1"), "{ct}");
        }
        assert!(!auto.applies(&head(None), b"1"));
        assert!(!auto.applies(&head(Some("application/json")), b""));
    }

    #[test]
    fn json_always_decodes_and_none_never() {
        let j = Decoding::new(Mode::Json, None);
        assert!(j.applies(&head(None), b""));
        assert!(j.applies(&head(Some("text/html")), b"x"));
        let n = Decoding::default();
        assert!(!n.applies(&head(Some("application/json")), b"1"));
    }
}
