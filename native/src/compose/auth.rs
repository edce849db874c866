//! `auth => {basic, User, Password} | {bearer, Token}`, per request or as a
//! client default, applied with reqwest's `basic_auth` / `bearer_auth`.
//! Both mark the header sensitive, and reqwest drops it when a redirect
//! leaves the origin (scheme, host and port), so credentials never reach
//! another host.

use rustler::{Atom, Binary, NifResult, Term};

use super::bad;

rustler::atoms! {
    basic,
    bearer,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { user: String, password: String },
    Bearer(String),
}

// Credentials stay out of debug output.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { .. } => f.write_str("Basic(..)"),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

const SHAPE: &str = "auth: expected {basic, User, Password} or {bearer, Token} with UTF-8 binaries";

impl Auth {
    pub fn decode(t: Term) -> NifResult<Self> {
        let parts = rustler::types::tuple::get_tuple(t).map_err(|_| bad(SHAPE))?;
        let kind: Atom = parts
            .first()
            .and_then(|k| k.decode().ok())
            .ok_or_else(|| bad(SHAPE))?;
        match (kind, &parts[1..]) {
            (k, [user, password]) if k == basic() => Ok(Auth::Basic {
                user: text(*user)?,
                password: text(*password)?,
            }),
            (k, [token]) if k == bearer() => Ok(Auth::Bearer(text(*token)?)),
            _ => Err(bad(SHAPE)),
        }
    }

    pub fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Basic { user, password } => rb.basic_auth(user, Some(password)),
            Auth::Bearer(token) => rb.bearer_auth(token),
        }
    }
}

fn text(t: Term) -> NifResult<String> {
    let b: Binary = t.decode().map_err(|_| bad(SHAPE))?;
    String::from_utf8(b.as_slice().to_vec()).map_err(|_| bad(SHAPE))
}
