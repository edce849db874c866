//! Concurrency limits per client and per host, with FIFO queues.
//!
//! tokio's [`Semaphore`] hands out permits in the order they were asked
//! for, and a waiter whose acquire future is dropped (a cancel, a dead
//! owner, a queue timeout) leaves the queue at once: that is the whole
//! queue. This module adds the counts that `client_info/1` reports.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A client's limits and the counts of its requests.
#[derive(Default)]
pub struct Limits {
    total: Option<Arc<Semaphore>>,
    per_host: Option<usize>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    in_flight: usize,
    queued: usize,
    hosts: HashMap<String, Host>,
}

#[derive(Default)]
struct Host {
    sem: Option<Arc<Semaphore>>,
    in_flight: usize,
    queued: usize,
}

/// Counts for `client_info/1`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub in_flight: usize,
    pub queued: usize,
    pub hosts: Vec<(String, usize, usize)>,
}

/// A request's place in flight; dropping it lets the next one in.
pub struct Slot {
    limits: Arc<Limits>,
    host: String,
    _permits: Permits,
}

impl Slot {
    /// The `host:port` it is counted for.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// The host's permit and the client's, for the limits that are set.
type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// Still queued when the queue timeout struck.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueTimeout;

impl Limits {
    pub fn new(total: Option<usize>, per_host: Option<usize>) -> Self {
        Limits {
            total: total.map(|n| Arc::new(Semaphore::new(n))),
            per_host,
            counts: Mutex::default(),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether no limit is set, so that nothing ever queues.
    pub fn is_unlimited(&self) -> bool {
        self.total.is_none() && self.per_host.is_none()
    }

    /// A place in flight at once, for a client that [`is_unlimited`]: what
    /// [`enter`] gives there, without its queue and its timer.
    ///
    /// [`is_unlimited`]: Limits::is_unlimited
    /// [`enter`]: Limits::enter
    pub fn enter_unlimited(self: &Arc<Self>, host: String) -> Slot {
        debug_assert!(self.is_unlimited());
        {
            let mut c = self.counts();
            c.in_flight += 1;
            // Looked up first: a key is only allocated for a new host.
            match c.hosts.get_mut(&host) {
                Some(h) => h.in_flight += 1,
                None => {
                    c.hosts.insert(
                        host.clone(),
                        Host {
                            in_flight: 1,
                            ..Host::default()
                        },
                    );
                }
            }
        }
        Slot {
            limits: self.clone(),
            host,
            _permits: (None, None),
        }
    }

    /// Waits for room for a request to `host` (per-host limit first, then
    /// the client's), at most until `deadline`.
    pub async fn enter(
        self: &Arc<Self>,
        host: &str,
        deadline: Option<Instant>,
    ) -> Result<Slot, QueueTimeout> {
        match self.join(host.to_owned()) {
            Ok(slot) => Ok(slot),
            Err(queued) => queued.wait(deadline).await,
        }
    }

    /// Takes room for a request to `host` now, or its place in the queues
    /// (counted as queued until it enters or is dropped) to wait in.
    ///
    /// Never ahead of a request already queued: tokio's semaphore hands a
    /// released permit to its first waiter rather than back to the count
    /// that `try_acquire` takes from. A place is taken in the semaphore's
    /// queue here, in this call, so that requests queue in the order they
    /// called, whichever thread waits for them afterwards; and it is taken
    /// under the counts' lock, so that a request seen as queued in
    /// `client_info/1` is in the queue.
    pub fn join(self: &Arc<Self>, host: String) -> Result<Slot, Queued> {
        let mut c = self.counts();
        // Looked up first: a key is only allocated for a new host.
        if !c.hosts.contains_key(&host) {
            let sem = self.per_host.map(|n| Arc::new(Semaphore::new(n)));
            c.hosts.insert(
                host.clone(),
                Host {
                    sem,
                    ..Host::default()
                },
            );
        }
        let host_sem = c.hosts.get(&host).and_then(|h| h.sem.clone());
        let held = match &host_sem {
            Some(s) => s.clone().try_acquire_owned().ok(),
            None => None,
        };
        if host_sem.is_none() || held.is_some() {
            let total = match &self.total {
                Some(s) => s.clone().try_acquire_owned().map(Some),
                None => Ok(None),
            };
            if let Ok(b) = total {
                return Ok(self.count_in(&mut c, host, (held, b)));
            }
        }
        let total = self.total.clone();
        let mut wait: Pin<Box<dyn Future<Output = Permits> + Send>> = Box::pin(async move {
            let a = match (held, host_sem) {
                (Some(p), _) => Some(p),
                (None, Some(s)) => s.acquire_owned().await.ok(),
                (None, None) => None,
            };
            let b = match total {
                Some(s) => s.acquire_owned().await.ok(),
                None => None,
            };
            (a, b)
        });
        // Polled once now: that puts it in the semaphore's queue (a later
        // poll, with another waker, keeps its place). Only the semaphores
        // are touched, never the counts.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(permits) = wait.as_mut().poll(&mut cx) {
            return Ok(self.count_in(&mut c, host, permits));
        }
        c.queued += 1;
        if let Some(h) = c.hosts.get_mut(&host) {
            h.queued += 1;
        }
        drop(c);
        Err(Queued {
            wait,
            // From here on the counts are undone however the wait ends.
            waiting: Waiting {
                limits: self.clone(),
                host,
                done: false,
            },
        })
    }

    /// A request in flight at once.
    fn count_in(self: &Arc<Self>, c: &mut Counts, host: String, permits: Permits) -> Slot {
        c.in_flight += 1;
        if let Some(h) = c.hosts.get_mut(&host) {
            h.in_flight += 1;
        }
        Slot {
            limits: self.clone(),
            host,
            _permits: permits,
        }
    }

    pub fn info(&self) -> Info {
        let c = self.counts();
        let mut hosts: Vec<_> = c
            .hosts
            .iter()
            .map(|(k, h)| (k.clone(), h.in_flight, h.queued))
            .collect();
        hosts.sort();
        Info {
            in_flight: c.in_flight,
            queued: c.queued,
            hosts,
        }
    }

    /// Removes a host's entry once nothing is queued or in flight for it.
    fn settle(c: &mut Counts, host: &str) {
        if matches!(c.hosts.get(host), Some(h) if h.in_flight == 0 && h.queued == 0) {
            c.hosts.remove(host);
        }
    }
}

/// Undoes the queued counts of a wait that did not get through.
struct Waiting {
    limits: Arc<Limits>,
    host: String,
    done: bool,
}

impl Waiting {
    /// In: the counts move from queued to in flight.
    fn enter(mut self, permits: Permits) -> Slot {
        self.done = true;
        let host = std::mem::take(&mut self.host);
        let mut c = self.limits.counts();
        c.queued -= 1;
        if let Some(h) = c.hosts.get_mut(&host) {
            h.queued -= 1;
        }
        self.limits.count_in(&mut c, host, permits)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut c = self.limits.counts();
        c.queued -= 1;
        if let Some(h) = c.hosts.get_mut(&self.host) {
            h.queued -= 1;
        }
        Limits::settle(&mut c, &self.host);
    }
}

/// A request's place in the queues. Dropping it (a cancel, a dead
/// caller) leaves them at once; a permit it held goes to the next.
pub struct Queued {
    wait: Pin<Box<dyn Future<Output = Permits> + Send>>,
    waiting: Waiting,
}

impl Queued {
    /// The `host:port` it queues for.
    pub fn host(&self) -> &str {
        &self.waiting.host
    }

