//! Requests answered on the caller's own scheduler thread.
//!
//! `erqwest:req/2` on HTTP/1.1, plain or over TLS (`tls.rs`), and on
//! HTTP/2 over TLS, when nothing of reqwest's is needed, runs here instead
//! of on the runtime: the NIF call writes the
//! request on a pooled keep-alive connection, the VM's poll set
//! (`enif_select`) tells the waiting process when the socket has more, and
//! the next NIF call reads the response (hyper's HTTP/1 or HTTP/2 client,
//! polled by hand). Nothing crosses to a tokio thread and back, which was most of
//! one request's time (bench/README.md, "Where one request's time goes").
//! A body over a megabyte is the exception: a runtime task reads it
//! (`bulk.rs`), since it gains nothing from the scheduler.
//!
//! [`Transport::for_config`] decides which clients can take this path,
//! `scheduler.rs` (the NIF functions above this engine: options, the
//! composed request, its policy) and [`Transport::route`] which requests;
//! everything else goes through reqwest, and the two give the same
//! answers. This engine never sees the `Client` resource.

mod bulk;
mod call;
mod conn;
mod connect;
mod exchange;
mod fd;
mod io;
mod link;
mod received;
mod redirect;
mod region;
mod tasks;
mod tls;
mod wants;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};

use crate::config::{ClientConfig, ProxyConfig, Redirects};
use conn::Conn;

pub(crate) use call::{Flow, Outcome, Policy};
pub(crate) use exchange::ms_until;
pub(crate) use fd::open_type;
pub(crate) use redirect::Template;
pub(crate) use tasks::Gate;

/// Request bodies larger than this go through reqwest: writing them from
/// a NIF call could hold the scheduler too long (a send on loopback also
/// runs the receiver's side of TCP: 256 KB took 0.7-1.4 ms).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The codecs a client asks for and decodes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Accept {
    pub(crate) gzip: bool,
    pub(crate) deflate: bool,
    pub(crate) brotli: bool,
    pub(crate) zstd: bool,
}

impl Accept {
    /// tower-http's `accept-encoding`, which reqwest sends.
    fn header(self) -> Option<HeaderValue> {
        let mut names = Vec::new();
        if self.zstd {
            names.push("zstd");
        }
        if self.gzip {
            names.push("gzip");
        }
        if self.deflate {
            names.push("deflate");
        }
        if self.brotli {
            names.push("br");
        }
        if names.is_empty() {
            return None;
        }
        HeaderValue::from_str(&names.join(",")).ok()
    }
}

/// Where a hop connects: an address, or a name to look up on the runtime.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Target {
    /// The host and port of `url`, whatever its scheme.
    fn of(url: &reqwest::Url) -> Option<Target> {
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        Some(match bare.parse::<IpAddr>() {
            Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
            Err(_) => Target::Name(host.to_owned(), port),
        })
    }
}

/// The pool's key: the target and whether it is spoken to over TLS (idle
/// connections to a name are reused without a lookup). Hashed as it is,
/// not formatted into a string for every request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) target: Target,
    pub(crate) tls: bool,
}

/// Where a hop goes: what to connect to and the TLS to speak there.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) key: Key,
    /// For HTTPS: the config, and the name the certificate must carry.
    pub(crate) tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Route {
    pub(crate) fn target(&self) -> &Target {
        &self.key.target
    }
}

/// A client's direct connections and the request defaults reqwest would add.
pub struct Transport {
    pool: Mutex<HashMap<Key, Vec<Conn>>>,
    closed: AtomicBool,
    /// A task closes connections idle past `idle_timeout` (hyper-util's
    /// pool does the same), while the pool has any.
    reaping: AtomicBool,
    rt: tokio::runtime::Handle,
    nodelay: bool,
    keepalive: Option<Duration>,
    local_address: Option<IpAddr>,
    idle_timeout: Option<Duration>,
    max_idle_per_host: usize,
    /// `accept`, `user-agent` and the client's default headers, then
    /// `accept-encoding`, as reqwest merges them into each request.
    defaults: HeaderMap,
    accept: Accept,
    redirects: Redirects,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    /// The config of HTTPS connections on this path; `None` leaves HTTPS
    /// to reqwest (`tls::config_for`).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// What is known of each HTTPS origin's protocol (see [`Transport::admit`]).
    origins: Mutex<HashMap<Key, Origin>>,
    /// The client's cookie jar, reqwest's too (`cookie_store => true`).
    jar: Option<Arc<reqwest::cookie::Jar>>,
}

