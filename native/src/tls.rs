//! TLS settings: trust roots, hostname checks and client identities, on
//! rustls with the `ring` provider (no OpenSSL at build or run time).

use rustler::{Atom, Binary, NifResult, Term};

use crate::atoms;

/// A client certificate as given in `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `{Pkcs12Der, Password}`, as in erqwest 0.2.5.
    Pkcs12 { der: Vec<u8>, password: String },
    /// `{pem, CertsAndKeyPem}` or `{pem, CertsPem, KeyPem}`.
    Pem(Vec<u8>),
}

impl IdentitySource {
    pub fn decode(t: Term) -> NifResult<Self> {
        if let Ok((tag, pem)) = t.decode::<(Atom, Binary)>() {
            if tag == atoms::pem() {
                return Ok(IdentitySource::Pem(pem.as_slice().to_vec()));
            }
            return Err(rustler::Error::BadArg);
        }
        if let Ok((tag, certs, key)) = t.decode::<(Atom, Binary, Binary)>() {
            if tag == atoms::pem() {
                let mut pem = certs.as_slice().to_vec();
                pem.push(b'\n');
                pem.extend_from_slice(key.as_slice());
                return Ok(IdentitySource::Pem(pem));
            }
            return Err(rustler::Error::BadArg);
        }
        let (der, password): (Binary, Binary) = t.decode()?;
        let password =
            String::from_utf8(password.as_slice().to_vec()).map_err(|_| rustler::Error::BadArg)?;
        Ok(IdentitySource::Pkcs12 {
            der: der.as_slice().to_vec(),
            password,
        })
    }

    /// The identity as PEM text, which is what reqwest's rustls backend reads.
    pub(crate) fn to_pem(&self) -> Result<Vec<u8>, String> {
        match self {
            IdentitySource::Pem(pem) => Ok(pem.clone()),
            IdentitySource::Pkcs12 { der, password } => {
                let store = p12_keystore::KeyStore::from_pkcs12(der, password)
                    .map_err(|e| format!("identity: cannot open PKCS#12: {e}"))?;
                let (_, chain) = store
                    .private_key_chain()
                    .ok_or_else(|| "identity: PKCS#12 holds no private key".to_string())?;
                let mut pem = Vec::new();
                for cert in chain.chain() {
                    pem.extend(pem_block("CERTIFICATE", cert.as_der()));
                }
                pem.extend(pem_block("PRIVATE KEY", chain.key()));
                Ok(pem)
            }
        }
    }
}

pub struct TlsConfig {
    pub identity: Option<IdentitySource>,
    pub additional_root_certs: Vec<Vec<u8>>,
    pub use_built_in_root_certs: bool,
    pub danger_accept_invalid_hostnames: bool,
    pub danger_accept_invalid_certs: bool,
}

impl TlsConfig {
    pub fn apply(self, mut b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let mut roots = Vec::with_capacity(self.additional_root_certs.len());
        for der in &self.additional_root_certs {
            roots.push(
                reqwest::Certificate::from_der(der)
                    .map_err(|e| format!("additional_root_certs: {e}"))?,
            );
        }
        if self.danger_accept_invalid_certs {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if self.danger_accept_invalid_hostnames && !self.danger_accept_invalid_certs {
            // reqwest's rustls backend skips the hostname check only with an
            // explicit root list, so the system roots are loaded into it here.
            if self.use_built_in_root_certs {
                roots.extend(system_roots());
            }
            b = b
                .tls_danger_accept_invalid_hostnames(true)
                .tls_certs_only(roots);
        } else if self.use_built_in_root_certs {
            if !roots.is_empty() {
                b = b.tls_certs_merge(roots);
            }
        } else {
            b = b.tls_certs_only(roots);
        }
        if let Some(id) = &self.identity {
            let pem = id.to_pem()?;
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| format!("identity: {e}"))?;
            b = b.identity(identity);
        }
        Ok(b)
    }
}

/// The system trust store, as reqwest certificates; unreadable entries are
/// skipped, as the platform verifier does.
fn system_roots() -> Vec<reqwest::Certificate> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
        .collect()
}

fn pem_block(label: &str, der: &[u8]) -> Vec<u8> {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n").into_bytes();
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend(format!("-----END {label}-----\n").into_bytes());
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let n = match group.len() {
            3 => (group[0] as u32) << 16 | (group[1] as u32) << 8 | group[2] as u32,
            2 => (group[0] as u32) << 16 | (group[1] as u32) << 8,
            _ => (group[0] as u32) << 16,
        };
        let symbols = group.len() + 1;
        for i in 0..4 {
            if i < symbols {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn pem_blocks_wrap_at_64_columns() {
        let pem = pem_block("CERTIFICATE", &[0u8; 100]);
        let text = String::from_utf8(pem).expect("ascii");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }

    #[test]
    fn a_bad_pkcs12_is_a_clear_error() {
        let id = IdentitySource::Pkcs12 {
            der: vec![1, 2, 3],
            password: "x".into(),
        };
        let err = id.to_pem().expect_err("garbage");
        assert!(err.contains("PKCS#12"), "{err}");
    }
}
