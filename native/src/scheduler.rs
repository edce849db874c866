//! The scheduler engine's NIF functions: `erqwest_direct`'s calls that
//! start a request on the direct path (`direct/`), move it on after a
//! readiness message, and end its waits. They sit at the top: they take
//! the `Client` resource, decode the request's options (`request.rs`),
//! compose it with the runtime's builder, and hand the direct engine a
//! request and its policy; the engine never sees the client. A request
//! its client's limits hold back waits in a queue first (`queued.rs`).

mod queued;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use rustler::{Encoder, Env, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::client::Client;
use crate::direct::{self, Flow, Outcome, Template, Transport};
use crate::request::{BodyMode, RequestBody, Spec};
use crate::resilience::stepwise::Admission;
use queued::{Queued, Woken};

/// An in-flight direct request, held by the waiting process. Dropping it
/// (the process died, or gave up) closes its connection and stops its
/// task, or takes it out of its client's queue.
pub struct Call {
    stage: Mutex<Option<Stage>>,
}

#[allow(clippy::large_enum_variant)] // Running is the usual one: unboxed
enum Stage {
    Queued(Queued),
    Running(Flow),
}

#[rustler::resource_impl]
impl rustler::Resource for Call {}

/// The request of `spec` on this path, or `None` when it needs reqwest.
///
/// Composed here as for reqwest (query, a JSON or form body, auth; the
/// client's default auth and base URL), with the same builder
/// (`request::build`), so both engines send the same bytes; a multipart
/// body opens files, and stays reqwest's.
fn template(
    t: &Transport,
    spec: Spec,
    http: &reqwest::Client,
) -> Result<Option<Template>, crate::error::Error> {
    // CONNECT's target is an authority, which hyper's client takes from
    // reqwest's builder only: such requests are reqwest's.
    if spec.upload || spec.response_body != BodyMode::Complete || spec.method == Method::CONNECT {
        return Ok(None);
    }
    let checked = spec.checked?;
    // reqwest turns a URL's credentials into basic `authorization` and
    // takes them out of the URL it answers with: such requests are its.
    let credentials = !checked.url.username().is_empty() || checked.url.password().is_some();
    if checked.compose.is_multipart() || credentials || t.route(&checked.url).is_none() {
        return Ok(None);
    }
    let (method, mut url, mut headers, body) = if checked.compose.is_empty() {
        let body = match checked.body {
            RequestBody::Empty => None,
            RequestBody::Full(b) if b.len() <= direct::MAX_BODY => Some(b),
            RequestBody::Full(_) | RequestBody::Stream => return Ok(None),
        };
        (spec.method, checked.url, checked.headers, body)
    } else {
        let built = crate::request::build::build_opened(http, spec.method, checked, None)?;
        let mut req = built.request;
        let body = match req.body() {
            None => None,
            Some(b) => match b.as_bytes() {
                Some(b) if b.len() <= direct::MAX_BODY => Some(Bytes::copy_from_slice(b)),
                _ => return Ok(None),
            },
        };
        let headers = std::mem::take(req.headers_mut());
        (req.method().clone(), req.url().clone(), headers, body)
    };
    for (k, v) in t.defaults() {
        if !headers.contains_key(k) {
            headers.insert(k.clone(), v.clone());
        }
    }
    // A fragment never goes on the wire, nor into the answer's `url`.
    url.set_fragment(None);
    Ok(Some(Template {
        method,
        url,
        headers,
        body,
    }))
}

fn store(call: Option<ResourceArc<Call>>, stage: Stage) -> ResourceArc<Call> {
    match call {
        Some(c) => {
            if let Ok(mut slot) = c.stage.lock() {
                *slot = Some(stage);
            }
            c
        }
        None => ResourceArc::new(Call {
            stage: Mutex::new(Some(stage)),
        }),
    }
}

/// `{wait, Call, infinity}` for a queued request: its task's message
/// ends the wait, for the room or for the `queue_timeout`.
fn queued_term(env: Env<'_>, q: Queued, call: Option<ResourceArc<Call>>) -> Term<'_> {
    (
        atoms::wait(),
        store(call, Stage::Queued(q)),
        atoms::infinity(),
    )
        .encode(env)
}

/// `{wait, Call, Ms}`: the time to the nearest deadline, or `infinity`.
fn wait_term<'a>(env: Env<'a>, flow: Flow, call: Option<ResourceArc<Call>>) -> Term<'a> {
    let ms = match flow.next_deadline() {
        Some(d) => direct::ms_until(d, Instant::now()).encode(env),
        None => atoms::infinity().encode(env),
    };
    (atoms::wait(), store(call, Stage::Running(flow)), ms).encode(env)
}

