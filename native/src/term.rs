//! Decoding Erlang terms into Rust values and encoding replies back.
//!
//! Shape errors (a key of the wrong type, an unknown key) are `badarg`,
//! raised at once. Content errors that the contract reports as an `err()`
//! (a header name that is not a token, say) are found later, in
//! `request.rs`, and sent as messages.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use rustler::env::OwnedEnv;
use rustler::{Binary, Encoder, Env, Error as NifError, NifResult, Term};

use crate::atoms;

/// Below this size a binary is copied; above it the Rust side borrows the
/// Erlang binary instead (see [`bytes_from_binary`]).
const BORROW_THRESHOLD: usize = 4096;

/// Encodes bytes as an Erlang binary (rustler encodes `&[u8]` as a list).
pub trait EncodeBinary {
    fn encode_binary<'a>(&self, env: Env<'a>) -> Term<'a>;
}

impl EncodeBinary for [u8] {
    fn encode_binary<'a>(&self, env: Env<'a>) -> Term<'a> {
        let mut bin = rustler::NewBinary::new(env, self.len());
        bin.as_mut_slice().copy_from_slice(self);
        let bin: Binary = bin.into();
        bin.to_term(env)
    }
}

/// Longer timeouts are treated as this one (a century): timers and
/// deadlines further out would overflow the clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `non_neg_integer()` milliseconds, or `infinity` for no limit.
pub fn decode_ms(term: Term) -> NifResult<Option<Duration>> {
    if let Ok(ms) = term.decode::<u64>() {
        return Ok(Some(Duration::from_millis(ms).min(MAX_TIMEOUT)));
    }
    if term.decode::<rustler::Atom>()? == atoms::infinity() {
        Ok(None)
    } else {
        Err(NifError::BadArg)
    }
}

pub fn decode_bool(term: Term) -> NifResult<bool> {
    term.decode::<bool>()
}

/// The elements of a proper list. rustler's own list decoding panics on an
/// improper list; this is `badarg` instead.
pub fn decode_list(term: Term) -> NifResult<Vec<Term>> {
    let mut out = Vec::new();
    let mut rest = term;
    loop {
        if rest.is_empty_list() {
            return Ok(out);
        }
        let (head, tail) = rest.list_get_cell()?;
        out.push(head);
        rest = tail;
    }
}

/// An integer that must fit `T`. rustler's decoders for `u8` and `u16`
/// truncate (`256` would become `0`); this is `badarg` instead.
pub fn decode_int<T: TryFrom<u64>>(term: Term) -> NifResult<T> {
    T::try_from(term.decode::<u64>()?).map_err(|_| NifError::BadArg)
}

/// An atom's name as UTF-8, whatever its characters (atoms are Unicode
/// since OTP 20); `None` for anything else. Every place that reads an
/// atom's text (JSON keys, query and form pairs, multipart names) goes
/// through here. rustler asks the VM for Latin-1, the only encoding OTP
/// 25's `enif_get_atom` knows, which fails for a name beyond it; such a
/// name is read from the atom's external term format instead.
pub fn atom_name(t: Term) -> Option<String> {
    if !t.is_atom() {
        return None;
    }
    if let Ok(name) = t.atom_to_string() {
        return Some(name);
    }
    atom_from_etf(t.to_binary().as_slice())
}

/// The name in an atom's external term format: the UTF-8 tags
/// (`ATOM_UTF8_EXT`, `SMALL_ATOM_UTF8_EXT`) and the older Latin-1 ones.
fn atom_from_etf(etf: &[u8]) -> Option<String> {
    let (&tag, rest) = etf.strip_prefix(&[131])?.split_first()?;
    let (len, name) = match tag {
        100 | 118 => {
            let (len, name) = (rest.get(..2)?, rest.get(2..)?);
            (usize::from(u16::from_be_bytes([len[0], len[1]])), name)
        }
        115 | 119 => {
            let (&len, name) = rest.split_first()?;
            (usize::from(len), name)
        }
        _ => return None,
    };
    let name = name.get(..len)?;
    if tag >= 118 {
        String::from_utf8(name.to_vec()).ok()
    } else {
        Some(name.iter().map(|&b| char::from(b)).collect())
    }
}

/// A proper list of `{binary(), binary()}`; the bytes are checked later.
pub fn decode_header_list<'a>(term: Term<'a>) -> NifResult<Vec<(Binary<'a>, Binary<'a>)>> {
    let items = decode_list(term)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (name, value): (Term, Term) = item.decode()?;
        out.push((name.decode::<Binary>()?, value.decode::<Binary>()?));
    }
    Ok(out)
}