/// An HTTPS origin's protocol, as its first handshake on this path says.
enum Origin {
    /// The first connect is under way; these requests wait for it.
    Probing(Vec<(Arc<tasks::Gate>, Arc<AtomicBool>)>),
    Http1,
    /// With a count of the origin's direct connections.
    Http2(Arc<AtomicUsize>),
}

/// What a request that found no idle connection does.
pub(crate) enum Admit {
    Connect,
    /// Wait to be woken when the origin's first handshake is done: the
    /// flag is set, then a message sent.
    Wait(Arc<AtomicBool>),
    /// Go through reqwest.
    Handoff,
}

/// A direct HTTP/2 connection's place in its origin's count.
pub(crate) struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Transport {
    /// The direct transport of a client, when its options leave nothing to
    /// reqwest that a plain HTTP/1.1 request could meet.
    pub(crate) fn for_config(c: &ClientConfig, rt: tokio::runtime::Handle) -> Option<Transport> {
        let plain = !c.https_only
            && !c.http2_prior_knowledge
            && c.resolve.is_empty()
            && no_proxy_for_http(&c.proxy)
            && c.resilience.is_stepwise();
        if !plain {
            return None;
        }
        // In the order reqwest's builder puts them: `accept` first, the
        // default headers (replacing in place), then `user-agent`.
        let mut defaults = HeaderMap::new();
        defaults.insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        for (k, v) in &c.default_headers {
            defaults.insert(k.clone(), v.clone());
        }
        if let Ok(ua) = HeaderValue::from_bytes(&c.user_agent) {
            defaults.insert(reqwest::header::USER_AGENT, ua);
        }
        let accept = Accept {
            gzip: c.gzip,
            deflate: c.deflate,
            brotli: c.brotli,
            zstd: c.zstd,
        };
        if let Some(ae) = accept.header() {
            defaults.insert(reqwest::header::ACCEPT_ENCODING, ae);
        }
        Some(Transport {
            pool: Mutex::default(),
            closed: AtomicBool::new(false),
            reaping: AtomicBool::new(false),
            rt,
            nodelay: c.tcp_nodelay,
            keepalive: c.tcp_keepalive,
            local_address: c.local_address,
            idle_timeout: c.pool_idle_timeout,
            max_idle_per_host: c.pool_max_idle_per_host.unwrap_or(usize::MAX),
            defaults,
            accept,
            redirects: c.redirects,
            timeout: c.timeout,
            connect_timeout: c.connect_timeout,
            read_timeout: c.read_timeout,
            // HTTPS through a proxy of the environment is reqwest's.
            tls: no_proxy_for_https(&c.proxy)
                .then(|| tls::config_for(c))
                .flatten(),
            origins: Mutex::default(),
            jar: c.jar.clone(),
        })
    }

    /// Adds the jar's cookies for `url` to a hop's headers, unless the
    /// request has a `cookie` header of its own (as reqwest's cookie
    /// layer does, on every hop of a redirect chain).
    pub(crate) fn add_cookies(&self, headers: &mut HeaderMap, url: &reqwest::Url) {
        use reqwest::cookie::CookieStore;
        let Some(jar) = &self.jar else { return };
        if headers.contains_key(reqwest::header::COOKIE) {
            return;
        }
        if let Some(v) = jar.cookies(url) {
            headers.insert(reqwest::header::COOKIE, v);
        }
    }

    /// Keeps a response's `set-cookie`s, from every hop.
    pub(crate) fn store_cookies(&self, headers: &HeaderMap, url: &str) {
        use reqwest::cookie::CookieStore;
        let Some(jar) = &self.jar else { return };
        if !headers.contains_key(reqwest::header::SET_COOKIE) {
            return;
        }
        if let Ok(url) = reqwest::Url::parse(url) {
            jar.set_cookies(
                &mut headers.get_all(reqwest::header::SET_COOKIE).iter(),
                &url,
            );
        }
    }

    /// `accept`, `user-agent`, the default headers and `accept-encoding`:
    /// what a request gets that it does not set itself.
    pub(crate) fn defaults(&self) -> &HeaderMap {
        &self.defaults
    }

    /// The client's `timeout`.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The route of a request to `url` on this path, or `None` when it is
    /// reqwest's: a scheme other than HTTP, or HTTPS without a config here.
    pub(crate) fn route(&self, url: &reqwest::Url) -> Option<Route> {
        let target = Target::of(url)?;
        match url.scheme() {
            "http" => Some(Route {
                key: Key { target, tls: false },
                tls: None,
            }),
            "https" => {
                let config = self.tls.clone()?;
                let name = tls::server_name(url.host_str()?)?;
                Some(Route {
                    key: Key { target, tls: true },
                    tls: Some((config, name)),
                })
            }
            _ => None,
        }
    }

    /// Decides for a request to `route` that found no idle connection.
    ///
    /// A plain-HTTP origin is always HTTP/1.1: connect. The first
    /// request to an HTTPS origin connects and the others wait for its
    /// handshake (`waited` once they have), so that a burst of callers
    /// to a new origin does not open a connection each before it is
    /// known to speak HTTP/2. Then an HTTP/1.1 origin gets a connection
    /// per caller, as over plain HTTP. On HTTP/2, which is one connection
    /// per origin for reqwest, a direct connection carries one request at
    /// a time (the caller's NIF calls drive it): one serves whoever finds
    /// it idle, and while it is busy the rest share reqwest's, two per
    /// origin in steady state (reqwest's pool, handed many requests at
    /// once before it has a connection there, opens one for each).
    pub(crate) fn admit(&self, route: &Route, gate: &Arc<tasks::Gate>, waited: bool) -> Admit {
        if route.tls.is_none() {
            return Admit::Connect;
        }
        let Ok(mut origins) = self.origins.lock() else {
            return Admit::Connect;
        };
        match origins.get_mut(&route.key) {
            None => {
                origins.insert(route.key.clone(), Origin::Probing(Vec::new()));
                Admit::Connect
            }
            Some(Origin::Probing(_)) if waited => Admit::Connect,
            Some(Origin::Probing(waiting)) => {
                let woken = Arc::new(AtomicBool::new(false));
                waiting.push((gate.clone(), woken.clone()));
                Admit::Wait(woken)
            }
            Some(Origin::Http1) => Admit::Connect,
            Some(Origin::Http2(n)) if n.load(Ordering::Acquire) > 0 => Admit::Handoff,
            Some(Origin::Http2(_)) => Admit::Connect,
        }
    }

    /// A handshake with `key` is over: `Some(true)` HTTP/2, `Some(false)`
    /// HTTP/1.1, `None` failed or given up. Requests waiting on the
    /// origin's first are woken; a new HTTP/2 connection is counted.
    pub(crate) fn learned(&self, key: &Key, h2: Option<bool>) -> Option<Live> {
        let Ok(mut origins) = self.origins.lock() else {
            return None;
        };
        let known = match h2 {
            Some(true) => match origins.get(key) {
                Some(Origin::Http2(n)) => Origin::Http2(n.clone()),
                _ => Origin::Http2(Arc::default()),
            },
            Some(false) => Origin::Http1,
            // Nothing learnt: the next request to find it unknown probes.
            None => match origins.get(key) {
                Some(Origin::Probing(_)) | None => {
                    let old = origins.remove(key);
                    drop(origins);
                    wake(old);
                    return None;
                }
                Some(_) => return None,
            },
        };
        let live = match &known {
            Origin::Http2(n) => {
                n.fetch_add(1, Ordering::AcqRel);
                Some(Live(n.clone()))
            }
            _ => None,
        };
        let old = origins.insert(key.clone(), known);
        drop(origins);
        wake(old);
        live
    }

    fn checkout(&self, key: &Key) -> Option<Conn> {
        let mut pool = self.pool.lock().ok()?;
        let idle = pool.get_mut(key)?;
        while let Some(c) = idle.pop() {
            if self.idle_timeout.is_none_or(|t| c.idle_since.elapsed() < t) {
                return Some(c);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, key: &Key, mut conn: Conn) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        conn.idle_since = Instant::now();
        // Connections opened at once to an origin not yet known to speak
        // HTTP/2 close as they come back, down to one.
        let max = if conn.is_h2() {
            self.max_idle_per_host.min(1)
        } else {
            self.max_idle_per_host
        };
        if let Ok(mut pool) = self.pool.lock() {
            match pool.get_mut(key) {
                Some(idle) if idle.len() < max => idle.push(conn),
                Some(_) => {}
                None if max > 0 => {
                    pool.insert(key.clone(), vec![conn]);
                }
                None => {}
            }
        }
        if let Some(t) = self.idle_timeout {
            if !self.reaping.swap(true, Ordering::AcqRel) {
                self.rt.spawn(reap(Arc::downgrade(self), t));
            }
        }
    }

    /// Closes every idle connection (`close_client`).
    pub(crate) fn clear(&self) {
        self.closed.store(true, Ordering::Release);
        let idle = self.pool.lock().map(|mut p| std::mem::take(&mut *p));
        drop(idle);
    }
}

/// Wakes the requests that waited on an origin's first handshake.
fn wake(old: Option<Origin>) {
    if let Some(Origin::Probing(waiting)) = old {
        for (gate, woken) in waiting {
            woken.store(true, Ordering::Release);
            gate.wake();
        }
    }
}

/// Closes idle connections as they pass the idle timeout, until the pool
/// is empty or the client is gone.
async fn reap(t: std::sync::Weak<Transport>, timeout: Duration) {
    // Checked a few times per timeout, so that none lives much past it.
    let every = (timeout / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let Some(t) = t.upgrade() else { return };
        let expired: Vec<Conn> = {
            let Ok(mut pool) = t.pool.lock() else { return };
            let mut out = Vec::new();
            for idle in pool.values_mut() {
                let (old, fresh): (Vec<Conn>, Vec<Conn>) = std::mem::take(idle)
                    .into_iter()
                    .partition(|c| c.idle_since.elapsed() >= timeout);
                *idle = fresh;
                out.extend(old);
            }
            pool.retain(|_, idle| !idle.is_empty());
            if pool.is_empty() {
                t.reaping.store(false, Ordering::Release);
                drop(pool);
                drop(out);
                return;
            }
            out
        };
        drop(expired);
    }
}

/// reqwest's system proxy on Linux is the environment's: a client that
/// may find one there goes through reqwest.
fn no_proxy_for_http(p: &ProxyConfig) -> bool {
    no_system_proxy(p, &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])
}

/// The same for HTTPS, which `HTTPS_PROXY` (and `ALL_PROXY`) send through
/// a proxy too; such a client's HTTPS requests go to reqwest.
fn no_proxy_for_https(p: &ProxyConfig) -> bool {
    no_system_proxy(p, &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])
}

fn no_system_proxy(p: &ProxyConfig, vars: &[&str]) -> bool {
    match p {
        ProxyConfig::NoProxy => true,
        ProxyConfig::Rules(_) => false,
        ProxyConfig::System => vars
            .iter()
            .all(|k| std::env::var_os(k).is_none_or(|v| v.is_empty())),
    }
}
