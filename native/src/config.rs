//! `client_opts()` decoded into a typed [`ClientConfig`] and validated,
//! then turned into a reqwest client builder. Plain data and its
//! decoding, below the engines (`direct/` reads it) and the NIF
//! functions that make a client (`client.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use rustler::{Atom, Binary, Error as NifError, MapIterator, NifResult, Term};

use crate::atoms;
use crate::compose;
use crate::max_body::MaxBody;
use crate::term::{
    decode_bool, decode_header_list, decode_int, decode_list, decode_ms, header_map,
};
use crate::tls;

/// How redirects are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    None,
    Limit(usize),
}

/// Where requests go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyConfig {
    /// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment.
    System,
    NoProxy,
    Rules(Vec<ProxyRule>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRule {
    pub scheme: ProxyScheme,
    pub url: String,
    pub basic_auth: Option<(String, String)>,
}

/// Every `client_opts()` key, decoded. Defaults are the contract's.
pub struct ClientConfig {
    pub identity: Option<tls::IdentitySource>,
    pub redirects: Redirects,
    pub additional_root_certs: Vec<Vec<u8>>,
    pub use_built_in_root_certs: bool,
    pub danger_accept_invalid_hostnames: bool,
    pub danger_accept_invalid_certs: bool,
    pub proxy: ProxyConfig,
    pub connect_timeout: Option<Duration>,
    pub timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub pool_idle_timeout: Option<Duration>,
    pub pool_max_idle_per_host: Option<usize>,
    pub https_only: bool,
    pub cookie_store: bool,
    pub gzip: bool,
    pub brotli: bool,
    pub deflate: bool,
    pub zstd: bool,
    pub http2_prior_knowledge: bool,
    pub http1_only: bool,
    pub tcp_nodelay: bool,
    pub tcp_keepalive: Option<Duration>,
    pub local_address: Option<IpAddr>,
    pub user_agent: Vec<u8>,
    pub default_headers: HeaderMap,
    pub resolve: Vec<(String, SocketAddr)>,
    pub min_tls_version: Option<reqwest::tls::Version>,
    pub compose: compose::Defaults,
    pub resilience: crate::resilience::ClientOptions,
    pub(crate) max_body: MaxBody,
    /// With `cookie_store => true`: the one jar both engines use (made in
    /// `make_client`, handed to reqwest as its cookie provider).
    pub(crate) jar: Option<Arc<reqwest::cookie::Jar>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            identity: None,
            redirects: Redirects::Limit(10),
            additional_root_certs: Vec::new(),
            use_built_in_root_certs: true,
            danger_accept_invalid_hostnames: false,
            danger_accept_invalid_certs: false,
            proxy: ProxyConfig::System,
            connect_timeout: None,
            timeout: None,
            read_timeout: None,
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: None,
            https_only: false,
            cookie_store: false,
            gzip: true,
            brotli: true,
            deflate: true,
            zstd: true,
            http2_prior_knowledge: false,
            http1_only: false,
            tcp_nodelay: true,
            tcp_keepalive: None,
            local_address: None,
            user_agent: concat!("erqwest/", env!("CARGO_PKG_VERSION"))
                .as_bytes()
                .to_vec(),
            default_headers: HeaderMap::new(),
            resolve: Vec::new(),
            min_tls_version: None,
            compose: compose::Defaults::default(),
            resilience: Default::default(),
            max_body: MaxBody::default(),
            jar: None,
        }
    }
}

impl ClientConfig {
    /// Decodes a `client_opts()` map. Any unknown key or ill-typed value is
    /// `badarg`.
    pub fn decode(term: Term) -> NifResult<Self> {
        let mut c = ClientConfig::default();
        for (key, value) in term.decode::<MapIterator>()? {
            let key: Atom = key.decode()?;
            c.set(key, value)?;
        }
        Ok(c)
    }