/// Builds a header map, rejecting names that are not tokens and values
/// with control bytes. Bytes 128..=255 in values are allowed (obs-text).
pub fn header_map(list: &[(Binary, Binary)]) -> Result<HeaderMap, String> {
    use reqwest::header::{HeaderName, HeaderValue};
    let mut map = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        let n = HeaderName::from_bytes(name.as_slice())
            .map_err(|_| format!("invalid header name: {:?}", String::from_utf8_lossy(name)))?;
        let v = HeaderValue::from_bytes(value.as_slice())
            .map_err(|_| format!("invalid value for header {n}"))?;
        map.append(n, v);
    }
    Ok(map)
}

/// An Erlang binary kept alive by a process-independent environment, so
/// that reqwest can send it without a copy.
struct BorrowedBinary {
    _env: OwnedEnv,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes belong to a refc binary that `_env` keeps referenced;
// ERTS never moves or frees it while a reference is held, and nothing
// writes to it (inspecting a binary from a NIF makes it read-only).
unsafe impl Send for BorrowedBinary {}

impl AsRef<[u8]> for BorrowedBinary {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the `Send` impl; `ptr`/`len` came from a live binary.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Turns `iodata()` into bytes. A binary is borrowed when large (no copy,
/// O(1) on the scheduler) and copied when small; a list is flattened, which
/// costs time in proportion to its size, so the Erlang side sends lists to a
/// dirty scheduler. `None` when the term is not iodata.
pub fn bytes_from_iodata(term: Term) -> Option<Bytes> {
    if let Ok(bin) = term.decode::<Binary>() {
        if bin.len() < BORROW_THRESHOLD {
            return Some(Bytes::copy_from_slice(bin.as_slice()));
        }
        let env = OwnedEnv::new();
        let saved = env.save(term);
        let (ptr, len) = env.run(|e| match saved.load(e).decode::<Binary>() {
            Ok(b) => (b.as_slice().as_ptr(), b.len()),
            Err(_) => (std::ptr::null(), 0),
        });
        if ptr.is_null() {
            return Some(Bytes::copy_from_slice(bin.as_slice()));
        }
        return Some(Bytes::from_owner(BorrowedBinary {
            _env: env,
            ptr,
            len,
        }));
    }
    if !term.is_list() {
        return None;
    }
    let flat = Binary::from_iolist(term).ok()?;
    Some(Bytes::copy_from_slice(flat.as_slice()))
}

/// Encodes a header map as `[{Name, Value}]`, names lower-case, repeated
/// names kept in the order they arrived.
pub fn encode_headers<'a>(env: Env<'a>, headers: &HeaderMap) -> Term<'a> {
    let items: Vec<Term<'a>> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().as_bytes().encode_binary(env),
                v.as_bytes().encode_binary(env),
            )
                .encode(env)
        })
        .collect();
    items.encode(env)
}

pub fn encode_version<'a>(env: Env<'a>, v: reqwest::Version) -> Term<'a> {
    let atom = match v {
        reqwest::Version::HTTP_09 => atoms::version_0_9(),
        reqwest::Version::HTTP_10 => atoms::version_1_0(),
        reqwest::Version::HTTP_2 => atoms::version_2(),
        reqwest::Version::HTTP_3 => atoms::version_3(),
        _ => atoms::version_1_1(),
    };
    atom.encode(env)
}

#[cfg(test)]
mod tests {
    use super::atom_from_etf;

    #[test]
    fn atom_names_from_the_external_format() {
        // term_to_binary('α'), 'é' (OTP 26+ and OTP 25), and a 'x' of
        // each Latin-1 tag.
        assert_eq!(
            atom_from_etf(&[131, 119, 2, 0xce, 0xb1]).as_deref(),
            Some("α")
        );
        assert_eq!(
            atom_from_etf(&[131, 119, 2, 0xc3, 0xa9]).as_deref(),
            Some("é")
        );
        assert_eq!(atom_from_etf(&[131, 100, 0, 1, 0xe9]).as_deref(), Some("é"));
        assert_eq!(atom_from_etf(&[131, 115, 1, b'x']).as_deref(), Some("x"));
        assert_eq!(
            atom_from_etf(&[131, 118, 0, 2, 0xce, 0xb1]).as_deref(),
            Some("α")
        );
        // Cut, invalid or not an atom.
        assert_eq!(atom_from_etf(&[131, 119, 3, 0xce, 0xb1]), None);
        assert_eq!(atom_from_etf(&[131, 119, 1, 0xce]), None);
        assert_eq!(atom_from_etf(&[131, 118, 0]), None);
        assert_eq!(atom_from_etf(&[131, 97, 1]), None);
        assert_eq!(atom_from_etf(&[130, 119, 1, b'x']), None);
        assert_eq!(atom_from_etf(&[]), None);
    }
}