fn answer<'a>(
    env: Env<'a>,
    mut flow: Flow,
    call: Option<ResourceArc<Call>>,
    reference: Term<'a>,
) -> Term<'a> {
    let decoding = flow.decoding();
    let attempts = flow.attempts();
    match flow.advance() {
        Outcome::Reply(head, body) => {
            // Decoded here only when small (`call::DECODE_HERE`); larger
            // bodies are answered by the runtime.
            match crate::reply::encode_resp(env, &head, Some(&body), decoding) {
                Ok(resp) => (atoms::ok(), resp).encode(env),
                Err(err) => (atoms::error(), err).encode(env),
            }
        }
        Outcome::Error(e) => error_term(env, &e, attempts),
        Outcome::Again => {
            // A request that keeps going on without a wait still ends at
            // its deadlines (`direct_expire` only runs after a wait).
            if let Some(e) = flow.expired(Instant::now()) {
                drop(flow);
                return (atoms::error(), e).encode(env);
            }
            // This call used its share: let the scheduler run others.
            rustler::schedule::consume_timeslice(env, 100);
            (atoms::again(), store(call, Stage::Running(flow))).encode(env)
        }
        Outcome::Wait(interest, fd) => {
            if !fd.select(env, interest, reference) {
                let e = crate::error::Error::new(crate::error::Code::Unknown, "enif_select failed");
                return (atoms::error(), e).encode(env);
            }
            wait_term(env, flow, call)
        }
        Outcome::Parked => wait_term(env, flow, call),
    }
}

/// Starts a request on the direct path: `{ok, Resp}`, `{error, Err}`,
/// `{wait, Call, Ms}`, `{again, Call}` or `fallback` (see erqwest_direct).
/// `reference` must be a reference: the VM's readiness messages carry it.
#[rustler::nif]
fn direct_req<'a>(
    env: Env<'a>,
    client: ResourceArc<Client>,
    reference: Term<'a>,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let fallback = || Ok(atoms::fallback().encode(env));
    let (Some(t), Some(http)) = (client.direct(), client.get()) else {
        return fallback();
    };
    let Some(rt) = client.runtime().handle() else {
        return fallback();
    };
    if !reference.is_ref() {
        return Err(rustler::Error::BadArg);
    }
    let mut spec = Spec::decode_for(opts, client.compose())?;
    let timeout = spec.timeout.or(t.timeout());
    if timeout == Some(Duration::ZERO) {
        if let Ok(c) = &spec.checked {
            let e = crate::request::timed_out_at_once(&c.url);
            return Ok((atoms::error(), e).encode(env));
        }
    }
    let max_body = spec.max_body.unwrap_or(client.max_body());
    let decoding = spec.compose.decoding(client.compose());
    let overrides = std::mem::take(&mut spec.resilience);
    match template(&t, spec, &http) {
        Ok(Some(tpl)) => {
            // Retries, limits and timings are carried out here (the waits
            // in the caller); hedging needs the runtime's tasks. A
            // request joins its client's queue only once it is sure to
            // stay on this engine, so none loses its place to a fallback.
            let Some(admission) = client.resilience().stepwise(&overrides, &tpl.url) else {
                return fallback();
            };
            let gate = Arc::new(direct::Gate::new(env.pid(), reference, decoding));
            match admission {
                Admission::Now(stepwise) => {
                    let policy = direct::Policy {
                        timeout,
                        max_body,
                        stepwise,
                    };
                    let flow = Flow::new(t, http, rt, gate, tpl, policy);
                    Ok(answer(env, flow, None, reference))
                }
                Admission::Queued(queue) => {
                    let start = queued::Start {
                        t,
                        http,
                        rt,
                        gate,
                        template: tpl,
                        timeout,
                        max_body,
                    };
                    Ok(queued_term(env, Queued::spawn(queue, start), None))
                }
            }
        }
        Ok(None) => fallback(),
        Err(e) => Ok((atoms::error(), e).encode(env)),
    }
}

