//! Counts of live tasks, for the leak checks in tests (`live_resources`
//! and its kin).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts one task in its counter from before the task is spawned until
/// its future is dropped, run or not: a spawn that races a runtime
/// shutdown drops the future unrun, and must still be uncounted.
pub(crate) struct Live(&'static AtomicUsize);

impl Live {
    pub(crate) fn new(count: &'static AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Live(count)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static COUNT: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn counts_until_dropped_even_unrun() {
        let a = Live::new(&COUNT);
        let fut = {
            let b = Live::new(&COUNT);
            async move {
                let _b = b;
            }
        };
        assert_eq!(COUNT.load(Ordering::Relaxed), 2);
        // A future dropped without being polled still uncounts.
        drop(fut);
        assert_eq!(COUNT.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(COUNT.load(Ordering::Relaxed), 0);
    }
}
