//! TLS and mutual TLS (rustls, through tonic) from certificate files named in the configuration.
//!
//! * `KG_TLS_CERT` + `KG_TLS_KEY`: the service's certificate chain and private key (PEM). Set,
//!   the gRPC port speaks TLS only.
//! * `KG_TLS_CLIENT_CA`: mutual TLS: every client must present a certificate signed by this CA
//!   (PEM, one or more certificates); a client without one does not get past the handshake.
//! * `KG_TLS_CA`: the CA that outbound clients trust for `https://` peers. Outbound clients also
//!   present `KG_TLS_CERT`/`KG_TLS_KEY` as their client certificate when a peer asks for one, so
//!   a service certificate used for mutual TLS needs both the serverAuth and clientAuth extended
//!   key usages (or none).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The certificate files of one service.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

fn read(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        anyhow::bail!("{what} {} is not PEM", path.display());
    }
    Ok(bytes)
}

impl TlsFiles {
    fn identity(&self) -> anyhow::Result<Option<Identity>> {
        match (&self.cert, &self.key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Identity::from_pem(
                read("certificate (KG_TLS_CERT)", cert)?,
                read("private key (KG_TLS_KEY)", key)?,
            ))),
            _ => anyhow::bail!("KG_TLS_CERT and KG_TLS_KEY go together: set both or neither"),
        }
    }

    /// The server side: `None` when no certificate is configured (plaintext).
    pub fn server(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        let Some(identity) = self.identity()? else {
            if self.client_ca.is_some() {
                anyhow::bail!("KG_TLS_CLIENT_CA (mutual TLS) needs KG_TLS_CERT and KG_TLS_KEY");
            }
            return Ok(None);
        };
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read(
                    "client CA (KG_TLS_CLIENT_CA)",
                    ca,
                )?))
                .client_auth_optional(false);
        }
        Ok(Some(config))
    }

    /// The client side for `https://` peers: trusts `KG_TLS_CA`, presents the service's own
    /// certificate when one is configured. `None` without `KG_TLS_CA`.
    pub fn client(&self) -> anyhow::Result<Option<ClientTlsConfig>> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("CA (KG_TLS_CA)", ca)?));
        if let Some(identity) = self.identity()? {
            config = config.identity(identity);
        }
        Ok(Some(config))
    }

    /// Whether the gRPC port speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert.is_some()
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.cert.is_some() && self.client_ca.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_key_pair_is_a_configuration_error() {
        let files = TlsFiles {
            cert: Some("/nonexistent/cert.pem".into()),
            ..TlsFiles::default()
        };
        assert!(files.server().is_err());
        let files = TlsFiles {
            client_ca: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        assert!(files.server().is_err());
        assert!(TlsFiles::default().server().unwrap().is_none());
        assert!(TlsFiles::default().client().unwrap().is_none());
    }

    #[test]
    fn files_that_are_not_pem_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a certificate").unwrap();
        let files = TlsFiles {
            cert: Some(junk.clone()),
            key: Some(junk.clone()),
            ..TlsFiles::default()
        };
        let err = files.server().unwrap_err().to_string();
        assert!(err.contains("not PEM"), "{err}");
    }
}