    /// Waits for the room, at most until `deadline`.
    pub async fn wait(self, deadline: Option<Instant>) -> Result<Slot, QueueTimeout> {
        let Queued { wait, waiting } = self;
        let permits = match deadline {
            Some(d) => tokio::time::timeout_at(d, wait)
                .await
                .map_err(|_| QueueTimeout)?,
            None => wait.await,
        };
        Ok(waiting.enter(permits))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.counts();
        c.in_flight -= 1;
        if let Some(h) = c.hosts.get_mut(&self.host) {
            h.in_flight -= 1;
        }
        Limits::settle(&mut c, &self.host);
    }
}

/// `queue_timeout` from now.
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn per_host_limit_queues_in_order_and_times_out() {
        rt().block_on(async {
            let l = Arc::new(Limits::new(None, Some(2)));
            let a = l.enter("h:1", None).await.unwrap();
            let _b = l.enter("h:1", None).await.unwrap();
            // Another host is not held up.
            let other = l.enter("o:1", None).await.unwrap();
            let t = deadline(Some(Duration::from_millis(20)));
            assert_eq!(l.enter("h:1", t).await.err(), Some(QueueTimeout));
            let info = l.info();
            assert_eq!((info.in_flight, info.queued), (3, 0));
            assert_eq!(info.hosts, vec![("h:1".into(), 2, 0), ("o:1".into(), 1, 0)]);
            drop(other);
            // FIFO: the first waiter gets the first free permit.
            let l2 = l.clone();
            let first = tokio::spawn(async move { l2.enter("h:1", None).await.map(|_| 1) });
            tokio::task::yield_now().await;
            assert_eq!(l.info().queued, 1);
            drop(a);
            assert_eq!(first.await.unwrap(), Ok(1));
            assert_eq!(l.info().hosts, vec![("h:1".into(), 1, 0)]);
        });
    }

