//! The gate between hyper's polls and a non-blocking socket read and
//! written from a NIF call: what the last pass found the socket unable
//! to do (the readiness to select on), reads kept to one `recv` that
//! finds nothing per call, and writes held together (`cork`). Plain
//! sockets (`io.rs`) and TLS records (`tls.rs`) both go through it, so
//! it sits below both.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::fd::Interest;

/// Socket bytes one NIF call reads at most. hyper's HTTP/1 client reads a
/// body frame at a time, and the exchange stops at its own limit first;
/// HTTP/2's connection task reads until the socket is empty (up to the
/// flow-control windows, megabytes), so this is what bounds its calls.
pub(crate) const READ_BUDGET: usize = 128 * 1024;

/// Bytes a corked connection holds at most; a write past this sends
/// what is held and then itself.
const HOLD_MAX: usize = 64 * 1024;

pub(super) const WANT_READ: u8 = 1;
pub(super) const WANT_WRITE: u8 = 2;

/// What the last pass of polling found the socket unable to do, and
/// whether a read has found it empty since the socket last had a reason
/// to have something (a NIF call woken by it, a checkout, a send).
///
/// hyper reads at every poll of an idle or finished connection, and one
/// request polls it half a dozen times: the gate keeps those to one
/// `recv` that finds nothing per call, as tokio's readiness does.
#[derive(Default)]
pub(crate) struct Wants {
    bits: AtomicU8,
    drained: AtomicBool,
    /// Bytes read since the NIF call began, and whether a read was
    /// refused for it ([`READ_BUDGET`]).
    taken: AtomicUsize,
    spent: AtomicBool,
    /// Set while a runtime task reads a large body (`bulk.rs`): no NIF
    /// call is held by these reads, so they take what hyper asks for.
    bulk: AtomicBool,
    /// While corked, writes are held and sent together on [`Wants::uncork`]:
    /// hyper's HTTP/2 client writes a request's HEADERS and its DATA from
    /// two tasks, each with a flush, and two sends on loopback wake the
    /// server twice.
    corked: AtomicBool,
    held: Mutex<Vec<u8>>,
}

impl Wants {
    /// A NIF call begins: its reads get the whole budget.
    pub(crate) fn begin_call(&self) {
        self.taken.store(0, Ordering::Relaxed);
        self.spent.store(false, Ordering::Relaxed);
    }

    /// The reads are a runtime task's from now on, or a NIF call's again.
    pub(crate) fn set_bulk(&self, on: bool) {
        self.bulk.store(on, Ordering::Relaxed);
    }

    pub(super) fn bulk(&self) -> bool {
        self.bulk.load(Ordering::Relaxed)
    }

    /// Whether this call stopped reading for its budget with bytes maybe
    /// left: the caller should call again rather than wait.
    pub(crate) fn spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.bits.store(0, Ordering::Relaxed);
    }

    /// The socket may have bytes again: the next read asks the kernel.
    pub(crate) fn rearm(&self) {
        self.drained.store(false, Ordering::Relaxed);
    }

    fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// A read that hit `WouldBlock` closes the gate, and so does one that
    /// took less than it asked for: a TCP socket gives all it holds, so it
    /// held no more then. (What comes later is seen by the select, which
    /// reports a socket that is readable already at once.) The end of the
    /// stream leaves the gate open: hyper reads it again.
    fn after_read(&self, r: io::Result<usize>, asked: usize) -> io::Result<usize> {
        let empty = match &r {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(n) => *n > 0 && *n < asked,
        };
        if empty {
            self.drained.store(true, Ordering::Relaxed);
        }
        r
    }

    /// Writing comes first: a request that is not out yet gets no answer.
    pub(crate) fn interest(&self) -> Option<Interest> {
        let w = self.bits.load(Ordering::Relaxed);
        if w & WANT_WRITE != 0 {
            Some(Interest::Write)
        } else if w & WANT_READ != 0 {
            Some(Interest::Read)
        } else {
            None
        }
    }

    pub(super) fn note(&self, bit: u8) {
        self.bits.fetch_or(bit, Ordering::Relaxed);
    }

    /// Writes are held from now until [`Wants::uncork`].
    pub(crate) fn cork(&self) {
        self.corked.store(true, Ordering::Relaxed);
    }

    /// Sends what the cork held: `Ok(false)` if the socket took only part
    /// of it (the rest goes first at the next write, or the next uncork).
    pub(crate) fn uncork(&self, fd: RawFd) -> io::Result<bool> {
        self.corked.store(false, Ordering::Relaxed);
        self.release(fd)
    }

    /// Takes `buf` into the held bytes, when corked and there is room.
    fn hold(&self, buf: &[u8]) -> bool {
        if !self.corked.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        if held.len() + buf.len() > HOLD_MAX {
            return false;
        }
        held.extend_from_slice(buf);
        true
    }

    /// Sends the held bytes; `Ok(false)` when the socket is full first.
    fn release(&self, fd: RawFd) -> io::Result<bool> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| io::Error::other("held bytes poisoned"))?;
        while !held.is_empty() {
            match send(fd, &held) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    held.drain(..n);
                    self.rearm();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.note(WANT_WRITE);
                    return Ok(false);
                }
                Err(e) => {
                    held.clear();
                    return Err(e);
                }
            }
        }
        Ok(true)
    }
}

