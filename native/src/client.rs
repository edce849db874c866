//! Clients: the NIF resource holding a reqwest client (made from a
//! [`ClientConfig`]), its direct transport and its defaults, and the NIF
//! functions on it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustler::{Encoder, Env, Error as NifError, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::compose;
use crate::config::ClientConfig;
use crate::max_body::MaxBody;
use crate::runtime::Runtime;
use crate::term::EncodeBinary;

/// A client: its connection pool and the runtime its requests run on.
pub struct Client {
    inner: RwLock<Option<reqwest::Client>>,
    runtime: ResourceArc<Runtime>,
    compose: compose::Defaults,
    resilience: Arc<crate::resilience::ClientState>,
    /// Plain HTTP/1.1 on the caller's scheduler, when the options allow.
    direct: Option<Arc<crate::direct::Transport>>,
    /// The requests' default `max_body`.
    max_body: MaxBody,
    /// The client's `timeout` (reqwest has its own copy).
    timeout: Option<Duration>,
}

#[rustler::resource_impl]
impl rustler::Resource for Client {}

impl Client {
    /// The reqwest client, or `None` after `close_client`.
    pub fn get(&self) -> Option<reqwest::Client> {
        self.inner.read().ok().and_then(|c| c.clone())
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Request defaults above the transport (compose.rs).
    pub fn compose(&self) -> &compose::Defaults {
        &self.compose
    }

    /// The direct transport (direct/), if this client has one.
    pub fn direct(&self) -> Option<Arc<crate::direct::Transport>> {
        self.direct.clone()
    }

    /// A request's `timeout`, the client's when it has none.
    pub(crate) fn timeout_of(&self, request: Option<Duration>) -> Option<Duration> {
        request.or(self.timeout)
    }

    /// The most a complete response body may hold, unless a request says.
    pub(crate) fn max_body(&self) -> MaxBody {
        self.max_body
    }

    /// Retry, hedging, limit and timing defaults, queues and budgets.
    pub fn resilience(&self) -> &Arc<crate::resilience::ClientState> {
        &self.resilience
    }
}

/// Builds a client, or answers `{error, Reason}` when an option's content is
/// unusable (a PKCS#12 that does not open, a proxy URL that does not parse).
/// Dirty: loading trust stores and opening PKCS#12 files takes milliseconds.
#[rustler::nif(schedule = "DirtyIo")]
fn make_client<'a>(
    env: Env<'a>,
    runtime: ResourceArc<Runtime>,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let handle = runtime.handle().ok_or(NifError::BadArg)?;
    let mut config = ClientConfig::decode(opts)?;
    if config.cookie_store {
        config.jar = Some(Arc::new(reqwest::cookie::Jar::default()));
    }
    let compose = std::mem::take(&mut config.compose);
    let max_body = config.max_body;
    let timeout = config.timeout;
    let resilience = crate::resilience::ClientState::new(&config.resilience);
    let direct = crate::direct::Transport::for_config(&config, handle.clone()).map(Arc::new);
    // Some reqwest internals (the system proxy lookup) expect a runtime context.
    let _guard = handle.enter();
    match config.build() {
        Ok(client) => Ok(ResourceArc::new(Client {
            inner: RwLock::new(Some(client)),
            runtime: runtime.clone(),
            compose,
            resilience,
            direct,
            max_body,
            timeout,
        })
        .encode(env)),
        Err(reason) => Ok((atoms::error(), reason.as_bytes().encode_binary(env)).encode(env)),
    }
}

/// Drops the client's pool: idle connections close now, in-flight requests
/// keep their own reference and finish. A second close is `badarg`.
#[rustler::nif]
fn close_client<'a>(env: Env<'a>, client: ResourceArc<Client>) -> NifResult<Term<'a>> {
    let taken = client.inner.write().map_err(|_| NifError::BadArg)?.take();
    match taken {
        Some(c) => {
            drop(c);
            if let Some(d) = &client.direct {
                d.clear();
            }
            Ok(atoms::ok().encode(env))
        }
        None => Err(NifError::BadArg),
    }
}

/// `#{in_flight, queued, hosts => #{<<"host:port">> => #{in_flight, queued}}}`.
#[rustler::nif]
fn client_info<'a>(env: Env<'a>, client: ResourceArc<Client>) -> NifResult<Term<'a>> {
    use crate::resilience::atoms as ratoms;
    let info = client.resilience().info();
    let pair = |in_flight: usize, queued: usize| {
        Term::map_from_term_arrays(
            env,
            &[
                ratoms::in_flight().encode(env),
                ratoms::queued().encode(env),
            ],
            &[in_flight.encode(env), queued.encode(env)],
        )
    };
    let mut hk = Vec::with_capacity(info.hosts.len());
    let mut hv = Vec::with_capacity(info.hosts.len());
    for (host, f, q) in &info.hosts {
        hk.push(host.as_bytes().encode_binary(env));
        hv.push(pair(*f, *q)?);
    }
    let hosts = Term::map_from_term_arrays(env, &hk, &hv)?;
    Term::map_from_term_arrays(
        env,
        &[
            ratoms::in_flight().encode(env),
            ratoms::queued().encode(env),
            ratoms::hosts().encode(env),
        ],
        &[info.in_flight.encode(env), info.queued.encode(env), hosts],
    )
}
