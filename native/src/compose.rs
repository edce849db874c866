//! Requests as people write them: the options above the transport.
//!
//! Each concept has its module: [`decode`] (JSON response bodies decoded
//! on the runtime's thread), and, as they come, query strings, JSON, form
//! and multipart bodies, auth and base URLs. Request options are decoded
//! into [`Options`] on the scheduler (cheap checks, `badarg` for a bad
//! shape); client options into [`Defaults`], which fill in what a request
//! leaves out.

pub mod decode;

use rustler::{Atom, NifResult, Term};

pub use decode::Decoding;

rustler::atoms! {
    // option keys
    decode,
    json_null,
}

/// The request options of this module, as decoded.
#[derive(Default)]
pub struct Options {
    decode: Option<decode::Mode>,
    json_null: Option<Atom>,
}

impl Options {
    /// Whether `key` is one of this module's request options.
    pub fn is_key(key: Atom) -> bool {
        key == decode() || key == json_null()
    }

    /// Decodes one option (`badarg` when the value has the wrong shape).
    pub fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        match key {
            k if k == decode() => self.decode = Some(decode::Mode::decode(v)?),
            k if k == json_null() => self.json_null = Some(v.decode()?),
            _ => return Err(rustler::Error::BadArg),
        }
        Ok(())
    }

    /// How the response body is to be decoded, the client's defaults
    /// filling in what the request left out.
    pub fn decoding(&self, defaults: &Defaults) -> Decoding {
        Decoding::new(
            self.decode.or(defaults.decode).unwrap_or_default(),
            self.json_null.or(defaults.json_null),
        )
    }
}

/// The client options of this module: defaults for every request.
#[derive(Default, Clone)]
pub struct Defaults {
    decode: Option<decode::Mode>,
    json_null: Option<Atom>,
}

impl Defaults {
    /// Whether `key` is one of this module's client options.
    pub fn is_key(key: Atom) -> bool {
        key == decode() || key == json_null()
    }

    pub fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        match key {
            k if k == decode() => self.decode = Some(decode::Mode::decode(v)?),
            k if k == json_null() => self.json_null = Some(v.decode()?),
            _ => return Err(rustler::Error::BadArg),
        }
        Ok(())
    }
}
