//! The parser's values made as Erlang terms, straight in the caller's
//! environment.
//!
//! Values are kept as raw term handles so that a finished array or object
//! goes to `enif_make_list_from_array` / `enif_make_map_from_arrays`
//! without another copy of its elements.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rustler::sys::{self, ErlNifTerm};
use rustler::{Atom, Binary, Encoder, Env, Term};

use super::bignum::etf_from_digits;
use super::decode::Sink;

pub struct TermSink<'a> {
    env: Env<'a>,
    null: ErlNifTerm,
    true_: ErlNifTerm,
    false_: ErlNifTerm,
    /// Object keys already made, shared by every object that repeats
    /// them: an API's array of objects repeats the same few keys, and one
    /// binary per key instead of one per occurrence is about a quarter of
    /// the decoded term's memory, and of the garbage collector's work on
    /// it in the receiving process (copying collection keeps sharing).
    keys: HashMap<Box<[u8]>, ErlNifTerm, BuildHasherDefault<Fnv>>,
}

/// Keys longer than this are not shared (rarely repeated, costly to hash).
const MAX_SHARED_KEY: usize = 64;
/// At most this many distinct keys are kept per document.
const MAX_SHARED_KEYS: usize = 4096;

/// FNV-1a: short keys, no adversary that matters (a document can only
/// make its own decoding slower, and the table is bounded).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl<'a> TermSink<'a> {
    pub fn new(env: Env<'a>, null: Atom) -> Self {
        TermSink {
            env,
            null: null.encode(env).as_c_arg(),
            true_: true.encode(env).as_c_arg(),
            false_: false.encode(env).as_c_arg(),
            keys: HashMap::default(),
        }
    }

    /// A finished value as a term of `env`.
    pub fn term(&self, raw: ErlNifTerm) -> Term<'a> {
        // SAFETY: every raw value was made in `self.env`.
        unsafe { Term::new(self.env, raw) }
    }
}

impl Sink for TermSink<'_> {
    type Value = ErlNifTerm;

    fn null(&mut self) -> ErlNifTerm {
        self.null
    }

    fn boolean(&mut self, b: bool) -> ErlNifTerm {
        if b {
            self.true_
        } else {
            self.false_
        }
    }

    fn integer(&mut self, i: i64) -> ErlNifTerm {
        i.encode(self.env).as_c_arg()
    }

    fn big_integer(&mut self, negative: bool, digits: &[u8]) -> Option<ErlNifTerm> {
        let etf = etf_from_digits(negative, digits);
        self.env.binary_to_term(&etf).map(|(t, _)| t.as_c_arg())
    }

    fn float(&mut self, f: f64) -> ErlNifTerm {
        f.encode(self.env).as_c_arg()
    }

    fn string(&mut self, s: &[u8]) -> ErlNifTerm {
        let bin = rustler::NewBinary::from_slice(self.env, s);
        Term::from(bin).as_c_arg()
    }

    fn key(&mut self, s: &[u8]) -> ErlNifTerm {
        if s.len() > MAX_SHARED_KEY {
            return self.string(s);
        }
        if let Some(t) = self.keys.get(s) {
            return *t;
        }
        let t = self.string(s);
        if self.keys.len() < MAX_SHARED_KEYS {
            self.keys.insert(s.into(), t);
        }
        t
    }

    fn array(&mut self, items: Vec<ErlNifTerm>) -> ErlNifTerm {
        let env = self.env.as_c_arg();
        // SAFETY: the elements are terms of this environment.
        match u32::try_from(items.len()) {
            Ok(n) => unsafe { sys::enif_make_list_from_array(env, items.as_ptr(), n) },
            // Over 4 billion elements (an input of many gigabytes): the
            // array call takes a 32-bit count, so cons them instead.
            Err(_) => items.iter().rev().fold(
                unsafe { sys::enif_make_list_from_array(env, items.as_ptr(), 0) },
                |list, item| unsafe { sys::enif_make_list_cell(env, *item, list) },
            ),
        }
    }

    fn object(&mut self, keys: Vec<ErlNifTerm>, values: Vec<ErlNifTerm>) -> ErlNifTerm {
        let n = keys.len().min(values.len());
        if let Some(map) = self.map_of_distinct(&keys[..n], &values[..n]) {
            return map;
        }
        // A repeated key: keep the last value of each, in one more pass,
        // then build the map once (a put per pair would copy a flat map
        // per pair).
        let (keys, values) = self.last_of_each(&keys[..n], &values[..n]);
        if let Some(map) = self.map_of_distinct(&keys, &values) {
            return map;
        }
        // Not reached with binary keys, which are now distinct; kept so
        // that no path returns a wrong map.
        let env = self.env.as_c_arg();
        let mut map = unsafe { sys::enif_make_new_map(env) };
        for (k, v) in keys.iter().zip(&values) {
            let mut next = ErlNifTerm::default();
            if unsafe { sys::enif_make_map_put(env, map, *k, *v, &mut next) } != 0 {
                map = next;
            }
        }
        map
    }
}

/// Up to this many pairs a map is flat; `enif_make_map_from_arrays`
/// rejects a repeated key only up to here (OTP 25).
const FLATMAP_LIMIT: usize = 32;

impl TermSink<'_> {
    /// The map of `keys` and `values`, or `None` if a key repeats.
    fn map_of_distinct(&self, keys: &[ErlNifTerm], values: &[ErlNifTerm]) -> Option<ErlNifTerm> {
        let env = self.env.as_c_arg();
        let mut map = ErlNifTerm::default();
        // SAFETY: keys and values are terms of this environment, and as
        // many of each.
        let made = unsafe {
            sys::enif_make_map_from_arrays(
                env,
                keys.as_ptr(),
                values.as_ptr(),
                keys.len(),
                &mut map,
            )
        };
        if made == 0 {
            return None;
        }
        // Over 32 pairs the VM builds a hash map and merges repeated keys
        // instead of refusing them; if 32 or fewer remain, that map has a
        // layout the VM itself never makes for so few keys, so it compares
        // unequal to its equal and is not found in ets. A count that is
        // short of the pairs' is the sign (one O(1) call).
        if keys.len() > FLATMAP_LIMIT {
            let mut size = 0;
            // SAFETY: `map` was just made in this environment.
            let ok = unsafe { sys::enif_get_map_size(env, map, &mut size) };
            if ok == 0 || size != keys.len() {
                return None;
            }
        }
        Some(map)
    }

    /// Each key once, where it first appears, with the value of its last
    /// appearance (what `maps:from_list/1` keeps). Linear in the pairs.
    fn last_of_each(
        &self,
        keys: &[ErlNifTerm],
        values: &[ErlNifTerm],
    ) -> (Vec<ErlNifTerm>, Vec<ErlNifTerm>) {
        let mut index: HashMap<&[u8], usize, BuildHasherDefault<Fnv>> = HashMap::default();
        let mut out_keys = Vec::with_capacity(keys.len());
        let mut out_values = Vec::with_capacity(values.len());
        for (&k, &v) in keys.iter().zip(values) {
            // Keys are the binaries `key` made; anything else (never the
            // case) is kept as a distinct key.
            let Ok(bin) = self.term(k).decode::<Binary>() else {
                out_keys.push(k);
                out_values.push(v);
                continue;
            };
            match index.entry(bin.as_slice()) {
                Entry::Occupied(e) => out_values[*e.get()] = v,
                Entry::Vacant(e) => {
                    e.insert(out_keys.len());
                    out_keys.push(k);
                    out_values.push(v);
                }
            }
        }
        (out_keys, out_values)
    }
}