    fn set(&mut self, key: Atom, v: Term) -> NifResult<()> {
        match key {
            k if k == atoms::identity() => self.identity = Some(tls::IdentitySource::decode(v)?),
            k if k == atoms::follow_redirects() => {
                self.redirects = match v.decode::<bool>() {
                    Ok(true) => Redirects::Limit(10),
                    Ok(false) => Redirects::None,
                    Err(_) => Redirects::Limit(decode_int(v)?),
                }
            }
            k if k == atoms::additional_root_certs() => {
                self.additional_root_certs = decode_list(v)?
                    .into_iter()
                    .map(|t| t.decode::<Binary>().map(|b| b.as_slice().to_vec()))
                    .collect::<NifResult<_>>()?
            }
            k if k == atoms::use_built_in_root_certs() => {
                self.use_built_in_root_certs = decode_bool(v)?
            }
            k if k == atoms::danger_accept_invalid_hostnames() => {
                self.danger_accept_invalid_hostnames = decode_bool(v)?
            }
            k if k == atoms::danger_accept_invalid_certs() => {
                self.danger_accept_invalid_certs = decode_bool(v)?
            }
            k if k == atoms::proxy() => self.proxy = decode_proxy(v)?,
            k if k == atoms::connect_timeout() => self.connect_timeout = decode_ms(v)?,
            k if k == atoms::timeout() => self.timeout = decode_ms(v)?,
            k if k == atoms::read_timeout() => self.read_timeout = decode_ms(v)?,
            k if k == atoms::pool_idle_timeout() => self.pool_idle_timeout = decode_ms(v)?,
            k if k == atoms::pool_max_idle_per_host() => {
                self.pool_max_idle_per_host = Some(decode_int(v)?)
            }
            k if k == atoms::https_only() => self.https_only = decode_bool(v)?,
            k if k == atoms::cookie_store() => self.cookie_store = decode_bool(v)?,
            k if k == atoms::gzip() => self.gzip = decode_bool(v)?,
            k if k == atoms::brotli() => self.brotli = decode_bool(v)?,
            k if k == atoms::deflate() => self.deflate = decode_bool(v)?,
            k if k == atoms::zstd() => self.zstd = decode_bool(v)?,
            k if k == atoms::http2_prior_knowledge() => {
                self.http2_prior_knowledge = decode_bool(v)?
            }
            k if k == atoms::http1_only() => self.http1_only = decode_bool(v)?,
            k if k == atoms::tcp_nodelay() => self.tcp_nodelay = decode_bool(v)?,
            k if k == atoms::tcp_keepalive() => self.tcp_keepalive = decode_ms(v)?,
            k if k == atoms::local_address() => self.local_address = Some(decode_ip(v)?),
            k if k == atoms::user_agent() => {
                let ua: Binary = v.decode()?;
                reqwest::header::HeaderValue::from_bytes(ua.as_slice())
                    .map_err(|_| NifError::BadArg)?;
                self.user_agent = ua.as_slice().to_vec();
            }
            k if k == atoms::default_headers() => {
                let list = decode_header_list(v)?;
                self.default_headers = header_map(&list).map_err(|_| NifError::BadArg)?;
            }
            k if k == atoms::resolve() => self.resolve = decode_resolve(v)?,
            k if k == atoms::min_tls_version() => {
                self.min_tls_version = Some(decode_tls_version(v)?)
            }
            k if k == atoms::max_body() => self.max_body = MaxBody::decode(v)?,
            k if compose::Defaults::is_key(k) => self.compose.set(k, v)?,
            k if crate::resilience::ClientOptions::is_key(k) => self.resilience.set(k, v)?,
            _ => return Err(NifError::BadArg),
        }
        Ok(())
    }

    /// Turns the configuration into a reqwest client. Failures (a PKCS#12
    /// that does not open, a proxy URL that does not parse) are reported
    /// as text for the caller to raise.
    pub fn build(self) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .redirect(match self.redirects {
                Redirects::None => reqwest::redirect::Policy::none(),
                Redirects::Limit(n) => reqwest::redirect::Policy::limited(n),
            })
            .https_only(self.https_only)
            .gzip(self.gzip)
            .brotli(self.brotli)
            .deflate(self.deflate)
            .zstd(self.zstd)
            .tcp_nodelay(self.tcp_nodelay)
            .tcp_keepalive(self.tcp_keepalive)
            .pool_idle_timeout(self.pool_idle_timeout)
            .local_address(self.local_address)
            .default_headers(self.default_headers);
        // reqwest's own jar, shared with the scheduler engine (direct/).
        if let Some(jar) = &self.jar {
            b = b.cookie_provider(jar.clone());
        }
        // On every client, so that a request asking for `timings` learns
        // `connect` and `reused` whatever its client was made with; the
        // layer costs only in a connect (bench/README.md, issue 28).
        b = b.connector_layer(crate::resilience::timings::ConnectTimer);
        let ua = reqwest::header::HeaderValue::from_bytes(&self.user_agent)
            .map_err(|e| e.to_string())?;
        b = b.user_agent(ua);
        if let Some(t) = self.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        if let Some(t) = self.read_timeout {
            b = b.read_timeout(t);
        }
        if let Some(n) = self.pool_max_idle_per_host {
            b = b.pool_max_idle_per_host(n);
        }
        if self.http2_prior_knowledge {
            b = b.http2_prior_knowledge();
        }
        if self.http1_only {
            b = b.http1_only();
        }
        for (host, addr) in &self.resolve {
            b = b.resolve(host, *addr);
        }
        if let Some(v) = self.min_tls_version {
            b = b.tls_version_min(v);
        }
        b = match self.proxy {
            ProxyConfig::System => b,
            ProxyConfig::NoProxy => b.no_proxy(),
            ProxyConfig::Rules(rules) => {
                for rule in rules {
                    let mut p = match rule.scheme {
                        ProxyScheme::Http => reqwest::Proxy::http(&rule.url),
                        ProxyScheme::Https => reqwest::Proxy::https(&rule.url),
                        ProxyScheme::All => reqwest::Proxy::all(&rule.url),
                    }
                    .map_err(|e| format!("proxy {}: {e}", rule.url))?;
                    if let Some((user, pass)) = &rule.basic_auth {
                        p = p.basic_auth(user, pass);
                    }
                    b = b.proxy(p);
                }
                b
            }
        };
        let tls = tls::TlsConfig {
            identity: self.identity,
            additional_root_certs: self.additional_root_certs,
            use_built_in_root_certs: self.use_built_in_root_certs,
            danger_accept_invalid_hostnames: self.danger_accept_invalid_hostnames,
            danger_accept_invalid_certs: self.danger_accept_invalid_certs,
        };
        b = tls.apply(b)?;
        b.build()
            .map_err(|e| crate::error::Error::from_reqwest(&e).to_string())
    }
}

