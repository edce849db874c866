//! erqwest's NIF: reqwest on a tokio runtime, driven from Erlang.
//!
//! Each concept has its module: [`runtime`] (the tokio runtime resource),
//! [`client`] and [`tls`] (options to a reqwest client), [`request`] (one
//! request's handle and task), [`inbox`] (commands from a handle to its
//! task), [`body`] (streamed request bodies),
//! [`reply`] (messages back to Erlang), [`error`] (`err()` codes),
//! [`term`] (term decoding and encoding), [`json`] (the JSON codec),
//! [`compose`] (query strings, JSON and form bodies, auth, base URLs) and
//! [`link`] (`Link` headers and next-page URLs). This file only wires them up.

mod atoms;
pub mod body;
pub mod client;
mod compose;
mod config;
mod direct;
pub mod error;
mod events;
mod inbox;
pub mod json;
mod link;
mod live;
mod max_body;
mod operation;
#[cfg(test)]
mod props;
mod reasons;
mod reply;
mod request;
mod resilience;
mod runtime;
mod scheduler;
mod term;
#[cfg(feature = "fault-injection")]
mod testing;
mod tls;
mod urls;
#[cfg(test)]
mod vm_stubs;

use rustler::{Atom, Env, Term};

// glibc's malloc and free were about a tenth of a tokio thread's time per
// request (bench/README.md); mimalloc's thread-local free lists are cheaper.
// Unit tests keep the system allocator, so that valgrind and AddressSanitizer
// (`make sanitize`) see every allocation.
#[cfg(not(test))]
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

/// `mi_option_arena_eager_commit` in mimalloc 3's `mi_option_e` (the Rust
/// binding names only some options).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Arenas committed up front cost 11 KB more RSS per request with 10,000
/// requests in flight (bench/README.md), so they are committed on demand.
/// The option only counts before the first arena is made, which is the
/// first allocation: hence a constructor, run when the library is opened.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static LAZY_COMMIT: extern "C" fn() = lazy_commit;

#[cfg(target_os = "linux")]
extern "C" fn lazy_commit() {
    // Safe: setting an option is allowed before mimalloc starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

fn load(_env: Env, _info: Term) -> bool {
    // reqwest is built without a default crypto provider; install ring's
    // once per VM. An earlier install (a reload) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    direct::open_type(_env)
}

rustler::init!("erqwest_nif", load = load);

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn mimalloc_commits_arenas_on_demand() {
        // Set by the library's constructor, before any allocation.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_ARENA_EAGER_COMMIT) };
        assert_eq!(v, 0);
    }
}
