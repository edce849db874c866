//! `[{Key, Value}] | #{Key => Value}` for query strings and form bodies.
//!
//! Keys are binaries or atoms; values binaries, atoms, integers or floats
//! (written in their shortest form, `1.5`). Binaries must be UTF-8:
//! reqwest's encoders (serde_urlencoded) take text. The pairs keep their
//! order, repeated keys included; a map's order is its key order.

use rustler::{Binary, MapIterator, NifResult, Term, TermType};

use super::bad;
use crate::term::{atom_name, decode_list};

/// Key-value pairs, ready for `RequestBuilder::query` or `::form`.
pub type Pairs = Vec<(String, String)>;

pub fn decode(option: &str, t: Term) -> NifResult<Pairs> {
    let items: Vec<(Term, Term)> = if t.is_map() {
        MapIterator::new(t)
            .ok_or_else(|| bad(format!("{option}: not a map")))?
            .collect()
    } else {
        decode_list(t)
            .map_err(|_| {
                bad(format!(
                    "{option}: expected a list of {{Key, Value}} or a map"
                ))
            })?
            .into_iter()
            .map(|i| i.decode::<(Term, Term)>())
            .collect::<NifResult<_>>()
            .map_err(|_| {
                bad(format!(
                    "{option}: expected a list of {{Key, Value}} or a map"
                ))
            })?
    };
    items
        .into_iter()
        .map(|(k, v)| {
            let key = key(k).ok_or_else(|| bad(format!("{option}: a key must be a UTF-8 binary or an atom")))?;
            let value = value(v).ok_or_else(|| {
                bad(format!(
                    "{option}: the value of {key:?} must be a UTF-8 binary, an atom, an integer or a float"
                ))
            })?;
            Ok((key, value))
        })
        .collect()
}

fn key(t: Term) -> Option<String> {
    match t.get_type() {
        TermType::Binary => utf8(t),
        TermType::Atom => atom_name(t),
        _ => None,
    }
}

/// A value's text: a binary's bytes, an atom's name, a number's digits.
pub fn value(t: Term) -> Option<String> {
    match t.get_type() {
        TermType::Binary => utf8(t),
        TermType::Atom => atom_name(t),
        TermType::Integer => {
            if let Ok(i) = t.decode::<i64>() {
                return Some(i.to_string());
            }
            // Bignums: the JSON encoder writes integers the same way.
            crate::json::encode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        }
        TermType::Float => {
            let f: f64 = t.decode().ok()?;
            Some(zmij::Buffer::new().format_finite(f).to_owned())
        }
        _ => None,
    }
}

fn utf8(t: Term) -> Option<String> {
    let b: Binary = t.decode().ok()?;
    std::str::from_utf8(b.as_slice()).ok().map(str::to_owned)
}
