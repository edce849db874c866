//! Requests as people write them: the options above the transport.
//!
//! Each concept has its module: [`pairs`] (query strings and form
//! bodies, encoded by reqwest), [`multipart`] (reqwest's multipart form,
//! file parts streamed from disk), [`auth`] (basic and bearer),
//! [`base_url`] (paths joined to a client's base) and [`decode`] (JSON
//! response bodies decoded on the runtime's thread); JSON request bodies
//! are encoded by [`crate::json`].
//!
//! Request options are decoded into [`Options`] on the scheduler (cheap
//! checks and the JSON encoding; the Erlang side sends large values to the
//! dirty variant), client options into [`Defaults`], which fill in what a
//! request leaves out. A bad shape raises `{badarg, Reason}`, which
//! `erqwest_async` turns into `badarg` with the reason as its error info.

pub mod auth;
pub mod base_url;
pub mod decode;
pub mod multipart;
pub mod pairs;

use rustler::{Atom, Encoder, Error as NifError, NifResult, Term};

pub use decode::Decoding;

use crate::error::Error;

rustler::atoms! {
    // option keys
    decode,
    json_null,
    query,
    json,
    form,
    multipart,
    auth,
    base_url,
    badarg,
    none,
}

/// `{badarg, Reason}`: a bad option, with what was wrong with it.
pub fn bad(reason: impl Into<String>) -> NifError {
    NifError::RaiseTerm(Box::new(BadArg(reason.into())))
}

struct BadArg(String);

impl Encoder for BadArg {
    fn encode<'a>(&self, env: rustler::Env<'a>) -> Term<'a> {
        (badarg(), self.0.as_str()).encode(env)
    }
}

/// A request body composed from an option.
pub enum Body {
    /// JSON text, encoded when the request was made.
    Json(Vec<u8>),
    Form(pairs::Pairs),
    Multipart(Vec<multipart::PartSpec>),
    /// A multipart body with its files open ([`Wire::open_files`]).
    /// Boxed: the form is larger than the other bodies, and every
    /// request carries room for one.
    Opened(Box<reqwest::multipart::Form>),
}

/// The request options of this module, as decoded.
#[derive(Default)]
pub struct Options {
    decode: Option<decode::Mode>,
    json_null: Option<Atom>,
    /// `auth => none`: not even the client's default credentials.
    no_auth: bool,
    wire: Wire,
}

/// What shapes the request on the wire, applied by `request/build.rs`.
#[derive(Default)]
pub struct Wire {
    query: Option<pairs::Pairs>,
    body: Option<Body>,
    auth: Option<auth::Auth>,
}

impl Options {
    /// Whether `key` is one of this module's request options.
    pub fn is_key(key: Atom) -> bool {
        [
            decode(),
            json_null(),
            query(),
            json(),
            form(),
            multipart(),
            auth(),
        ]
        .contains(&key)
    }

    /// Decodes one option (`badarg` when the value has the wrong shape).
    pub fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        let body = |b: Body, wire: &mut Wire| match wire.body {
            Some(_) => Err(bad("only one of json, form and multipart may be given")),
            None => {
                wire.body = Some(b);
                Ok(())
            }
        };
        match key {
            k if k == decode() => self.decode = Some(decode::Mode::decode(v)?),
            k if k == json_null() => {
                self.json_null = Some(v.decode().map_err(|_| bad("json_null: expected an atom"))?)
            }
            k if k == query() => self.wire.query = Some(pairs::decode("query", v)?),
            k if k == json() => {
                let text = crate::json::encode(v).map_err(|e| bad(format!("json: {e}")))?;
                body(Body::Json(text), &mut self.wire)?
            }
            k if k == form() => body(Body::Form(pairs::decode("form", v)?), &mut self.wire)?,
            k if k == multipart() => body(Body::Multipart(multipart::decode(v)?), &mut self.wire)?,
            k if k == auth() && v.decode::<Atom>().ok() == Some(none()) => {
                self.no_auth = true;
                self.wire.auth = None;
            }
            k if k == auth() => {
                self.no_auth = false;
                self.wire.auth = Some(auth::Auth::decode(v)?)
            }
            _ => return Err(NifError::BadArg),
        }
        Ok(())
    }

    /// Whether a body option was given (then `body` may not be).
    pub fn has_body(&self) -> bool {
        self.wire.body.is_some()
    }

    /// How the response body is to be decoded, the client's defaults
    /// filling in what the request left out.
    pub fn decoding(&self, defaults: &Defaults) -> Decoding {
        Decoding::new(
            self.decode.or(defaults.decode).unwrap_or_default(),
            self.json_null.or(defaults.json_null),
        )
    }

    /// The wire options, with the client's default auth unless the
    /// request has its own (an option or an `authorization` header) or
    /// asked for none (`auth => none`).
    pub fn wire(&mut self, defaults: &Defaults, headers: &reqwest::header::HeaderMap) -> Wire {
        let mut wire = std::mem::take(&mut self.wire);
        if wire.auth.is_none()
            && !self.no_auth
            && !headers.contains_key(reqwest::header::AUTHORIZATION)
        {
            wire.auth = defaults.auth.clone();
        }
        wire
    }
}

