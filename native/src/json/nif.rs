//! `erqwest_json`'s NIFs. Each has a dirty twin: `src/erqwest_json.erl`
//! picks it when the input is too large for 1 ms on a normal scheduler.

use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::term::EncodeBinary;

rustler::atoms! {
    ok,
    error,
}

fn encode_term<'a>(env: Env<'a>, term: Term<'a>) -> NifResult<Term<'a>> {
    Ok(match super::encode(term) {
        Ok(bytes) => (ok(), bytes.encode_binary(env)).encode(env),
        Err(e) => (
            error(),
            (
                e.path().as_bytes().encode_binary(env),
                e.to_string().as_bytes().encode_binary(env),
            ),
        )
            .encode(env),
    })
}

fn decode_bin<'a>(env: Env<'a>, bin: Binary<'a>, null: Atom) -> Term<'a> {
    match super::decode(env, bin.as_slice(), null) {
        Ok(t) => (ok(), t).encode(env),
        Err(e) => (
            error(),
            (e.offset, e.to_string().as_bytes().encode_binary(env)),
        )
            .encode(env),
    }
}

/// `{ok, Json}` or `{error, {Path, Reason}}`.
#[rustler::nif]
fn json_encode<'a>(env: Env<'a>, term: Term<'a>) -> NifResult<Term<'a>> {
    encode_term(env, term)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn json_encode_dirty<'a>(env: Env<'a>, term: Term<'a>) -> NifResult<Term<'a>> {
    encode_term(env, term)
}

/// `{ok, Term}` or `{error, {Offset, Reason}}`; JSON `null` becomes `Null`.
#[rustler::nif]
fn json_decode<'a>(env: Env<'a>, bin: Binary<'a>, null: Atom) -> Term<'a> {
    decode_bin(env, bin, null)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode_dirty<'a>(env: Env<'a>, bin: Binary<'a>, null: Atom) -> Term<'a> {
    decode_bin(env, bin, null)
}