fn decode_proxy(v: Term) -> NifResult<ProxyConfig> {
    if let Ok(a) = v.decode::<Atom>() {
        return match a {
            a if a == atoms::system() => Ok(ProxyConfig::System),
            a if a == atoms::no_proxy() => Ok(ProxyConfig::NoProxy),
            _ => Err(NifError::BadArg),
        };
    }
    let mut rules = Vec::new();
    for item in decode_list(v)? {
        let (scheme, spec): (Atom, Term) = item.decode()?;
        let scheme = match scheme {
            s if s == atoms::http() => ProxyScheme::Http,
            s if s == atoms::https() => ProxyScheme::Https,
            s if s == atoms::all() => ProxyScheme::All,
            _ => return Err(NifError::BadArg),
        };
        let mut url = None;
        let mut basic_auth = None;
        for (k, val) in spec.decode::<MapIterator>()? {
            match k.decode::<Atom>()? {
                k if k == atoms::url() => url = Some(utf8(val)?),
                k if k == atoms::basic_auth() => {
                    let (u, p): (Term, Term) = val.decode()?;
                    basic_auth = Some((utf8(u)?, utf8(p)?));
                }
                _ => return Err(NifError::BadArg),
            }
        }
        rules.push(ProxyRule {
            scheme,
            url: url.ok_or(NifError::BadArg)?,
            basic_auth,
        });
    }
    Ok(ProxyConfig::Rules(rules))
}

fn utf8(t: Term) -> NifResult<String> {
    let b: Binary = t.decode()?;
    String::from_utf8(b.as_slice().to_vec()).map_err(|_| NifError::BadArg)
}

/// `inet:ip_address()`: a 4-tuple or an 8-tuple.
fn decode_ip(t: Term) -> NifResult<IpAddr> {
    let parts = rustler::types::tuple::get_tuple(t)?;
    match parts.len() {
        4 => {
            let mut octets = [0u8; 4];
            for (o, p) in octets.iter_mut().zip(parts) {
                *o = decode_int(p)?;
            }
            Ok(IpAddr::from(octets))
        }
        8 => {
            let mut segs = [0u16; 8];
            for (seg, p) in segs.iter_mut().zip(parts) {
                *seg = decode_int(p)?;
            }
            Ok(IpAddr::from(segs))
        }
        _ => Err(NifError::BadArg),
    }
}

/// `[{Host :: binary(), {inet:ip_address(), inet:port_number()}}]`.
fn decode_resolve(t: Term) -> NifResult<Vec<(String, SocketAddr)>> {
    let mut out = Vec::new();
    for item in decode_list(t)? {
        let (host, addr): (Term, Term) = item.decode()?;
        let (ip, port): (Term, Term) = addr.decode()?;
        out.push((
            utf8(host)?,
            SocketAddr::new(decode_ip(ip)?, decode_int(port)?),
        ));
    }
    Ok(out)
}

fn decode_tls_version(t: Term) -> NifResult<reqwest::tls::Version> {
    use reqwest::tls::Version;
    match t.decode::<Atom>()? {
        a if a == atoms::tlsv1_0() => Ok(Version::TLS_1_0),
        a if a == atoms::tlsv1_1() => Ok(Version::TLS_1_1),
        a if a == atoms::tlsv1_2() => Ok(Version::TLS_1_2),
        a if a == atoms::tlsv1_3() => Ok(Version::TLS_1_3),
        _ => Err(NifError::BadArg),
    }
}
