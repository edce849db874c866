//! Non-blocking connects: started in the NIF call, finished when the VM
//! reports the socket writable.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use super::fd::Fd;
use super::Transport;
use crate::error::{Code, Error};

/// reqwest's words for a connect that failed.
pub(super) fn refused(url: &str, e: std::io::Error) -> Error {
    crate::reasons::tcp_connect(url, &e)
}

pub(super) fn start(addr: SocketAddr, transport: &Transport, url: &str) -> Result<Arc<Fd>, Error> {
    let refused = |_: SocketAddr, e: std::io::Error| refused(url, e);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| refused(addr, e))?;
    sock.set_nonblocking(true).map_err(|e| refused(addr, e))?;
    if let Some(ip) = transport.local_address {
        sock.bind(&SocketAddr::new(ip, 0).into())
            .map_err(|e| refused(addr, e))?;
    }
    tune(&socket2::SockRef::from(&sock), transport);
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(refused(addr, e)),
    }
    let fd =
        Fd::new(sock).ok_or_else(|| Error::new(Code::Unknown, "socket type not registered"))?;
    Ok(Arc::new(fd))
}

/// `Ok(true)` once connected, `Ok(false)` while still connecting.
pub(super) fn finish(fd: &Fd, url: &str) -> Result<bool, Error> {
    let mut p = libc::pollfd {
        fd: fd.raw(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // Safe: one pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n <= 0 {
        return Ok(false);
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // Safe: SO_ERROR writes one int.
    let r = unsafe {
        libc::getsockopt(
            fd.raw(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(refused(url, std::io::Error::last_os_error()));
    }
    if err != 0 {
        return Err(refused(url, std::io::Error::from_raw_os_error(err)));
    }
    Ok(true)
}

/// Socket options that, as in hyper-util's connector, do not fail a
/// connect when the system refuses them (a keepalive beyond its range).
pub(super) fn tune(sock: &socket2::SockRef<'_>, transport: &Transport) {
    let _ = sock.set_tcp_nodelay(transport.nodelay);
    if let Some(t) = transport.keepalive {
        let _ = sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(t));
    }
}
