//! A response body as it comes in: over NIF calls, and once it is large
//! over a runtime task's reads (`bulk.rs`).
//!
//! One buffer while the body is small. A larger body whose length is
//! announced is copied into one block of that length, made at its first
//! byte, which is the answer as it is: each byte copied once, and the
//! block's pages faulted in ahead of the writes on the runtime
//! ([`Region::populate`]). A larger body of unknown length is copied
//! frame by frame into blocks of [`BLOCK`] bytes, and the blocks are
//! joined on the runtime (`bulk.rs`). Either way each frame is dropped
//! at once, so that hyper can reuse its read buffer. Why not simpler:
//! - growing one buffer copies everything received so far inside one NIF
//!   call (tens of ms at a hundred MB);
//! - keeping hyper's frames would keep its read buffers alive, and large
//!   amounts freed through mimalloc are given back to the OS later by
//!   whichever thread allocates next, possibly a scheduler in a NIF call
//!   (see [`Pieces::join`]); glibc's allocator returns a block's memory
//!   in the thread that frees it;
//! - joining blocks after an announced length cost as much again as
//!   receiving the body (a copy, and a page fault per 4 KB of the copy).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::region::Region;

/// The one buffer holds at most this much; it may grow (and be copied)
/// inside a NIF call up to this size.
const INLINE: usize = 1024 * 1024;

/// The size of each block after the buffer.
const BLOCK: usize = 1024 * 1024;

/// An announced length up to this gets its block up front; past it,
/// blocks as for an unknown length. The block takes address space only:
/// memory is committed as far as the body was written, plus [`AHEAD`].
const PRESIZE_MAX: usize = 1024 * 1024 * 1024;

/// How far past the last byte written the announced block is faulted
/// in, in jobs of [`STEP`] bytes: enough that the writes never catch up
/// at a gigabyte per second, little enough that a server announcing more
/// than it sends commits no more than this.
const AHEAD: usize = 8 * 1024 * 1024;
const STEP: usize = 2 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Received {
    buf: BytesMut,
    /// Set once the body outgrew the buffer (boxed: most bodies do not),
    /// or at the first byte of an announced length over [`INLINE`].
    rest: Option<Box<Pieces>>,
    /// Boxed: most bodies have none.
    ahead: Option<Box<Ahead>>,
    /// An announced length over [`INLINE`] whose block is made with its
    /// first byte. That byte is read on the runtime (`bulk.rs`): mapping
    /// the block waits while other memory is being unmapped (20-30 ms for
    /// a body of 256 MB that went before), which no scheduler should.
    pending: Option<Box<Pending>>,
}

#[derive(Debug)]
struct Pending {
    len: usize,
    rt: Option<tokio::runtime::Handle>,
}

/// The announced block's faulting in: where to, and on which runtime.
#[derive(Debug)]
struct Ahead {
    rt: tokio::runtime::Handle,
    asked: usize,
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
    /// `announced` is the body's exact length, when hyper knows it;
    /// `rt`, where the pages of its block are faulted in ahead (none in
    /// tests that want the writes alone).
    pub(crate) fn new(announced: Option<usize>, rt: Option<&tokio::runtime::Handle>) -> Self {
        let sized = announced.filter(|n| (INLINE + 1..=PRESIZE_MAX).contains(n));
        Received {
            buf: BytesMut::with_capacity(if sized.is_some() {
                0
            } else {
                announced.unwrap_or(0).min(INLINE)
            }),
            rest: None,
            ahead: None,
            pending: sized.map(|len| {
                Box::new(Pending {
                    len,
                    rt: rt.cloned(),
                })
            }),
        }
    }

    /// The announced length's block, at the first byte; where the system
    /// has no such allocation, the buffer and blocks as for an unknown
    /// length.
    fn make_block(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let Some(block) = Block::with_capacity(p.len, p.rt.clone()) else {
            return;
        };
        self.rest = Some(Box::new(Pieces {
            head: Bytes::new(),
            blocks: vec![block],
        }));
        self.ahead = p.rt.map(|rt| Box::new(Ahead { rt, asked: 0 }));
        self.fault_ahead();
    }

    /// Asks for the announced block's pages up to [`AHEAD`] past the
    /// last byte written.
    fn fault_ahead(&mut self) {
        let (Some(ahead), Some(rest)) = (&mut self.ahead, &self.rest) else {
            return;
        };
        let Some(block) = rest.blocks.first() else {
            return;
        };
        let cap = block.region.capacity();
        while ahead.asked < cap && ahead.asked < block.len + AHEAD {
            let to = (ahead.asked + STEP).min(cap);
            block.region.populate(&ahead.rt, ahead.asked, to);
            ahead.asked = to;
        }
    }

