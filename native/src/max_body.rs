//! `max_body`: the most a complete response body may hold, after
//! decompression, counted as the bytes arrive.
//!
//! Shared by both engines: the runtime's collectors (`request/task.rs`,
//! the direct path's hand-offs) and the direct path's reads and decoding
//! ask [`MaxBody::admit`] before they keep more bytes, so memory never
//! grows past the limit; a body over it ends the request with
//! `body_too_large` and its connection is dropped, never reused. Streamed
//! bodies (`response_body => stream`, event streams) are the reader's to
//! bound and are not counted.

use bytes::{Bytes, BytesMut};
use rustler::{Atom, NifResult, Term};

use crate::atoms;
use crate::error::Error;

/// A limit in bytes, or none (`infinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaxBody(Option<u64>);

impl Default for MaxBody {
    /// 1 GiB: no JSON document or page a service asks for whole comes
    /// near it, and a decompression bomb stops there instead of at the
    /// machine's memory (a 1 MB gzip inflating to 1 GiB took 1.7 GB of
    /// RSS before). Larger bodies are for `response_body => stream`.
    fn default() -> Self {
        MaxBody(Some(1 << 30))
    }
}

impl MaxBody {
    pub(crate) const UNLIMITED: MaxBody = MaxBody(None);

    pub(crate) fn bytes(n: u64) -> Self {
        MaxBody(Some(n))
    }

    /// `non_neg_integer() | infinity`; anything else is `badarg`.
    pub(crate) fn decode(t: Term) -> NifResult<Self> {
        if let Ok(a) = t.decode::<Atom>() {
            return if a == atoms::infinity() {
                Ok(MaxBody::UNLIMITED)
            } else {
                Err(rustler::Error::BadArg)
            };
        }
        t.decode::<u64>().map(MaxBody::bytes)
    }

    /// The limit moved by `f`, none staying none.
    pub(crate) fn with_slack(self, f: impl FnOnce(u64) -> u64) -> Self {
        MaxBody(self.0.map(f))
    }

    /// Whether a body of `len` bytes in all is within the limit.
    pub(crate) fn admit(self, len: u64) -> Result<(), Error> {
        match self.0 {
            Some(limit) if len > limit => Err(Error::body_too_large(limit)),
            _ => Ok(()),
        }
    }

    /// The same for a length that is a `usize`.
    pub(crate) fn admit_len(self, len: usize) -> Result<(), Error> {
        self.admit(u64::try_from(len).unwrap_or(u64::MAX))
    }

    /// The error of a body over this limit.
    pub(crate) fn exceeded(self) -> Error {
        Error::body_too_large(self.0.unwrap_or(u64::MAX))
    }

    /// Reads a reqwest response's whole (decoded) body within the limit.
    /// An announced length over it fails before anything is read.
    pub(crate) async fn collect(self, mut resp: reqwest::Response) -> Result<Bytes, Error> {
        if let Some(n) = resp.content_length() {
            self.admit(n)?;
        }
        let mut buf: Option<BytesMut> = None;
        let mut first: Option<Bytes> = None;
        let mut len = 0usize;
        while let Some(chunk) = resp.chunk().await.map_err(|e| Error::from_reqwest(&e))? {
            len = len.saturating_add(chunk.len());
            self.admit_len(len)?;
            match (&mut buf, first.take()) {
                (Some(b), _) => b.extend_from_slice(&chunk),
                (None, Some(f)) => {
                    let mut b = BytesMut::with_capacity(f.len() + chunk.len());
                    b.extend_from_slice(&f);
                    b.extend_from_slice(&chunk);
                    buf = Some(b);
                }
                (None, None) => first = Some(chunk),
            }
        }
        Ok(match (buf, first) {
            (Some(b), _) => b.freeze(),
            (None, Some(f)) => f,
            (None, None) => Bytes::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn the_limit_itself_is_admitted_one_more_byte_is_not() {
        let m = MaxBody::bytes(10);
        assert!(m.admit(10).is_ok());
        let e = m.admit(11).unwrap_err();
        assert_eq!(e.code(), Code::BodyTooLarge);
        assert!(e.reason().contains("10 bytes"), "{}", e.reason());
    }

    #[test]
    fn unlimited_admits_everything() {
        assert!(MaxBody::UNLIMITED.admit(u64::MAX).is_ok());
        assert!(MaxBody::UNLIMITED.admit_len(usize::MAX).is_ok());
    }

    #[test]
    fn the_default_is_one_gibibyte() {
        assert!(MaxBody::default().admit(1 << 30).is_ok());
        assert!(MaxBody::default().admit((1 << 30) + 1).is_err());
    }

    #[test]
    fn zero_admits_only_an_empty_body() {
        assert!(MaxBody::bytes(0).admit(0).is_ok());
        assert!(MaxBody::bytes(0).admit(1).is_err());
    }
}
