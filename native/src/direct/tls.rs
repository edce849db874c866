//! TLS on the direct path: a rustls session whose records are read and
//! written by the same NIF calls that drive hyper, after a handshake done
//! on the runtime (it takes round trips and certificate checks, too long
//! for a scheduler).
//!
//! The session's config is built from the client's options the way
//! reqwest builds its own, so both paths trust and offer the same things.
//! Where it could differ, the direct path does not take TLS at all
//! ([`config_for`] gives `None`). A handshake that fails here is answered
//! as reqwest answers the same failure (a `connect` error, in its words),
//! not tried again through reqwest: that would connect a second time, and
//! a server that serves one connection (or answers the first wrongly and
//! goes away) would leave the second waiting for ever.

use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig as RustlsConfig, ClientConnection, DigitallySignedStruct, SignatureScheme,
};

use super::fd::Fd;
use super::wants::Wants;
use crate::config::ClientConfig;

/// The rustls config of a client's direct TLS connections, or `None`
/// when its TLS options are ones this path leaves to reqwest (a client
/// identity that does not load here, or hostname checks turned off).
pub(crate) fn config_for(c: &ClientConfig) -> Option<Arc<RustlsConfig>> {
    if c.danger_accept_invalid_hostnames && !c.danger_accept_invalid_certs {
        return None;
    }
    let provider = rustls::crypto::CryptoProvider::get_default()?.clone();
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = rustls::ALL_VERSIONS
        .iter()
        .copied()
        .filter(|v| match (c.min_tls_version, version_of(v)) {
            (Some(min), Some(v)) => v >= min,
            // One newer than reqwest knows of: allowed, as reqwest does.
            _ => true,
        })
        .collect();
    let builder = RustlsConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .ok()?;
    let roots: Vec<CertificateDer<'static>> = c
        .additional_root_certs
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    let builder = if c.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerifier))
    } else if c.use_built_in_root_certs {
        // The platform's roots, plus any given: what reqwest does when
        // roots are merged into its built-in ones.
        let verifier = if roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider).ok()?
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider).ok()?
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root).ok()?;
        }
        builder.with_root_certificates(store)
    };
    let mut config = match &c.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let pem = id.to_pem().ok()?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let key = PrivateKeyDer::from_pem_slice(&pem).ok()?;
            builder.with_client_auth_cert(certs, key).ok()?
        }
    };
    config.alpn_protocols = if c.http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Some(Arc::new(config))
}

fn version_of(v: &rustls::SupportedProtocolVersion) -> Option<reqwest::tls::Version> {
    match v.version {
        rustls::ProtocolVersion::TLSv1_2 => Some(reqwest::tls::Version::TLS_1_2),
        rustls::ProtocolVersion::TLSv1_3 => Some(reqwest::tls::Version::TLS_1_3),
        _ => None,
    }
}

/// The name a connection to `host` checks the certificate against (and
/// sends as SNI), as reqwest's connector makes it: brackets off an IPv6
/// literal, an IP address as an address.
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).ok()
}

/// What the handshake on the runtime gives the scheduler side.
pub(crate) enum Handshake {
    /// HTTP/1.1 (or no protocol) was agreed: the stream (registered with
    /// nothing, for the VM's poll set) and the session to go on with.
    Http1(std::net::TcpStream, Box<ClientConnection>),
    /// The same, where the server chose HTTP/2.
    Http2(std::net::TcpStream, Box<ClientConnection>),
    /// The handshake failed: why, as tokio-rustls says it to reqwest.
    Failed(io::Error),
}

/// Runs the handshake on `tcp`.
pub(crate) async fn handshake(
    config: Arc<RustlsConfig>,
    name: ServerName<'static>,
    tcp: tokio::net::TcpStream,
) -> io::Result<Handshake> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = match connector.connect(name, tcp).await {
        Ok(s) => s,
        Err(e) => return Ok(Handshake::Failed(e)),
    };
    let (tcp, session) = stream.into_inner();
    let h2 = session.alpn_protocol() == Some(&b"h2"[..]);
    let (tcp, session) = (tcp.into_std()?, Box::new(session));
    Ok(if h2 {
        Handshake::Http2(tcp, session)
    } else {
        Handshake::Http1(tcp, session)
    })
}

/// The socket as rustls reads and writes it: `WouldBlock` where the
/// kernel has nothing to give or no room to take.
struct Raw<'a>(&'a Fd, &'a Wants);

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::wants::recv_into(self.0.raw(), self.1, buf)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        super::wants::gated_send(self.0.raw(), self.1, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plaintext from `session` into `dst` (at most `max` bytes): what it
/// already holds, else what the socket's records give. Nothing put is the
/// end of the stream (close_notify); an end without it is
/// `UnexpectedEof`, as tokio-rustls reports it to reqwest's hyper.
pub(crate) fn read(
    session: &mut ClientConnection,
    fd: &Fd,
    wants: &Wants,
    dst: &mut hyper::rt::ReadBufCursor<'_>,
    max: usize,
) -> io::Result<()> {
    let mut eof = false;
    loop {
        match session.reader().into_first_chunk() {
            Ok(chunk) => {
                let n = chunk.len().min(dst.remaining()).min(max);
                dst.put_slice(&chunk[..n]);
                session.reader().consume(n);
                return Ok(());
            }
            // After the socket's end the reader has said which end it was.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !eof => {}
            Err(e) => return Err(e),
        }
        // Records rustls owes the peer (an alert, a key update) go first;
        // a full socket here does not stop the read.
        match flush(session, fd, wants) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        eof = session.read_tls(&mut Raw(fd, wants))? == 0;
        session
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
}

/// Plaintext taken into the session, its records sent as far as the
/// socket takes them (the rest by [`flush`]).
pub(crate) fn write(
    session: &mut ClientConnection,
    fd: &Fd,
    wants: &Wants,
    buf: &[u8],
) -> io::Result<usize> {
    // Records already waiting go out first, so the session's buffer does
    // not grow past its limit while the socket is full.
    flush(session, fd, wants)?;
    let n = session.writer().write(buf)?;
    match flush(session, fd, wants) {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
        _ => {}
    }
    if n == 0 && !buf.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

/// Sends every record the session holds; `WouldBlock` if the socket is
/// full first.
pub(crate) fn flush(session: &mut ClientConnection, fd: &Fd, wants: &Wants) -> io::Result<()> {
    while session.wants_write() {
        session.write_tls(&mut Raw(fd, wants))?;
    }
    Ok(())
}

/// reqwest's verifier for `danger_accept_invalid_certs`: every
/// certificate and signature passes.
#[derive(Debug)]
struct NoVerifier;

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        use SignatureScheme::*;
        vec![
            RSA_PKCS1_SHA1,
            ECDSA_SHA1_Legacy,
            RSA_PKCS1_SHA256,
            ECDSA_NISTP256_SHA256,
            RSA_PKCS1_SHA384,
            ECDSA_NISTP384_SHA384,
            RSA_PKCS1_SHA512,
            ECDSA_NISTP521_SHA512,
            RSA_PSS_SHA256,
            RSA_PSS_SHA384,
            RSA_PSS_SHA512,
            ED25519,
            ED448,
        ]
    }
}
