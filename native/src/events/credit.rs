//! Credit given by `erqwest_events:active/2`, as `inet:setopts/2`'s
//! `{active, N}`: below both the event task and the command queue that
//! carries it (`inbox.rs`).

use rustler::{Atom, Error as NifError, NifResult, Term};

use crate::term::decode_int;

rustler::atoms! {
    once,
}

/// Credit given by `active/2`, as for `inet:setopts(S, [{active, N}])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    /// One more event, then `passive` (replaces what was left).
    Once,
    /// N more events (added to what is left).
    Add(u32),
}

impl Credit {
    pub(crate) fn decode(t: Term) -> NifResult<Self> {
        if let Ok(a) = t.decode::<Atom>() {
            return if a == once() {
                Ok(Credit::Once)
            } else {
                Err(NifError::BadArg)
            };
        }
        match decode_int::<u32>(t)? {
            0 => Err(NifError::BadArg),
            n => Ok(Credit::Add(n)),
        }
    }

    /// The credit left after this one is given on top of `left`.
    pub fn apply(self, left: u64) -> u64 {
        match self {
            Credit::Once => 1,
            Credit::Add(n) => left.saturating_add(u64::from(n)),
        }
    }
}
