//! erqwest's NIF: reqwest on a tokio runtime, driven from Erlang.
//!
//! Each concept has its module: [`runtime`] (the tokio runtime resource),
//! [`client`] and [`tls`] (options to a reqwest client), [`request`] (one
//! request's handle and task), [`inbox`] (commands from a handle to its
//! task), [`body`] (streamed request bodies),
//! [`reply`] (messages back to Erlang), [`error`] (`err()` codes) and
//! [`term`] (term decoding and encoding). This file only wires them up.

mod atoms;
pub mod body;
pub mod client;
pub mod error;
mod inbox;
mod operation;
mod reply;
mod request;
mod runtime;
mod term;
#[cfg(feature = "fault-injection")]
mod testing;
mod tls;
#[cfg(test)]
mod vm_stubs;

use rustler::{Atom, Env, Term};

// glibc's malloc and free were about a tenth of a tokio thread's time per
// request (bench/README.md); mimalloc's thread-local free lists are cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Compile-time features; every codec is built in.
#[rustler::nif]
fn feature(name: Atom) -> bool {
    [
        atoms::cookies(),
        atoms::gzip(),
        atoms::brotli(),
        atoms::deflate(),
        atoms::zstd(),
        atoms::http2(),
    ]
    .contains(&name)
}

fn load(_env: Env, _info: Term) -> bool {
    // reqwest is built without a default crypto provider; install ring's
    // once per VM. An earlier install (a reload) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    true
}

rustler::init!("erqwest_nif", load = load);