    #[test]
    fn a_dropped_waiter_leaves_the_queue_and_counts_return_to_zero() {
        rt().block_on(async {
            let l = Arc::new(Limits::new(Some(1), None));
            let held = l.enter("h:1", None).await.unwrap();
            {
                let wait = l.enter("h:2", None);
                tokio::pin!(wait);
                let polled = futures_poll_once(wait.as_mut()).await;
                assert!(polled);
                assert_eq!(l.info().queued, 1);
            }
            assert_eq!(l.info().queued, 0);
            drop(held);
            assert_eq!(l.info(), Info::default());
        });
    }

    #[test]
    fn an_unlimited_entry_counts_as_a_queued_one_does() {
        rt().block_on(async {
            let l = Arc::new(Limits::new(None, None));
            assert!(l.is_unlimited());
            let a = l.enter_unlimited("h:1".into());
            let b = l
                .enter("h:1", deadline(Some(Duration::ZERO)))
                .await
                .unwrap();
            let c = l.enter_unlimited("o:1".into());
            let info = l.info();
            assert_eq!((info.in_flight, info.queued), (3, 0));
            assert_eq!(info.hosts, vec![("h:1".into(), 2, 0), ("o:1".into(), 1, 0)]);
            drop((a, b, c));
            assert_eq!(l.info(), Info::default());
            assert!(!Limits::new(Some(1), None).is_unlimited());
            assert!(!Limits::new(None, Some(1)).is_unlimited());
        });
    }

    #[test]
    fn join_takes_free_room_at_once_and_never_jumps_the_queue() {
        rt().block_on(async {
            let l = Arc::new(Limits::new(None, Some(1)));
            // Room: in at once, counted in flight.
            let first = l.join("h:1".into()).ok().unwrap();
            assert_eq!((l.info().in_flight, l.info().queued), (1, 0));
            // No room: queued at once, in the order of the calls, before
            // anything waits for it.
            let second = l.join("h:1".into()).err().unwrap();
            let third = l.join("h:1".into()).err().unwrap();
            assert_eq!(l.info().hosts, vec![("h:1".into(), 1, 2)]);
            // The room `first` frees goes to `second`, the first in line,
            // not to a join that comes after it.
            drop(first);
            assert!(l.join("h:1".into()).is_err());
            assert_eq!(l.info().queued, 2);
            let order = Arc::new(Mutex::new(Vec::new()));
            let (o2, o3) = (order.clone(), order.clone());
            // Waited for in the opposite order: the queue still decides.
            let t3 = tokio::spawn(async move {
                let s = third.wait(None).await;
                o3.lock().unwrap().push(3);
                s
            });
            let t2 = tokio::spawn(async move {
                let s = second.wait(None).await;
                o2.lock().unwrap().push(2);
                s
            });
            let s2 = t2.await.unwrap().unwrap();
            assert_eq!(*order.lock().unwrap(), vec![2]);
            drop(s2);
            drop(t3.await.unwrap().unwrap());
            assert_eq!(*order.lock().unwrap(), vec![2, 3]);
            assert_eq!(l.info(), Info::default());
        });
    }

    #[test]
    fn a_dropped_place_leaves_the_queue_and_the_next_gets_the_room() {
        rt().block_on(async {
            let l = Arc::new(Limits::new(Some(1), Some(4)));
            let held = l.join("h:1".into()).ok().unwrap();
            // Holds its host's permit while it waits for the client's.
            let gone = l.join("h:1".into()).err().unwrap();
            let next = l.join("h:2".into()).err().unwrap();
            assert_eq!(
                l.info().hosts,
                vec![("h:1".into(), 1, 1), ("h:2".into(), 0, 1)]
            );
            drop(gone);
            assert_eq!(
                l.info().hosts,
                vec![("h:1".into(), 1, 0), ("h:2".into(), 0, 1)]
            );
            drop(held);
            let slot = next.wait(deadline(Some(Duration::from_secs(5)))).await;
            assert!(slot.is_ok());
            assert_eq!(l.info().hosts, vec![("h:2".into(), 1, 0)]);
            drop(slot);
            assert_eq!(l.info(), Info::default());
        });
    }

    #[test]
    fn a_queued_place_times_out_and_counts_return_to_zero() {
        rt().block_on(async {
            let l = Arc::new(Limits::new(Some(1), None));
            let held = l.join("h:1".into()).ok().unwrap();
            let q = l.join("h:1".into()).err().unwrap();
            let t = deadline(Some(Duration::from_millis(20)));
            assert_eq!(q.wait(t).await.err(), Some(QueueTimeout));
            assert_eq!((l.info().in_flight, l.info().queued), (1, 0));
            drop(held);
            assert_eq!(l.info(), Info::default());
        });
    }

    /// Polls once; true when still pending.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> bool {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::pin::Pin::new(&mut f).poll(cx).is_pending())
        })
        .await
    }
}