impl Wire {
    pub fn is_empty(&self) -> bool {
        self.query.is_none() && self.body.is_none() && self.auth.is_none()
    }

    /// Whether the body is multipart (its files are opened on the runtime).
    pub fn is_multipart(&self) -> bool {
        matches!(self.body, Some(Body::Multipart(_) | Body::Opened(_)))
    }

    /// Removes the caller's headers that an option replaces: its
    /// `authorization` when the request has an `auth` option, its
    /// `content-type` for a multipart body (whose boundary is ours).
    pub fn strip_replaced(&self, headers: &mut reqwest::header::HeaderMap) {
        if self.auth.is_some() {
            headers.remove(reqwest::header::AUTHORIZATION);
        }
        if matches!(self.body, Some(Body::Multipart(_) | Body::Opened(_))) {
            headers.remove(reqwest::header::CONTENT_TYPE);
        }
    }

    /// Opens a multipart body's files, the one wait in building a
    /// request: done first and apart, so that a request builder's future
    /// holds nothing else across it.
    pub async fn open_files(&mut self) -> Result<(), Error> {
        if let Some(Body::Multipart(parts)) = &mut self.body {
            let parts = std::mem::take(parts);
            // Boxed: opening files makes this future over a kilobyte, which
            // would otherwise be part of every request's task.
            let form = Box::pin(multipart::form(parts)).await?;
            self.body = Some(Body::Opened(Box::new(form)));
        }
        Ok(())
    }

    /// Applies query, body and auth to a request being built, after its
    /// headers and [`Wire::open_files`]; `content_type_set` says whether
    /// the caller set one (then a JSON or form body keeps it).
    pub fn apply(
        self,
        mut rb: reqwest::RequestBuilder,
        content_type_set: bool,
    ) -> Result<reqwest::RequestBuilder, Error> {
        use reqwest::header::{HeaderValue, CONTENT_TYPE};
        if let Some(q) = &self.query {
            rb = rb.query(q);
        }
        match self.body {
            None => {}
            Some(Body::Json(text)) => {
                if !content_type_set {
                    rb = rb.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                rb = rb.body(text);
            }
            Some(Body::Form(pairs)) => rb = rb.form(&pairs),
            Some(Body::Opened(form)) => rb = rb.multipart(*form),
            Some(Body::Multipart(_)) => {
                return Err(Error::new(
                    crate::error::Code::Unknown,
                    "multipart files not opened",
                ))
            }
        }
        if let Some(a) = &self.auth {
            rb = a.apply(rb);
        }
        Ok(rb)
    }
}

/// The client options of this module: defaults for every request.
#[derive(Default, Clone)]
pub struct Defaults {
    decode: Option<decode::Mode>,
    json_null: Option<Atom>,
    auth: Option<auth::Auth>,
    base_url: Option<base_url::BaseUrl>,
}

impl Defaults {
    /// Whether `key` is one of this module's client options.
    pub fn is_key(key: Atom) -> bool {
        [decode(), json_null(), auth(), base_url()].contains(&key)
    }

    pub fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        match key {
            k if k == decode() => self.decode = Some(decode::Mode::decode(v)?),
            k if k == json_null() => self.json_null = Some(v.decode()?),
            k if k == auth() => self.auth = Some(auth::Auth::decode(v)?),
            k if k == base_url() => self.base_url = Some(base_url::BaseUrl::decode(v)?),
            _ => return Err(NifError::BadArg),
        }
        Ok(())
    }

    /// The request URL, joined to the base URL when it is only a path.
    pub fn url(&self, url: &[u8]) -> Result<reqwest::Url, Error> {
        match &self.base_url {
            Some(base) => base.join(url),
            None => crate::urls::parse_url(url),
        }
    }
}
