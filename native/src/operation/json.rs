//! JSON values as Erlang terms, for an error's `problem`.
//!
//! Objects become maps with binary keys, strings binaries, numbers integers
//! or floats, `true`/`false` themselves and `null` the atom `null` (as OTP
//! 27's `json` module does). Depth is bounded by serde_json's own recursion
//! limit, and the documents by the poller's size limit.

use rustler::{Encoder, Env, Term};
use serde_json::Value;

use crate::atoms;
use crate::term::EncodeBinary;

pub fn encode<'a>(env: Env<'a>, v: &Value) -> Term<'a> {
    match v {
        Value::Null => atoms::null().encode(env),
        Value::Bool(b) => b.encode(env),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.encode(env)
            } else if let Some(u) = n.as_u64() {
                u.encode(env)
            } else {
                n.as_f64().unwrap_or(0.0).encode(env)
            }
        }
        Value::String(s) => s.as_bytes().encode_binary(env),
        Value::Array(items) => items
            .iter()
            .map(|i| encode(env, i))
            .collect::<Vec<_>>()
            .encode(env),
        Value::Object(m) => {
            let keys: Vec<Term<'a>> = m.keys().map(|k| k.as_bytes().encode_binary(env)).collect();
            let values: Vec<Term<'a>> = m.values().map(|v| encode(env, v)).collect();
            // Keys of a serde_json map are unique, so this cannot fail.
            Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| atoms::error().encode(env))
        }
    }
}
