//! hyper's I/O traits over a non-blocking socket read and written from
//! the scheduler thread of the NIF call that polls it. Where the kernel
//! has nothing to give or take, the operation is pending and the wanted
//! readiness is noted for the caller to select on.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::fd::Fd;
use super::wants::{gated_recv, gated_send, Wants, WANT_READ, WANT_WRITE};

/// Bytes one read takes at most: hyper reads as much as its buffer holds
/// (up to ~400 KB), which would make one body frame, and one NIF call,
/// too long.
pub(crate) const RECV_MAX: usize = 64 * 1024;

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

    fn recv_max(&self) -> usize {
        if self.wants.bulk() {
            usize::MAX
        } else {
            RECV_MAX
        }
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

impl hyper::rt::Read for SockIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let most = this.recv_max();
        if let Some(session) = &mut this.tls {
            let r = super::tls::read(session, &this.fd, &this.wants, &mut buf, most);
            return this.poll(r, WANT_READ);
        }
        // Safe: `recv` only writes initialised bytes, and `advance` counts
        // no more than it wrote.
        let dst = unsafe { buf.as_mut() };
        let len = dst.len().min(most);
        let r = gated_recv(this.fd.raw(), &this.wants, &mut dst[..len])
            .map(|n| unsafe { buf.advance(n) });
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
            Some(session) => super::tls::write(session, &this.fd, &this.wants, buf),
            None => gated_send(this.fd.raw(), &this.wants, buf),
        };
        this.poll(r, WANT_WRITE)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.tls {
            Some(session) => {
                let r = super::tls::flush(session, &this.fd, &this.wants);
                this.poll(r, WANT_WRITE)
            }
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(session) = &mut this.tls {
            session.send_close_notify();
            let r = super::tls::flush(session, &this.fd, &this.wants);
            if this.poll(r, WANT_WRITE).is_pending() {
                return Poll::Pending;
            }
        }
        // Safe: shutting down a socket we hold.
        unsafe { libc::shutdown(this.fd.raw(), libc::SHUT_WR) };
        Poll::Ready(Ok(()))
    }
}
