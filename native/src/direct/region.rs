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

/// A region at least this large is given back to the system on the
/// blocking pool: unmapping memory that was written costs about 90 µs per
/// MB here (22-24 ms for 256 MB, a C program timing `free`), and the last
/// reference to a body usually goes when a scheduler collects the
/// process that held it.
const FREE_AWAY: usize = 4 * 1024 * 1024;

pub(crate) struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
    /// Bytes the blocking pool has faulted in (tests look at it).
    populated: AtomicUsize,
    /// Where a large region is freed; `None` frees it where it is dropped.
    free_on: Option<tokio::runtime::Handle>,
}

/// An allocation on its way to the blocking pool; freed when this is
/// dropped, wherever that is (also when the pool never runs the job).
struct Freed {
    ptr: NonNull<u8>,
    layout: Layout,
}

// Safe: nothing but its owner refers to the memory any more.
unsafe impl Send for Freed {}

impl Drop for Freed {
    fn drop(&mut self) {
        // Safe: allocated by `System` with this layout, freed once.
        unsafe { System.dealloc(self.ptr.as_ptr(), self.layout) }
        #[cfg(test)]
        tests::freed_on(self.ptr.as_ptr() as usize);
    }
}

// Safe: a region is plain memory; its one writer is the `Block` that owns
// it, and `populate` passes only its address to the kernel.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// `None` when the system has no such allocation to give (the size
    /// may come from the server, as an announced length). A region of
    /// [`FREE_AWAY`] or more is freed on `free_on`'s blocking pool.
    pub(crate) fn new(cap: usize, free_on: Option<tokio::runtime::Handle>) -> Option<Arc<Region>> {
        // Never zero-sized: the allocator does not take a zero size.
        let layout = Layout::from_size_align(cap.max(1), 1).ok()?;
        // Safe: the layout has a non-zero size.
        let raw = unsafe { System.alloc(layout) };
        NonNull::new(raw).map(|ptr| {
            Arc::new(Region {
                ptr,
                layout,
                populated: AtomicUsize::new(0),
                free_on: free_on.filter(|_| cap >= FREE_AWAY),
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
        let freed = Freed {
            ptr: self.ptr,
            layout: self.layout,
        };
        let Some(rt) = self.free_on.take() else {
            return drop(freed);
        };
        let freed = Released(freed);
        // A runtime shut down drops the job, and with it `freed`, here.
        // A panic (no thread to be had) would unwind out of a resource's
        // destructor: it is caught, and the unwinding has dropped the job.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            drop(rt.spawn_blocking(move || drop(freed)));
        }));
    }
}

/// A large allocation given back in slices: `munmap` of written memory
/// holds the process's memory map for as long as it takes (22-24 ms for
/// 256 MB), and every `mmap` elsewhere, a scheduler's too, waits for it.
/// `MADV_DONTNEED` on a slice at a time frees the pages under a shared
/// hold of the map, and the unmap that follows finds nothing to free.
struct Released(Freed);

impl Drop for Released {
    fn drop(&mut self) {
        let base = self.0.ptr.as_ptr() as usize;
        let start = base.next_multiple_of(PAGE);
        let end = base + self.0.layout.size();
        let mut at = start;
        while at + PAGE <= end {
            let len = (RELEASE_SLICE).min((end - at) / PAGE * PAGE);
            // Safe: whole pages inside the allocation, which nothing reads
            // any more; a failure leaves them to the unmap.
            unsafe { libc::madvise(at as *mut libc::c_void, len, libc::MADV_DONTNEED) };
            at += len;
        }
    }
}

/// Bytes of one `MADV_DONTNEED` when a large region is released.
const RELEASE_SLICE: usize = 2 * 1024 * 1024;

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Region({})", self.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

    /// Every free in this test binary: the address and its thread.
    static FREES: Mutex<Vec<(usize, ThreadId)>> = Mutex::new(Vec::new());

    pub(super) fn freed_on(addr: usize) {
        if let Ok(mut f) = FREES.lock() {
            f.push((addr, std::thread::current().id()));
        }
    }

    /// Where the region at `addr` was last freed, once it has been (the
    /// newest entry: an address is reused after a free).
    fn freed(addr: usize) -> Option<ThreadId> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some((_, t)) = FREES.lock().ok()?.iter().rev().find(|(a, _)| *a == addr) {
                return Some(*t);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_large_region_is_freed_on_the_blocking_pool() {
        let rt = runtime();
        let region = Region::new(FREE_AWAY, Some(rt.handle().clone())).expect("region");
        let addr = region.as_ptr() as usize;
        drop(region);
        let on = freed(addr).expect("freed");
        assert_ne!(on, std::thread::current().id());
    }

    #[test]
    fn a_small_region_or_one_without_a_runtime_is_freed_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for region in [
            Region::new(FREE_AWAY - 1, Some(rt.handle().clone())),
            Region::new(FREE_AWAY, None),
        ] {
            let region = region.expect("region");
            let addr = region.as_ptr() as usize;
            drop(region);
            assert_eq!(freed(addr), Some(std::thread::current().id()));
        }
    }

    #[test]
    fn a_region_outliving_its_runtime_is_freed_where_it_is_dropped() {
        let rt = runtime();
        let region = Region::new(FREE_AWAY, Some(rt.handle().clone())).expect("region");
        drop(rt);
        let addr = region.as_ptr() as usize;
        drop(region);
        assert_eq!(freed(addr), Some(std::thread::current().id()));
    }
}