/// `recv` into initialised bytes (rustls reads records this way), behind
/// the gate of `wants`.
pub(super) fn recv_into(fd: RawFd, wants: &Wants, buf: &mut [u8]) -> io::Result<usize> {
    // Safe: initialised bytes are valid as uninitialised ones, and `recv`
    // writes only bytes.
    let uninit = unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    };
    gated_recv(fd, wants, uninit)
}

pub(super) fn gated_recv(
    fd: RawFd,
    wants: &Wants,
    buf: &mut [MaybeUninit<u8>],
) -> io::Result<usize> {
    if wants.drained() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    if wants.bulk() {
        return wants.after_read(recv(fd, buf), buf.len());
    }
    let taken = wants.taken.load(Ordering::Relaxed);
    let left = READ_BUDGET.saturating_sub(taken);
    if left == 0 {
        wants.spent.store(true, Ordering::Relaxed);
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let asked = buf.len().min(left);
    let r = wants.after_read(recv(fd, &mut buf[..asked]), asked);
    if let Ok(n) = r {
        wants.taken.store(taken + n, Ordering::Relaxed);
    }
    r
}

/// `send` (after what a cork held, or into it); bytes out may bring an
/// answer, so reads ask the kernel again.
pub(super) fn gated_send(fd: RawFd, wants: &Wants, buf: &[u8]) -> io::Result<usize> {
    if wants.hold(buf) {
        return Ok(buf.len());
    }
    if !wants.release(fd)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let r = send(fd, buf);
    if matches!(r, Ok(n) if n > 0) {
        wants.rearm();
    }
    r
}

fn recv(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    loop {
        // Safe: the kernel writes at most `len` bytes into the buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // MSG_NOSIGNAL: a peer that closed is an error here, not a SIGPIPE.
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).expect("nonblocking");
        (a, b)
    }

    fn read(fd: RawFd, wants: &Wants, len: usize) -> io::Result<usize> {
        let mut buf = vec![0u8; len];
        recv_into(fd, wants, &mut buf)
    }

    /// Writes 16 KB at a time until `up_to` bytes, or the socket pair's
    /// buffer, is full; the bytes written.
    fn fill(peer: &UnixStream, up_to: usize) -> usize {
        let chunk = vec![7u8; 16 * 1024];
        let mut sent = 0;
        let mut writer = peer;
        while sent < up_to {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    }

    /// Reads until a read is refused; the bytes read.
    fn drain(fd: RawFd, wants: &Wants) -> usize {
        let mut read = 0;
        while let Ok(n) = self::read(fd, wants, 64 * 1024) {
            read += n;
        }
        read
    }

    fn would_block(r: io::Result<usize>) -> bool {
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    #[test]
    fn an_empty_read_closes_the_gate_until_rearmed() {
        let (ours, mut peer) = pair();
        let wants = Wants::default();
        assert!(would_block(read(ours.as_raw_fd(), &wants, 64)));
        peer.write_all(b"abc").unwrap();
        // The bytes are there, but nothing said so: no recv is made.
        assert!(would_block(read(ours.as_raw_fd(), &wants, 64)));
        wants.rearm();
        assert_eq!(read(ours.as_raw_fd(), &wants, 64).unwrap(), 3);
    }

    #[test]
    fn a_short_read_closes_the_gate_and_a_full_one_does_not() {
        let (ours, mut peer) = pair();
        let wants = Wants::default();
        peer.write_all(b"0123456789").unwrap();
        assert_eq!(read(ours.as_raw_fd(), &wants, 4).unwrap(), 4);
        assert_eq!(read(ours.as_raw_fd(), &wants, 4).unwrap(), 4);
        assert_eq!(read(ours.as_raw_fd(), &wants, 4).unwrap(), 2);
        peer.write_all(b"x").unwrap();
        assert!(would_block(read(ours.as_raw_fd(), &wants, 4)));
    }

    #[test]
    fn a_send_opens_the_gate() {
        let (ours, mut peer) = pair();
        let wants = Wants::default();
        assert!(would_block(read(ours.as_raw_fd(), &wants, 64)));
        peer.write_all(b"reply").unwrap();
        assert_eq!(gated_send(ours.as_raw_fd(), &wants, b"req").unwrap(), 3);
        assert_eq!(read(ours.as_raw_fd(), &wants, 64).unwrap(), 5);
    }

    /// What the peer has been sent so far.
    fn received(peer: &UnixStream) -> Vec<u8> {
        peer.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let mut reader = peer;
        while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn corked_writes_go_out_together_in_order() {
        let (ours, peer) = pair();
        let wants = Wants::default();
        wants.cork();
        assert_eq!(gated_send(ours.as_raw_fd(), &wants, b"HEADERS").unwrap(), 7);
        assert_eq!(gated_send(ours.as_raw_fd(), &wants, b"+DATA").unwrap(), 5);
        assert!(received(&peer).is_empty(), "a corked write was sent");
        assert!(wants.uncork(ours.as_raw_fd()).unwrap());
        assert_eq!(received(&peer), b"HEADERS+DATA");
        // Uncorked, a write goes at once.
        assert_eq!(gated_send(ours.as_raw_fd(), &wants, b"next").unwrap(), 4);
        assert_eq!(received(&peer), b"next");
    }

    #[test]
    fn a_write_past_the_hold_sends_what_is_held_first() {
        let (ours, peer) = pair();
        let wants = Wants::default();
        wants.cork();
        let big = vec![b'b'; HOLD_MAX];
        gated_send(ours.as_raw_fd(), &wants, b"a").unwrap();
        let n = gated_send(ours.as_raw_fd(), &wants, &big).unwrap();
        let got = received(&peer);
        assert_eq!(got[0], b'a');
        assert_eq!(got.len(), 1 + n);
        assert!(got[1..].iter().all(|&b| b == b'b'));
    }

    #[test]
    fn an_uncork_into_a_full_socket_keeps_the_rest_for_the_next_write() {
        let (ours, peer) = pair();
        let wants = Wants::default();
        // Fill our side until the kernel takes no more.
        let chunk = vec![1u8; 16 * 1024];
        let mut filled = 0;
        while let Ok(n) = send(ours.as_raw_fd(), &chunk) {
            filled += n;
        }
        wants.cork();
        gated_send(ours.as_raw_fd(), &wants, b"held").unwrap();
        assert!(!wants.uncork(ours.as_raw_fd()).unwrap());
        assert_eq!(wants.interest(), Some(Interest::Write));
        // While bytes are held, a later write waits behind them.
        assert!(would_block(gated_send(ours.as_raw_fd(), &wants, b"later")));
        let got = received(&peer);
        assert_eq!(got.len(), filled);
        assert!(wants.uncork(ours.as_raw_fd()).unwrap());
        assert_eq!(gated_send(ours.as_raw_fd(), &wants, b"later").unwrap(), 5);
        assert_eq!(received(&peer), b"heldlater");
    }

    #[test]
    fn an_uncork_to_a_closed_peer_fails_and_drops_what_was_held() {
        let (ours, peer) = pair();
        let wants = Wants::default();
        wants.cork();
        gated_send(ours.as_raw_fd(), &wants, b"held").unwrap();
        drop(peer);
        let e = wants.uncork(ours.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        // Nothing is left to send again.
        assert!(wants.uncork(ours.as_raw_fd()).unwrap());
    }

    #[test]
    fn a_call_reads_at_most_its_budget() {
        let (ours, peer) = pair();
        peer.set_nonblocking(true).expect("nonblocking");
        let wants = Wants::default();
        let sent = fill(&peer, READ_BUDGET + 16 * 1024);
        // The socket pair's buffer may hold less than the budget: then the
        // budget is not what stops this test's reads, and it proves nothing.
        assert!(sent > READ_BUDGET, "socket buffer too small: {sent}");
        let read = drain(ours.as_raw_fd(), &wants);
        assert_eq!(read, READ_BUDGET);
        assert!(wants.spent());
        wants.begin_call();
        assert!(!wants.spent());
        assert!(self::read(ours.as_raw_fd(), &wants, 64 * 1024).unwrap() > 0);
    }

    #[test]
    fn a_runtime_task_reads_past_the_budget_and_a_call_again_does_not() {
        let (ours, peer) = pair();
        peer.set_nonblocking(true).expect("nonblocking");
        let wants = Wants::default();
        let sent = fill(&peer, 2 * READ_BUDGET);
        assert!(sent > READ_BUDGET + 1024, "socket buffer too small: {sent}");
        let read = drain(ours.as_raw_fd(), &wants);
        assert_eq!(read, READ_BUDGET);
        // The same call's budget is spent, but a runtime task has none.
        wants.set_bulk(true);
        assert_eq!(self::read(ours.as_raw_fd(), &wants, 1024).unwrap(), 1024);
        // Back to NIF calls: the spent budget holds again.
        wants.set_bulk(false);
        assert!(would_block(self::read(ours.as_raw_fd(), &wants, 1024)));
    }

    #[test]
    fn the_end_of_the_stream_leaves_the_gate_open() {
        let (ours, peer) = pair();
        let wants = Wants::default();
        drop(peer);
        assert_eq!(read(ours.as_raw_fd(), &wants, 64).unwrap(), 0);
        assert_eq!(read(ours.as_raw_fd(), &wants, 64).unwrap(), 0);
    }
}
