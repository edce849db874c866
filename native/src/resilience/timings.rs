//! `timings => true`: where a request's time went.
//!
//! Connects are timed by a tower layer under reqwest's connector
//! ([`ConnectTimer`], installed on every client by `ClientConfig::build`).
//! hyper calls the connector from inside the request's own future when it
//! needs a new connection, so the layer finds the attempt's [`ConnectSlot`]
//! in a task-local set around that future; an attempt whose slot stays
//! empty was served by a pooled connection (`reused => true`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower_service::Service;

tokio::task_local! {
    static SLOT: ConnectSlot;
}

/// Where the connector writes how long this attempt's connect took.
#[derive(Clone, Default)]
pub struct ConnectSlot(Arc<Mutex<Option<Duration>>>);

impl ConnectSlot {
    pub fn get(&self) -> Option<Duration> {
        self.0.lock().ok().and_then(|d| *d)
    }

    fn set(&self, d: Duration) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(d);
        }
    }

    /// Runs `fut` with this slot visible to the connector.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        SLOT.scope(self, fut)
    }
}

/// The figures reported, all from the start of the request's task.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub queued: Duration,
    pub connect: Option<Duration>,
    pub headers: Duration,
    pub total: Option<Duration>,
    pub remote_addr: Option<SocketAddr>,
}

/// The same figures as the scheduler engine notes them: the engine
/// reports instants and durations (a connect, a response head), and this
/// turns them into [`Timings`] for the reply, as [`super::Plan`] does on
/// the runtime.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
    queued: Duration,
    /// The last connect of the current attempt (its redirect hops too,
    /// as reqwest's connector sees every connect of one `execute`).
    connect: Option<Duration>,
    headers: Option<Duration>,
    remote_addr: Option<SocketAddr>,
}

impl Clock {
    /// Starts now: the request's start, as a `Plan` is made.
    pub fn start() -> Self {
        Clock {
            start: std::time::Instant::now(),
            queued: Duration::ZERO,
            connect: None,
            headers: None,
            remote_addr: None,
        }
    }

    /// The request got past the limits (or found none): `queued`.
    pub fn admitted(&mut self) {
        self.queued = self.start.elapsed();
    }

    /// An attempt begins: only its own connects count (as the runtime
    /// reports the final attempt's connect slot).
    pub fn attempt(&mut self) {
        self.connect = None;
    }

    /// A hop of the current attempt opened a connection in `d`.
    pub fn connected(&mut self, d: Duration) {
        self.connect = Some(d);
    }

    /// The response head came at `at`, from `peer`.
    pub fn head(&mut self, at: std::time::Instant, peer: Option<SocketAddr>) {
        self.headers = Some(at.saturating_duration_since(self.start));
        self.remote_addr = peer;
    }

    /// The figures and `reused`; `complete` when the body was read too,
    /// which is now (then `total` is known).
    pub fn timings(&self, complete: bool) -> (Timings, bool) {
        let t = Timings {
            queued: self.queued,
            connect: self.connect,
            headers: self.headers.unwrap_or_default(),
            total: complete.then(|| self.start.elapsed()),
            remote_addr: self.remote_addr,
        };
        (t, self.connect.is_none())
    }
}

/// The layer for `ClientBuilder::connector_layer`.
#[derive(Clone, Copy, Default)]
pub struct ConnectTimer;

impl<S> tower_layer::Layer<S> for ConnectTimer {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed(inner)
    }
}

#[derive(Clone)]
pub struct Timed<S>(S);

impl<S, R> Service<R> for Timed<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        // Outside a timed attempt (timings off) there is no slot: nothing to do.
        let slot = SLOT.try_with(|s| s.clone()).ok();
        let start = Instant::now();
        let fut = self.0.call(req);
        Box::pin(async move {
            let out = fut.await;
            if let (Some(slot), Ok(_)) = (&slot, &out) {
                slot.set(start.elapsed());
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Slow;
    impl Service<()> for Slow {
        type Response = ();
        type Error = ();
        type Future = Pin<Box<dyn Future<Output = Result<(), ()>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: ()) -> Self::Future {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(())
            })
        }
    }

    #[test]
    fn a_connect_inside_a_scope_is_timed_and_one_outside_is_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut svc = tower_layer::Layer::layer(&ConnectTimer, Slow);
            let slot = ConnectSlot::default();
            let fut = svc.call(());
            // Called outside: no slot was captured.
            fut.await.unwrap();
            assert_eq!(slot.get(), None);
            // hyper calls the connector while polling the request: inside.
            slot.clone()
                .scope(async { svc.call(()).await })
                .await
                .unwrap();
            let d = slot.get().unwrap();
            assert!(d >= Duration::from_millis(30), "{d:?}");
        });
    }

    #[test]
    fn a_clock_reports_the_last_attempts_connect_and_reused_without_one() {
        let mut c = Clock::start();
        c.admitted();
        c.attempt();
        c.connected(Duration::from_millis(3));
        c.attempt();
        let (t, reused) = c.timings(false);
        assert!(reused && t.connect.is_none() && t.total.is_none());
        c.connected(Duration::from_millis(5));
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        c.head(std::time::Instant::now(), Some(peer));
        let (t, reused) = c.timings(true);
        assert!(!reused);
        assert_eq!(t.connect, Some(Duration::from_millis(5)));
        assert_eq!(t.remote_addr, Some(peer));
        assert!(t.headers <= t.total.unwrap());
        assert!(t.queued <= t.headers);
    }
}
