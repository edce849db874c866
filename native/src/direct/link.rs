//! What a connect made on the runtime hands to the exchange that asked
//! for it: shared by the two (`tasks.rs` makes it, `exchange.rs` takes
//! it), so it sits below both.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::Error;

/// What a connect on the runtime gives: a socket (with its TLS session
/// for HTTPS), or the error that ended the connect or the handshake.
pub(crate) struct Connected {
    pub(crate) rx: oneshot::Receiver<Result<Link, Error>>,
    /// Set while the TCP connect itself is under way (not the name's
    /// lookup, not the handshake): a connect timeout then reads as
    /// hyper-util's, which times that part alone (`reasons.rs`).
    pub(crate) in_tcp: Arc<AtomicBool>,
}

impl Connected {
    pub(crate) fn in_tcp(&self) -> bool {
        self.in_tcp.load(Ordering::Acquire)
    }
}

pub(crate) struct Link {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) tls: Option<Box<rustls::ClientConnection>>,
    /// Set when the server chose HTTP/2: the connection's place in its
    /// origin's count.
    pub(crate) h2: Option<super::Live>,
}
