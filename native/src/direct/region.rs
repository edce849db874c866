//! Memory for a large response body: one allocation from the system
//! allocator, whose pages the runtime's blocking pool can fault in ahead
//! of the NIF calls that write the body into it.
//!
//! Why: each 4 KB page of fresh memory costs a page fault on its first
//! write, a few microseconds each on a VM, which was half the time of a
//! NIF call reading a large body. `MADV_POPULATE_WRITE` (Linux 5.14)
//! faults a range in without reading or writing it, so it can run on
//! another thread while the body is written; where the kernel lacks it,
//! the writes fault the pages in as before.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Set once the kernel refused `MADV_POPULATE_WRITE`: not asked again.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

const PAGE: usize = 4096;

pub(crate) struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Bytes the blocking pool has faulted in (tests look at it).
    populated: AtomicUsize,
}

// Safe: a region is plain memory; its one writer is the `Block` that owns
// it, and `populate` passes only its address to the kernel.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// `None` when the system has no such allocation to give (the size
    /// may come from the server, as an announced length).
    pub(crate) fn new(cap: usize) -> Option<Arc<Region>> {
        // Never zero-sized: the allocator does not take a zero size.
        let layout = Layout::from_size_align(cap.max(1), 1).ok()?;
        // Safe: the layout has a non-zero size.
        let raw = unsafe { System.alloc(layout) };
        NonNull::new(raw).map(|ptr| {
            Arc::new(Region {
                ptr,
                layout,
                populated: AtomicUsize::new(0),
            })
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[cfg(test)]
    pub(crate) fn populated(&self) -> usize {
        self.populated.load(Ordering::Relaxed)
    }

    /// Has the runtime's blocking pool fault in the pages of `from..to`.
    /// The job holds the region, so its memory stays mapped until the
    /// job is done even if the body is dropped first.
    pub(crate) fn populate(self: &Arc<Self>, rt: &tokio::runtime::Handle, from: usize, to: usize) {
        if UNSUPPORTED.load(Ordering::Relaxed) {
            return;
        }
        let region = self.clone();
        drop(rt.spawn_blocking(move || region.fault_in(from, to)));
    }

    fn fault_in(&self, from: usize, to: usize) {
        let base = self.ptr.as_ptr() as usize;
        // Whole pages inside the range: madvise takes a page-aligned start.
        let start = (base + from).next_multiple_of(PAGE);
        let end = base + to.min(self.capacity());
        if end <= start {
            return;
        }
        // The kernel rounds the length up to whole pages.
        let len = (end - start).next_multiple_of(PAGE);
        // Safe: the range lies inside this allocation, which `self` keeps
        // alive, and the call neither reads nor writes it.
        let r =
            unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) };
        if r == 0 {
            self.populated.fetch_add(len, Ordering::Relaxed);
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Safe: allocated by `System` with this layout.
        unsafe { System.dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Region({})", self.capacity())
    }
}
