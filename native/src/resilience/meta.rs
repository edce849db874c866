//! The keys a final message gets from the policy layer: `attempts` and
//! `timings`. Plain data below the layer that fills them (`Plan`,
//! `stepwise.rs`) and the replies that carry them (`reply.rs`).

use std::time::Duration;

use rustler::{Encoder, Env, Term};

use super::atoms;
use super::timings::Timings;

/// The extra keys of a final message.
#[derive(Debug, Default, Clone)]
pub struct Meta {
    pub(crate) attempts: Option<u32>,
    /// The timings, and `reused` (no connect in this request).
    pub(crate) timings: Option<(Timings, bool)>,
}

impl Meta {
    /// Adds `attempts` and `timings` to a `resp()` or `err()` being built.
    pub fn encode_into<'a>(
        &self,
        env: Env<'a>,
        keys: &mut Vec<Term<'a>>,
        values: &mut Vec<Term<'a>>,
    ) {
        if let Some(n) = self.attempts {
            keys.push(atoms::attempts().encode(env));
            values.push(n.encode(env));
        }
        if let Some((t, reused)) = &self.timings {
            keys.push(atoms::timings().encode(env));
            values.push(encode_timings(env, t, *reused));
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn encode_timings<'a>(env: Env<'a>, t: &Timings, reused: bool) -> Term<'a> {
    let mut k = vec![
        atoms::queued().encode(env),
        atoms::headers().encode(env),
        atoms::reused().encode(env),
    ];
    let mut v = vec![
        micros(t.queued).encode(env),
        micros(t.headers).encode(env),
        reused.encode(env),
    ];
    if let Some(c) = t.connect {
        k.push(crate::atoms::connect().encode(env));
        v.push(micros(c).encode(env));
    }
    if let Some(total) = t.total {
        k.push(atoms::total().encode(env));
        v.push(micros(total).encode(env));
    }
    if let Some(addr) = t.remote_addr {
        k.push(atoms::remote_addr().encode(env));
        v.push((encode_ip(env, addr.ip()), addr.port()).encode(env));
    }
    Term::map_from_term_arrays(env, &k, &v).unwrap_or_else(|_| crate::atoms::error().encode(env))
}

/// `inet:ip_address()`.
fn encode_ip(env: Env<'_>, ip: std::net::IpAddr) -> Term<'_> {
    match ip {
        std::net::IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            (a, b, c, d).encode(env)
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            let parts: Vec<Term> = s.iter().map(|x| x.encode(env)).collect();
            rustler::types::tuple::make_tuple(env, &parts)
        }
    }
}
