//! JSON text to an Erlang term, for `data => json` and NDJSON.
//!
//! One function, so that the codec behind it can change without touching
//! the task: today serde_json into a `Value`, then a term (objects as maps
//! with binary keys, arrays as lists, strings as binaries, `null` as the
//! atom the caller chose).

use rustler::{Atom, Encoder, Env, Term};
use serde_json::Value;

use crate::term::EncodeBinary;

/// The term for `bytes`, or `Err` when they are not one JSON text.
pub fn decode<'a>(env: Env<'a>, bytes: &[u8], null: Atom) -> Result<Term<'a>, ()> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| ())?;
    Ok(encode(env, &v, null))
}

fn encode<'a>(env: Env<'a>, v: &Value, null: Atom) -> Term<'a> {
    match v {
        Value::Null => null.encode(env),
        Value::Bool(b) => b.encode(env),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.encode(env),
            (None, Some(u)) => u.encode(env),
            _ => n.as_f64().unwrap_or(0.0).encode(env),
        },
        Value::String(s) => s.as_bytes().encode_binary(env),
        Value::Array(items) => items
            .iter()
            .map(|i| encode(env, i, null))
            .collect::<Vec<_>>()
            .encode(env),
        Value::Object(m) => {
            let keys: Vec<Term<'a>> = m.keys().map(|k| k.as_bytes().encode_binary(env)).collect();
            let values: Vec<Term<'a>> = m.values().map(|v| encode(env, v, null)).collect();
            // Keys of a serde_json map are unique, so this cannot fail.
            Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| null.encode(env))
        }
    }
}
