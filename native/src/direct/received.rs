//! A response body as it comes in over several NIF calls.
//!
//! One buffer while the body fits the size it announced (or, without
//! one, while it is small); past that the frames are kept as hyper gave
//! them. Growing a single buffer would copy everything received so far
//! inside one NIF call (tens of ms at a hundred MB), so a body that
//! outgrows its buffer is joined on the runtime instead
//! (`tasks::complete`).

use bytes::{Bytes, BytesMut};

/// Announced sizes are trusted up to this much buffer.
const MAX_HINT: usize = 64 * 1024 * 1024;

/// A buffer may grow (and be copied) inside a NIF call up to this size.
const GROW_INLINE: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Received {
    buf: BytesMut,
    /// Everything after the buffer filled up, in order; the buffer's
    /// contents are its first piece.
    pieces: Vec<Bytes>,
}

/// The whole body: in one piece, or in pieces still to be joined.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Collected {
    Whole(Bytes),
    Pieces(Vec<Bytes>),
}

impl Received {
    /// `announced` is the response's `content-length`, if it had one.
    pub(crate) fn new(announced: Option<usize>) -> Self {
        Received {
            buf: BytesMut::with_capacity(announced.unwrap_or(0).min(MAX_HINT)),
            pieces: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, data: Bytes) {
        if self.pieces.is_empty() {
            let room = self.buf.capacity().max(GROW_INLINE);
            if self.buf.len() + data.len() <= room {
                self.buf.extend_from_slice(&data);
                return;
            }
            if !self.buf.is_empty() {
                self.pieces.push(self.buf.split().freeze());
            }
        }
        if !data.is_empty() {
            self.pieces.push(data);
        }
    }

    pub(crate) fn finish(self) -> Collected {
        if self.pieces.is_empty() {
            Collected::Whole(self.buf.freeze())
        } else {
            Collected::Pieces(self.pieces)
        }
    }
}

impl Collected {
    /// One contiguous body: a copy of everything when it came in pieces,
    /// which is why that runs on the runtime.
    pub(crate) fn join(self) -> Bytes {
        match self {
            Collected::Whole(b) => b,
            Collected::Pieces(pieces) => {
                let len = pieces.iter().map(Bytes::len).sum();
                let mut all = BytesMut::with_capacity(len);
                for p in &pieces {
                    all.extend_from_slice(p);
                }
                all.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(announced: Option<usize>, frames: &[usize]) -> Collected {
        let mut r = Received::new(announced);
        let mut next = 0u8;
        for &n in frames {
            let frame: Vec<u8> = (0..n)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            r.push(Bytes::from(frame));
        }
        r.finish()
    }

    fn expected(total: usize) -> Vec<u8> {
        (1..=total).map(|i| (i % 256) as u8).collect()
    }

    #[test]
    fn a_small_body_stays_in_one_buffer() {
        let c = feed(None, &[10, 0, 20]);
        assert_eq!(c, Collected::Whole(Bytes::from(expected(30))));
    }

    #[test]
    fn an_announced_size_is_one_buffer_however_large() {
        let mb = 1024 * 1024;
        match feed(Some(3 * mb), &[mb, mb, mb]) {
            Collected::Whole(b) => assert_eq!(b.as_ref(), expected(3 * mb).as_slice()),
            other => panic!("in pieces: {} bytes", other.join().len()),
        }
    }

    #[test]
    fn an_unannounced_large_body_is_kept_in_pieces_in_order() {
        let frames = [300_000, 300_000, 300_000, 300_000, 800_000, 0, 5];
        let c = feed(None, &frames);
        let Collected::Pieces(ref p) = c else {
            panic!("one buffer")
        };
        // The buffer takes frames while it has room (it may have grown
        // past 1 MB when it last grew); what comes after, as it came.
        let lens: Vec<usize> = p.iter().map(Bytes::len).collect();
        assert_eq!(lens[1..], [800_000, 5], "{lens:?}");
        assert!((900_000..=1_200_000).contains(&lens[0]), "{lens:?}");
        assert_eq!(c.join().as_ref(), expected(2_000_005).as_slice());
    }

    #[test]
    fn a_body_longer_than_announced_still_arrives_whole() {
        let c = feed(Some(100), &[60, 60, 2_000_000]);
        assert!(matches!(c, Collected::Pieces(_)));
        assert_eq!(c.join().as_ref(), expected(2_000_120).as_slice());
    }

    #[test]
    fn an_absurd_announced_size_buffers_at_most_the_hint() {
        let r = Received::new(Some(usize::MAX));
        assert_eq!(r.buf.capacity(), MAX_HINT);
    }
}
