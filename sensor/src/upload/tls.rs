//! The client side of mutual TLS: which servers we trust and who we are.
//!
//! rustls with the `ring` provider (it cross-compiles for the ARM gateways without a C
//! toolchain for aws-lc), TLS 1.2 and 1.3 only, server certificate and host name always
//! verified. There is deliberately no switch to turn verification off: a sensor that uploads to
//! whoever answers would hand the plant's network map to anyone on the mobile network.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS file that cannot be used; names the config key and the file.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {path}: {message}")]
pub struct TlsSetupError {
    pub key: &'static str,
    pub path: PathBuf,
    pub message: String,
}

fn setup_err(key: &'static str, path: &Path, message: impl ToString) -> TlsSetupError {
    TlsSetupError {
        key,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Every certificate in a PEM file (other PEM sections, such as a key, are skipped).
fn pem_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| setup_err(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup_err(key, path, e))?;
    if certs.is_empty() {
        return Err(setup_err(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The rustls client configuration for the upload: `ca_file` (PEM, one or more CAs) or the
/// Mozilla roots when unset; the client chain from `client_cert` and its key from `client_key`
/// or, when that is unset, from `client_cert` itself (one combined PEM, as the reference
/// product ships it). No client certificate at all is allowed here; the server decides.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in pem_certs("upload.ca_file", path)? {
                roots
                    .add(cert)
                    .map_err(|e| setup_err("upload.ca_file", path, e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| setup_err("upload", Path::new("-"), e))?
        .with_root_certificates(roots);
    let Some(cert_path) = client_cert else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = pem_certs("upload.client_cert", cert_path)?;
    let (key_name, key_path) = match client_key {
        Some(p) => ("upload.client_key", p),
        None => ("upload.client_cert", cert_path),
    };
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        setup_err(
            key_name,
            key_path,
            format!(
                "no usable private key ({e}); set upload.client_key if it is in a file of its own"
            ),
        )
    })?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| setup_err(key_name, key_path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_and_named() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("missing.pem");
        let e = client_config(Some(&missing), None, None).unwrap_err();
        assert_eq!(e.key, "upload.ca_file");
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let garbage = t.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem at all\n").unwrap();
        let e = client_config(Some(&garbage), None, None).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");

        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let ca_pem = t.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
        client_config(Some(&ca_pem), None, None).unwrap();
        client_config(None, None, None).unwrap();

        // A certificate without its key: the combined-file reading finds no key and says so.
        let e = client_config(Some(&ca_pem), Some(&ca_pem), None).unwrap_err();
        assert_eq!(e.key, "upload.client_cert");
        assert!(e.message.contains("upload.client_key"), "{e}");

        // Combined file and separate files both work.
        let combined = t.path().join("client.pem");
        std::fs::write(
            &combined,
            format!("{}{}", ca.cert.pem(), ca.key_pair.serialize_pem()),
        )
        .unwrap();
        client_config(Some(&ca_pem), Some(&combined), None).unwrap();
        let key = t.path().join("client.key");
        std::fs::write(&key, ca.key_pair.serialize_pem()).unwrap();
        client_config(Some(&ca_pem), Some(&ca_pem), Some(&key)).unwrap();
    }
}
