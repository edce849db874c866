//! Sockets watched by the VM's own poll set (`enif_select`).
//!
//! A selected descriptor may only be closed from the resource type's stop
//! callback, which rustler's resources do not have; this is a resource
//! type of its own that holds nothing but the descriptor. [`Fd`] is the
//! Rust side's reference to one.

use std::ffi::c_void;
use std::os::fd::{IntoRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use rustler::sys::{
    enif_alloc_resource, enif_make_resource, enif_open_resource_type_x, enif_release_resource,
    enif_select, ErlNifEnv, ErlNifEvent, ErlNifResourceFlags, ErlNifResourceType,
    ErlNifResourceTypeInit, ERL_NIF_SELECT_READ, ERL_NIF_SELECT_STOP, ERL_NIF_SELECT_WRITE,
};
use rustler::{Env, Term};

static FD_TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// What the resource's memory holds: the descriptor, or -1 once closed.
#[repr(C)]
struct Slot {
    fd: AtomicI32,
}

impl Slot {
    fn close(&self) {
        let fd = self.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // Safe: the descriptor is this slot's alone.
            unsafe { libc::close(fd) };
        }
    }
}

unsafe extern "C" fn stop(_env: *mut ErlNifEnv, obj: *mut c_void, _fd: ErlNifEvent, _direct: i32) {
    (*(obj as *const Slot)).close();
}

unsafe extern "C" fn dtor(_env: *mut ErlNifEnv, obj: *mut c_void) {
    // A selected descriptor keeps its resource alive until stopped, so one
    // that reaches here is no longer watched.
    (*(obj as *const Slot)).close();
}

/// Registers the resource type; called from the NIF's `load`.
pub(crate) fn open_type(env: Env) -> bool {
    let init = ErlNifResourceTypeInit {
        dtor: dtor as *const _,
        stop: stop as *const _,
        down: ptr::null(),
    };
    let mut tried = ErlNifResourceFlags::ERL_NIF_RT_CREATE;
    // Safe: the name is NUL-terminated and `init` outlives the call.
    let t = unsafe {
        enif_open_resource_type_x(
            env.as_c_arg(),
            c"erqwest_socket".as_ptr(),
            &init,
            ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            &mut tried,
        )
    };
    FD_TYPE.store(t as *mut _, Ordering::Release);
    !t.is_null()
}

/// One reference to a socket's resource. The last one to go stops the
/// selection, which closes the socket.
pub(crate) struct Fd {
    obj: *mut c_void,
    raw: RawFd,
}

// Safe: the resource is reference counted by the VM and the slot is atomic.
unsafe impl Send for Fd {}
unsafe impl Sync for Fd {}

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

impl Fd {
    /// Takes ownership of `socket`; `None` if the type is not registered.
    pub(crate) fn new(socket: impl IntoRawFd) -> Option<Fd> {
        let t = FD_TYPE.load(Ordering::Acquire);
        let raw = socket.into_raw_fd();
        if t.is_null() {
            unsafe { libc::close(raw) };
            return None;
        }
        // Safe: the type is registered and the size is the slot's.
        let obj = unsafe { enif_alloc_resource(t, std::mem::size_of::<Slot>()) };
        unsafe {
            ptr::write(
                obj as *mut Slot,
                Slot {
                    fd: AtomicI32::new(raw),
                },
            )
        };
        Some(Fd { obj, raw })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.raw
    }

    /// The address of the socket's peer (`timings`' `remote_addr`).
    pub(crate) fn peer(&self) -> Option<std::net::SocketAddr> {
        // Safe: the descriptor stays open while `self` lives.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.raw) };
        socket2::SockRef::from(&fd).peer_addr().ok()?.as_socket()
    }

    /// Asks the VM to send `{select, Obj, Ref, ready_input | ready_output}`
    /// to the calling process once the socket is ready. `reference` must
    /// be a reference made by `make_ref()`.
    pub(crate) fn select(&self, env: Env, interest: Interest, reference: Term) -> bool {
        let flags = match interest {
            Interest::Read => ERL_NIF_SELECT_READ,
            Interest::Write => ERL_NIF_SELECT_WRITE,
        };
        // Safe: `env` is the calling process's and the object is live.
        let r = unsafe {
            enif_select(
                env.as_c_arg(),
                self.raw as ErlNifEvent,
                flags,
                self.obj,
                ptr::null(),
                reference.as_c_arg(),
            )
        };
        r >= 0
    }

    /// The resource as a term (for tests).
    #[allow(dead_code)]
    pub(crate) fn term<'a>(&self, env: Env<'a>) -> Term<'a> {
        unsafe { Term::new(env, enif_make_resource(env.as_c_arg(), self.obj)) }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // Safe: STOP ignores the pid and the reference; a descriptor that
        // was never selected has its stop callback called at once.
        unsafe {
            enif_select(
                ptr::null_mut(),
                self.raw as ErlNifEvent,
                ERL_NIF_SELECT_STOP,
                self.obj,
                ptr::null(),
                crate::atoms::undefined().as_c_arg(),
            );
            enif_release_resource(self.obj);
        }
    }
}