    pub(crate) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.make_block();
        let rest = match &mut self.rest {
            Some(rest) => rest,
            None => {
                // INLINE, not the capacity: growing the buffer may have
                // doubled that past INLINE, and again, without bound.
                if self.buf.len() + data.len() <= INLINE {
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
        self.fault_ahead();
    }

    /// Whether the body is over [`INLINE`], or announced to be: the rest
    /// of it is read on the runtime (`bulk.rs`).
    pub(crate) fn large(&self) -> bool {
        self.rest.is_some() || self.pending.is_some()
    }

    pub(crate) fn finish(self) -> Collected {
        match self.rest {
            None => Collected::Whole(self.buf.freeze()),
            Some(rest) => match *rest {
                // The announced length's block: already the whole body.
                Pieces { head, mut blocks } if head.is_empty() && blocks.len() == 1 => {
                    match blocks.pop() {
                        Some(block) => Collected::Whole(Bytes::from_owner(block)),
                        None => Collected::Whole(Bytes::new()),
                    }
                }
                rest => Collected::Pieces(rest),
            },
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
        // Joined on the runtime: freed on its blocking pool too.
        let mut all = Block::must(len, tokio::runtime::Handle::try_current().ok());
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
    region: Arc<Region>,
    len: usize,
}

impl Block {
    fn new() -> Block {
        Block::must(BLOCK, None)
    }

    /// Memory for bytes already here: its absence is the allocator's
    /// failure, as for any other allocation.
    fn must(cap: usize, free_on: Option<tokio::runtime::Handle>) -> Block {
        match Block::with_capacity(cap, free_on) {
            Some(b) => b,
            None => std::alloc::handle_alloc_error(
                std::alloc::Layout::array::<u8>(cap).unwrap_or(std::alloc::Layout::new::<u8>()),
            ),
        }
    }

    fn with_capacity(cap: usize, free_on: Option<tokio::runtime::Handle>) -> Option<Block> {
        Region::new(cap, free_on).map(|region| Block { region, len: 0 })
    }

    fn room(&self) -> usize {
        self.region.capacity() - self.len
    }

    fn extend(&mut self, data: &[u8]) {
        let n = data.len().min(self.room());
        // Safe: `n` bytes fit after `len`, `data` is not in the block, and
        // the block is its region's only reader and writer.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.region.as_ptr().add(self.len), n);
        }
        self.len += n;
    }

    fn as_slice(&self) -> &[u8] {
        // Safe: the first `len` bytes were written by `extend`.
        unsafe { std::slice::from_raw_parts(self.region.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({} of {})", self.len, self.region.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(announced: Option<usize>, frames: &[usize]) -> Collected {
        let mut r = Received::new(announced, None);
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
        for announced in [None, Some(100), Some(PRESIZE_MAX + 1)] {
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
    fn an_announced_large_size_is_one_block_that_is_the_answer() {
        let mb = 1024 * 1024;
        let frames = [300_000, 0, 65_536, 2 * mb];
        let total: usize = frames.iter().sum();
        match feed(Some(total), &frames) {
            Collected::Whole(b) => assert_eq!(b.as_ref(), expected(total).as_slice()),
            Collected::Pieces(p) => panic!("in pieces: {p:?}"),
        }
    }

    #[test]
    fn more_than_announced_still_arrives_whole() {
        let mb = 1024 * 1024;
        let frames = [2 * mb, 10, 3 * mb];
        let total: usize = frames.iter().sum();
        let Collected::Pieces(p) = feed(Some(2 * mb + 1), &frames) else {
            panic!("the announced block alone")
        };
        assert_eq!(p.blocks[0].len, 2 * mb + 1);
        assert_eq!(p.join().as_ref(), expected(total).as_slice());
    }

    /// The blocking pool faults pages in while the body is written, never
    /// more than `AHEAD` (and a step) past what arrived, and what is
    /// written stays as written.
    #[test]
    fn the_announced_block_is_faulted_in_ahead_of_the_writes() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let announced = 64 * 1024 * 1024;
        let mut r = Received::new(Some(announced), Some(rt.handle()));
        // Nothing is mapped before the first byte.
        assert!(r.rest.is_none() && r.large());
        let mut next = 0u8;
        let mut frame = |n: usize| -> Bytes {
            (0..n)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect::<Vec<u8>>()
                .into()
        };
        r.push(frame(1));
        let region = match &r.rest {
            Some(p) => p.blocks[0].region.clone(),
            None => panic!("no block for {announced}"),
        };
        let wait_for = |n: usize| {
            let t0 = std::time::Instant::now();
            while region.populated() < n && t0.elapsed() < std::time::Duration::from_secs(5) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        // After the first byte: AHEAD past it, in whole steps, and no
        // further.
        let first = r.ahead.as_ref().map_or(0, |a| a.asked);
        assert_eq!(first, AHEAD + STEP);
        wait_for(first);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(region.populated(), first);
        let mut written = 1;
        while written < 20 * 1024 * 1024 {
            r.push(frame(65_536));
            written += 65_536;
        }
        let asked = r.ahead.as_ref().map_or(0, |a| a.asked);
        assert!(
            (written + AHEAD..=written + AHEAD + STEP).contains(&asked),
            "{asked}"
        );
        wait_for(asked);
        assert_eq!(region.populated(), asked);
        drop(region);
        // Short of the announced length (hyper would have failed the
        // body): still the one block, as far as it was written.
        let Collected::Whole(whole) = r.finish() else {
            panic!("the one block, in pieces")
        };
        assert_eq!(whole.as_ref(), expected(written).as_slice());
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

    /// Frames of odd sizes grow the buffer's capacity past INLINE (the
    /// buffer doubles it); the body still leaves the buffer there.
    #[test]
    fn a_body_of_unknown_length_leaves_the_buffer_at_inline() {
        let mut r = Received::new(None, None);
        for n in [600_000, 300_000, 200_000, 400_000] {
            r.push(Bytes::from(vec![1u8; n]));
            assert!(r.buf.len() <= INLINE, "{} in the buffer", r.buf.len());
        }
        assert!(r.large());
        let Collected::Pieces(p) = r.finish() else {
            panic!("1.5 MB in the one buffer")
        };
        assert_eq!(p.head.len(), 900_000);
        assert_eq!(p.len(), 1_500_000);
    }

    #[test]
    fn an_absurd_announced_size_buffers_at_most_inline() {
        let r = Received::new(Some(usize::MAX), None);
        assert_eq!(r.buf.capacity(), INLINE);
    }
}
