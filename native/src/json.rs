//! JSON straight to and from Erlang terms, without an intermediate tree.
//!
//! [`decode`] parses bytes into terms in the caller's environment (a NIF's,
//! or the per-thread message environment of a request task, so that a
//! response body arrives decoded); [`encode`] writes a term as JSON bytes.
//!
//! | JSON | term |
//! | --- | --- |
//! | object | map with binary keys (a repeated key: the last wins) |
//! | array | list |
//! | string | UTF-8 binary |
//! | integer | integer, bignums included (up to [`MAX_INTEGER_DIGITS`] digits) |
//! | number with a fraction or exponent | float |
//! | `true`, `false` | `true`, `false` |
//! | `null` | the `null` argument (Erlang `null`, Elixir `nil`) |
//!
//! The parser is our own rather than serde_json's: serde_json reports
//! line and column instead of a byte offset, needs its process-wide
//! `arbitrary_precision` feature for integers beyond 64 bits (which would
//! change `serde_json::Value` for every other user in the crate), and
//! either recurses to its 128-level limit or, with the limit off, until the
//! stack runs out. Ours keeps an explicit stack, so nesting is a
//! documented limit ([`MAX_DEPTH`]) and never a stack overflow. Floats are
//! read by the standard library (correctly rounded; a number of more than
//! 4 KB is first rewritten with a small exponent, see `float.rs`) and
//! written by `zmij`
//! (the shortest form that reads back the same, as serde_json writes them).
//!
//! ```text
//! {"a":[1,2.5,"x",null]}  <->  #{<<"a">> => [1, 2.5, <<"x">>, null]}
//! ```

mod bignum;
mod decode;
mod encode;
mod float;
mod nif;
mod term_sink;

pub use decode::{DecodeError, MAX_DEPTH, MAX_INTEGER_DIGITS};
pub use encode::EncodeError;

use rustler::{Atom, Env, Term};

/// Decodes one JSON document (surrounding whitespace allowed, nothing
/// else) into a term built in `env`; JSON `null` becomes `null`.
pub fn decode<'a>(env: Env<'a>, bytes: &[u8], null: Atom) -> Result<Term<'a>, DecodeError> {
    let mut sink = term_sink::TermSink::new(env, null);
    let raw = decode::parse(bytes, &mut sink)?;
    Ok(sink.term(raw))
}

/// Encodes a term as JSON. Maps may have binary, atom or integer keys;
/// `true`, `false`, `null` and `nil` are the only atoms allowed as values.
/// Anything else is an [`EncodeError`] naming where it was.
pub fn encode(term: Term) -> Result<Vec<u8>, EncodeError> {
    encode::encode(term)
}
