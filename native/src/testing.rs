//! Fault injection for the reliability tests (`test/erqwest_fault_SUITE`).
//!
//! Compiled only with the `fault-injection` feature, which no normal build
//! enables; the Erlang stubs exist only when `erqwest_nif` is compiled with
//! `FAULT_INJECTION` defined. The suite builds both into a peer VM.

use std::sync::Arc;

use rustler::{Atom, LocalPid, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::client::Client;
use crate::reply::{Progress, Replier};

/// Panics inside a NIF call: rustler must turn it into an exception
/// (`nif_panicked`) instead of unwinding into the VM.
#[rustler::nif]
fn fault_panic_nif() -> Atom {
    panic!("injected panic in a NIF call")
}

/// Spawns a task on the client's runtime that panics while it holds a
/// request's [`Replier`], as a request task would: the caller must still get
/// exactly one final `error` (code `unknown`), and the runtime must live on.
#[rustler::nif]
fn fault_panic_task(
    client: ResourceArc<Client>,
    pid: LocalPid,
    reference: Term,
) -> NifResult<Atom> {
    let rt = client
        .runtime()
        .handle()
        .ok_or(rustler::Error::RaiseAtom("bad_runtime"))?;
    let out = Replier::new(pid, reference, Arc::new(Progress::default()));
    rt.spawn(async move {
        let _out = out;
        panic!("injected panic in a request task");
    });
    Ok(atoms::ok())
}
