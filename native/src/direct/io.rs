//! hyper's I/O traits over a non-blocking socket read and written from
//! the scheduler thread of the NIF call that polls it. Where the kernel
//! has nothing to give or take, the operation is pending and the wanted
//! readiness is noted for the caller to select on.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::fd::{Fd, Interest};

/// Bytes one read takes at most: hyper reads as much as its buffer holds
/// (up to ~400 KB), which would make one body frame, and one NIF call,
/// too long.
pub(crate) const RECV_MAX: usize = 64 * 1024;

const WANT_READ: u8 = 1;
const WANT_WRITE: u8 = 2;

/// What the last pass of polling found the socket unable to do.
#[derive(Default)]
pub(crate) struct Wants(AtomicU8);

impl Wants {
    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// Writing comes first: a request that is not out yet gets no answer.
    pub(crate) fn interest(&self) -> Option<Interest> {
        let w = self.0.load(Ordering::Relaxed);
        if w & WANT_WRITE != 0 {
            Some(Interest::Write)
        } else if w & WANT_READ != 0 {
            Some(Interest::Read)
        } else {
            None
        }
    }

    fn note(&self, bit: u8) {
        self.0.fetch_or(bit, Ordering::Relaxed);
    }
}

pub(crate) struct SockIo {
    fd: Arc<Fd>,
    wants: Arc<Wants>,
    /// Set on an HTTPS connection: bytes go through its records.
    tls: Option<Box<rustls::ClientConnection>>,
}

impl SockIo {
    pub(crate) fn new(
        fd: Arc<Fd>,
        wants: Arc<Wants>,
        tls: Option<Box<rustls::ClientConnection>>,
    ) -> Self {
        SockIo { fd, wants, tls }
    }

    /// A result as hyper takes it: `WouldBlock` is pending, with the
    /// readiness that would move it noted.
    fn poll<T>(&self, r: io::Result<T>, want: u8) -> Poll<io::Result<T>> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.wants.note(want);
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }
}

/// `recv` into initialised bytes (rustls reads records this way).
pub(super) fn recv_into(fd: &Fd, buf: &mut [u8]) -> io::Result<usize> {
    // Safe: initialised bytes are valid as uninitialised ones, and `recv`
    // writes only bytes.
    let uninit = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    };
    recv(fd, uninit)
}

fn recv(fd: &Fd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    loop {
        // Safe: the kernel writes at most `len` bytes into the buffer.
        let n = unsafe { libc::recv(fd.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub(super) fn send(fd: &Fd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // MSG_NOSIGNAL: a peer that closed is an error here, not a SIGPIPE.
        let n = unsafe { libc::send(fd.raw(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl hyper::rt::Read for SockIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(session) = &mut this.tls {
            let r = super::tls::read(session, &this.fd, &mut buf, RECV_MAX);
            return this.poll(r, WANT_READ);
        }
        // Safe: `recv` only writes initialised bytes, and `advance` counts
        // no more than it wrote.
        let dst = unsafe { buf.as_mut() };
        let len = dst.len().min(RECV_MAX);
        let r = recv(&this.fd, &mut dst[..len]).map(|n| unsafe { buf.advance(n) });
        this.poll(r, WANT_READ)
    }
}

impl hyper::rt::Write for SockIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.tls {
            Some(session) => super::tls::write(session, &this.fd, buf),
            None => send(&this.fd, buf),
        };
        this.poll(r, WANT_WRITE)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.tls {
            Some(session) => {
                let r = super::tls::flush(session, &this.fd);
                this.poll(r, WANT_WRITE)
            }
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(session) = &mut this.tls {
            session.send_close_notify();
            let r = super::tls::flush(session, &this.fd);
            if this.poll(r, WANT_WRITE).is_pending() {
                return Poll::Pending;
            }
        }
        // Safe: shutting down a socket we hold.
        unsafe { libc::shutdown(this.fd.raw(), libc::SHUT_WR) };
        Poll::Ready(Ok(()))
    }
}
