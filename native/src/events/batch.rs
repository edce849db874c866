//! `batch => true`: the terms of one `{erqwest_events, Ref, events, List}`.
//!
//! Besides one message for many events, a list is cheaper to build than
//! its events one by one: every event's binary longer than a heap binary
//! (64 bytes) is a sub-binary of one binary for the whole list, so the VM
//! allocates one reference-counted binary per message instead of one per
//! event; the default type `<<"message">>` and an ID that did not change
//! are one term shared by the list; the map keys are made once.
//!
//! The price: an event's sub-binary keeps the list's binary alive, as a
//! part of `binary:split/3` keeps the whole input (`binary:copy/1` when
//! one event is kept for long).

use bytes::Bytes;
use rustler::{Atom, Binary, Encoder, Env, NewBinary, Term};

use super::{atom, sse, MAX_BATCH};
use crate::term::EncodeBinary;

/// Binaries up to this size are made on the message's heap (as the VM
/// makes them): copying them is cheaper than a sub-binary's bookkeeping.
const HEAP_BINARY: usize = 64;

/// How many events the next `events` message carries: what is queued, at
/// most the credit left and [`MAX_BATCH`].
pub(super) fn batch_len(credit: u64, queued: usize) -> usize {
    let credit = usize::try_from(credit).unwrap_or(usize::MAX);
    queued.min(credit).min(MAX_BATCH)
}

/// Where each piece of a list goes, given their lengths in order: its
/// offset in the shared binary, or `None` for a heap binary of its own;
/// and the shared binary's size.
fn layout(lens: impl Iterator<Item = usize>) -> (Vec<Option<usize>>, usize) {
    let mut total = 0;
    let at = lens
        .map(|n| {
            (n > HEAP_BINARY).then(|| {
                let at = total;
                total += n;
                at
            })
        })
        .collect();
    (at, total)
}

/// The pieces of a list as terms, taken in the order of [`layout`].
struct Pieces<'a> {
    env: Env<'a>,
    shared: Option<Binary<'a>>,
    at: std::vec::IntoIter<Option<usize>>,
}

impl<'a> Pieces<'a> {
    fn new<'p>(env: Env<'a>, pieces: impl Iterator<Item = &'p [u8]> + Clone) -> Self {
        let (at, total) = layout(pieces.clone().map(<[u8]>::len));
        let shared = (total > 0).then(|| {
            let mut bin = NewBinary::new(env, total);
            let dst = bin.as_mut_slice();
            for (p, at) in pieces.zip(&at) {
                if let Some(at) = *at {
                    dst[at..at + p.len()].copy_from_slice(p);
                }
            }
            Binary::from(bin)
        });
        Pieces {
            env,
            shared,
            at: at.into_iter(),
        }
    }

    /// The next piece, which must be `bytes`.
    fn next(&mut self, bytes: &[u8]) -> Term<'a> {
        let sub = match (self.at.next().flatten(), &self.shared) {
            (Some(at), Some(shared)) => shared.make_subbinary(at, bytes.len()).ok(),
            _ => None,
        };
        match sub {
            Some(b) => b.to_term(self.env),
            None => bytes.encode_binary(self.env),
        }
    }
}

/// SSE events as a list of `#{type, data, id}` (and `json_error`), as
/// `task::encode_sse` makes each.
pub(super) fn sse_list<'a>(
    env: Env<'a>,
    events: &[sse::Event],
    json: bool,
    null: Atom,
) -> Term<'a> {
    let own_kind = |e: &sse::Event| e.has_own_kind();
    let pieces = events.iter().flat_map(|e| {
        let kind = own_kind(e).then(|| e.kind());
        let data = (!json).then_some(&e.data[..]);
        kind.into_iter().chain(data)
    });
    let mut pieces = Pieces::new(env, pieces);
    let message = b"message".encode_binary(env);
    let undefined = crate::atoms::undefined().encode(env);
    // In the VM's key order (atoms by name), so that the VM's sort of a
    // new map's keys only checks them; `json_error` only when true.
    let keys = [
        atom::data().encode(env),
        atom::id().encode(env),
        atom::type_().encode(env),
    ];
    let keys_bad = [
        atom::data().encode(env),
        atom::id().encode(env),
        atom::json_error().encode(env),
        atom::type_().encode(env),
    ];
    let yes = true.encode(env);
    let mut last_id: Option<(&Bytes, Term<'a>)> = None;
    let items: Vec<Term<'a>> = events
        .iter()
        .map(|e| {
            let kind = if own_kind(e) {
                pieces.next(e.kind())
            } else {
                message
            };
            let (data, bad) = if json {
                match crate::json::decode(env, &e.data, null) {
                    Ok(t) => (t, false),
                    Err(_) => (e.data.encode_binary(env), true),
                }
            } else {
                (pieces.next(&e.data), false)
            };
            let id = match &e.id {
                None => undefined,
                Some(i) => match last_id {
                    Some((prev, t)) if prev == i => t,
                    _ => {
                        let t = i.as_ref().encode_binary(env);
                        last_id = Some((i, t));
                        t
                    }
                },
            };
            let map = if bad {
                Term::map_from_term_arrays(env, &keys_bad, &[data, id, yes, kind])
            } else {
                Term::map_from_term_arrays(env, &keys, &[data, id, kind])
            };
            map.unwrap_or_else(|_| crate::atoms::error().encode(env))
        })
        .collect();
    items.encode(env)
}

/// Lines as a list of binaries; NDJSON as a list of terms (or
/// `{json_error, Line}`), as `task::encode_line` makes each.
pub(super) fn lines_list<'a>(env: Env<'a>, lines: &[Vec<u8>], json: bool, null: Atom) -> Term<'a> {
    if json {
        let items: Vec<Term<'a>> = lines
            .iter()
            .map(|l| match crate::json::decode(env, l, null) {
                Ok(t) => t,
                Err(_) => (atom::json_error(), l.encode_binary(env)).encode(env),
            })
            .collect();
        return items.encode(env);
    }
    let mut pieces = Pieces::new(env, lines.iter().map(Vec::as_slice));
    let items: Vec<Term<'a>> = lines.iter().map(|l| pieces.next(l)).collect();
    items.encode(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_len_is_bounded_by_queue_credit_and_cap() {
        assert_eq!(batch_len(3, 10), 3);
        assert_eq!(batch_len(1000, 7), 7);
        assert_eq!(batch_len(0, 7), 0);
        assert_eq!(batch_len(5, 0), 0);
        assert_eq!(batch_len(u64::MAX, 50_000), MAX_BATCH);
        assert_eq!(batch_len(20_000, 15_000), MAX_BATCH);
        assert_eq!(batch_len(u64::MAX, usize::MAX), MAX_BATCH);
    }

    #[test]
    fn layout_shares_only_pieces_longer_than_heap_binaries() {
        let (at, total) = layout([100, 3, 64, 65, 0, 200].into_iter());
        assert_eq!(at, vec![Some(0), None, None, Some(100), None, Some(165)]);
        assert_eq!(total, 365);
        let (at, total) = layout([1, 2, 64].into_iter());
        assert_eq!(at, vec![None, None, None]);
        assert_eq!(total, 0);
        let (at, total) = layout(std::iter::empty());
        assert!(at.is_empty());
        assert_eq!(total, 0);
    }
}