/// The request a `Call` holds, taken out for one NIF call (`badarg` for
/// a call whose request is over, or in another NIF call now).
fn take(call: &Call) -> NifResult<Stage> {
    let stage = call.stage.lock().ok().and_then(|mut s| s.take());
    stage.ok_or(rustler::Error::BadArg)
}

/// Moves a waiting request on after a readiness message (or, for a
/// queued one, the message of its wait).
#[rustler::nif]
fn direct_poll<'a>(
    env: Env<'a>,
    call: ResourceArc<Call>,
    reference: Term<'a>,
) -> NifResult<Term<'a>> {
    match take(&call)? {
        Stage::Running(flow) => Ok(answer(env, flow, Some(call), reference)),
        Stage::Queued(q) => Ok(match q.woken() {
            Woken::Go(flow) => answer(env, *flow, Some(call), reference),
            Woken::TimedOut(e) => (atoms::error(), e).encode(env),
            Woken::Failed(e) => (atoms::error(), e).encode(env),
            Woken::Still(q) => queued_term(env, q, Some(call)),
        }),
    }
}

/// Ends a request whose answer came by message from a runtime task: its
/// place in the client's limits (and counts) is given back now, not
/// when the garbage collector finds the `Call`.
#[rustler::nif]
fn direct_close(call: ResourceArc<Call>) -> rustler::Atom {
    // A request already over (or in another call) has nothing to give back.
    drop(take(&call));
    atoms::ok()
}

/// Called when the wait of `{wait, Call, Ms}` ran out: the next attempt
/// when a retry is due, `{error, Err}` for the deadline that passed (the
/// request is dropped), or `{wait, ...}`.
#[rustler::nif]
fn direct_expire<'a>(
    env: Env<'a>,
    call: ResourceArc<Call>,
    reference: Term<'a>,
) -> NifResult<Term<'a>> {
    let mut flow = match take(&call)? {
        Stage::Running(flow) => flow,
        // Its wait has no deadline: only its task's message ends it.
        Stage::Queued(q) => return Ok(queued_term(env, q, Some(call))),
    };
    let now = Instant::now();
    if flow.retry_due(now) {
        return Ok(answer(env, flow, Some(call), reference));
    }
    match flow.expire(now) {
        Some(e) => {
            let attempts = flow.attempts();
            drop(flow);
            Ok(error_term(env, &e, attempts))
        }
        None => Ok(wait_term(env, flow, Some(call))),
    }
}

/// `{error, Err}`, with `attempts` when retries were on (as the runtime's
/// `Plan::send_error` gives it).
fn error_term<'a>(env: Env<'a>, e: &crate::error::Error, attempts: Option<u32>) -> Term<'a> {
    let err = e.encode(env);
    let err = match attempts {
        Some(n) => err
            .map_put(
                crate::resilience::atoms::attempts().encode(env),
                n.encode(env),
            )
            .unwrap_or(err),
        None => err,
    };
    (atoms::error(), err).encode(env)
}
