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
}
