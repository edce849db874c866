//! A response body as it comes in over several NIF calls.
//!
//! One buffer while the body is small. Past that, each frame is copied
//! into blocks of [`BLOCK`] bytes from the system allocator and dropped
//! at once (so that hyper can reuse its read buffer), and the blocks are
//! joined on the runtime (`tasks::complete`). Why not simpler:
//! - growing one buffer copies everything received so far inside one NIF
//!   call (tens of ms at a hundred MB);
//! - keeping hyper's frames would keep its read buffers alive, and large
//!   amounts freed through mimalloc are given back to the OS later by
//!   whichever thread allocates next, possibly a scheduler in a NIF call
//!   (see [`Pieces::join`]); glibc's allocator returns a block's memory
//!   in the thread that frees it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

use bytes::{Bytes, BytesMut};

/// The one buffer holds at most this much; it may grow (and be copied)
/// inside a NIF call up to this size.
const INLINE: usize = 1024 * 1024;

/// The size of each block after the buffer.
const BLOCK: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Received {
    buf: BytesMut,
    /// Set once the body outgrew the buffer (boxed: most bodies do not).
    rest: Option<Box<Pieces>>,
}

/// The whole body: in one piece, or in pieces still to be joined.
#[derive(Debug)]
pub(crate) enum Collected {
    Whole(Bytes),
    Pieces(Pieces),
}

/// The buffer's contents, then the blocks, in order.
#[derive(Debug)]
pub(crate) struct Pieces {
    head: Bytes,
    blocks: Vec<Block>,
}

impl Received {
    /// `announced` is the body's exact length, when hyper knows it.
    pub(crate) fn new(announced: Option<usize>) -> Self {
        Received {
            buf: BytesMut::with_capacity(announced.unwrap_or(0).min(INLINE)),
            rest: None,
        }
    }

    pub(crate) fn push(&mut self, data: Bytes) {
        let rest = match &mut self.rest {
            Some(rest) => rest,
            None => {
                let room = self.buf.capacity().max(INLINE);
                if self.buf.len() + data.len() <= room {
                    self.buf.extend_from_slice(&data);
                    return;
                }
                self.rest.insert(Box::new(Pieces {
                    head: self.buf.split().freeze(),
                    blocks: Vec::new(),
                }))
            }
        };
        rest.append(&data);
    }

    pub(crate) fn finish(self) -> Collected {
        match self.rest {
            None => Collected::Whole(self.buf.freeze()),
            Some(rest) => Collected::Pieces(*rest),
        }
    }
}

impl Pieces {
    fn append(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.blocks.last().is_none_or(|b| b.room() == 0) {
                self.blocks.push(Block::new());
            }
            let Some(block) = self.blocks.last_mut() else {
                return;
            };
            let n = block.room().min(data.len());
            block.extend(&data[..n]);
            data = &data[n..];
        }
    }

    fn len(&self) -> usize {
        self.head.len() + self.blocks.iter().map(|b| b.len).sum::<usize>()
    }

    /// One contiguous body: a copy of everything, which is why it runs
    /// on the runtime; the blocks are freed there too. The body itself is
    /// also the system allocator's: freed from mimalloc, a body this size
    /// is given back to the OS by whichever thread next allocates from
    /// the arena after the purge delay, which may be a scheduler inside a
    /// NIF call (30-70 ms after a 256 MB body); glibc unmaps it in the
    /// thread that frees it.
    pub(crate) fn join(self) -> Bytes {
        let len = self.len();
        if len == 0 {
            return Bytes::new();
        }
        let mut all = Block::with_capacity(len);
        all.extend(&self.head);
        for b in &self.blocks {
            all.extend(b.as_slice());
        }
        Bytes::from_owner(all)
    }
}

impl Collected {
    pub(crate) fn join(self) -> Bytes {
        match self {
            Collected::Whole(b) => b,
            Collected::Pieces(p) => p.join(),
        }
    }
}

/// Bytes from the system allocator, filled from the front.
struct Block {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// Safe: a block owns its memory alone, and the system allocator frees
// from any thread.
unsafe impl Send for Block {}
unsafe impl Sync for Block {}

impl Block {
    fn new() -> Block {
        Block::with_capacity(BLOCK)
    }

    /// Never zero-sized: the allocator does not take a zero size.
    fn with_capacity(cap: usize) -> Block {
        let layout = match Layout::from_size_align(cap.max(1), 1) {
            Ok(l) => l,
            // Only a size over isize::MAX, which no body in memory has.
            Err(_) => std::alloc::handle_alloc_error(Layout::new::<u8>()),
        };
        // Safe: the layout has a non-zero size.
        let raw = unsafe { System.alloc(layout) };
        match NonNull::new(raw) {
            Some(ptr) => Block {
                ptr,
                len: 0,
                layout,
            },
            None => std::alloc::handle_alloc_error(layout),
        }
    }

    fn room(&self) -> usize {
        self.layout.size() - self.len
    }

    fn extend(&mut self, data: &[u8]) {
        let n = data.len().min(self.room());
        // Safe: `n` bytes fit after `len`, and `data` is not in the block.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), n);
        }
        self.len += n;
    }

    fn as_slice(&self) -> &[u8] {
        // Safe: the first `len` bytes were written by `extend`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // Safe: allocated by `System` with this layout.
        unsafe { System.dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({} of {})", self.len, self.layout.size())
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
        match feed(None, &[10, 0, 20]) {
            Collected::Whole(b) => assert_eq!(b.as_ref(), expected(30).as_slice()),
            Collected::Pieces(p) => panic!("in pieces: {p:?}"),
        }
    }

    #[test]
    fn an_announced_size_up_to_inline_is_one_buffer() {
        let kb = 1024;
        match feed(Some(1024 * kb), &[512 * kb, 256 * kb, 256 * kb]) {
            Collected::Whole(b) => assert_eq!(b.as_ref(), expected(1024 * kb).as_slice()),
            Collected::Pieces(p) => panic!("in pieces: {p:?}"),
        }
    }

    #[test]
    fn a_large_body_goes_to_blocks_in_order() {
        let mb = 1024 * 1024;
        for announced in [None, Some(3 * mb), Some(100)] {
            let frames = [300_000, 300_000, 300_000, 300_000, 0, 5, 2 * mb + 7];
            let total: usize = frames.iter().sum();
            let Collected::Pieces(p) = feed(announced, &frames) else {
                panic!("one buffer for {announced:?}")
            };
            // The buffer takes frames while it has room (it may have grown
            // past 1 MB when it last grew); the rest fills whole blocks.
            assert!((900_000..=1_200_000).contains(&p.head.len()), "{p:?}");
            assert_eq!(p.len(), total);
            let last = p.blocks.len() - 1;
            assert!(p.blocks[..last].iter().all(|b| b.len == BLOCK), "{p:?}");
            assert_eq!(p.join().as_ref(), expected(total).as_slice());
        }
    }

    #[test]
    fn a_frame_larger_than_a_block_is_split() {
        let mut p = Pieces {
            head: Bytes::new(),
            blocks: Vec::new(),
        };
        let data: Vec<u8> = (0..(3 * BLOCK + 1)).map(|i| (i % 251) as u8).collect();
        p.append(&data);
        assert_eq!(p.blocks.len(), 4);
        assert_eq!(p.join().as_ref(), data.as_slice());
    }

    #[test]
    fn an_absurd_announced_size_buffers_at_most_inline() {
        let r = Received::new(Some(usize::MAX));
        assert_eq!(r.buf.capacity(), INLINE);
    }
}
