//! TLS for the listener: the certificate a user gave, or a development CA and server
//! certificate generated into `<data-dir>/tls/` on first start and reused after.
//!
//! The CA key is kept (mode 0600) so that a later start with new `--tls-san` names can issue a
//! new server certificate from the same CA, and agents pinned to `ca.pem` keep working.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of the generated development PKI.
#[derive(Clone, Debug)]
pub struct DevPki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// One name per line: the SANs the current server certificate was issued for.
    pub server_sans: PathBuf,
}

impl DevPki {
    pub fn in_dir(data_dir: &Path) -> DevPki {
        let dir = data_dir.join("tls");
        DevPki {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            server_sans: dir.join("server.sans"),
        }
    }

    /// Creates the CA and server certificate if missing, or a new server certificate if the
    /// requested names are not all covered by the current one. Returns true if anything was
    /// written.
    pub fn ensure(&self, sans: &[String]) -> Result<bool> {
        let dir = self.ca_cert.parent().expect("tls dir");
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut wrote = false;
        if !self.ca_cert.exists() || !self.ca_key.exists() {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let cert = ca_params().self_signed(&key)?;
            write_file(&self.ca_cert, cert.pem().as_bytes(), false)?;
            write_file(&self.ca_key, key.serialize_pem().as_bytes(), true)?;
            // A new CA invalidates any server certificate issued by an old one.
            let _ = fs::remove_file(&self.server_sans);
            wrote = true;
        }
        let covered: Vec<String> = fs::read_to_string(&self.server_sans)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let all_covered = sans.iter().all(|s| covered.contains(s));
        if !all_covered || !self.server_cert.exists() || !self.server_key.exists() {
            let ca_key = KeyPair::from_pem(&fs::read_to_string(&self.ca_key)?)
                .context("reading the development CA key")?;
            let issuer = Issuer::new(ca_params(), ca_key);
            let mut names: Vec<String> = covered;
            for san in sans {
                if !names.contains(san) {
                    names.push(san.clone());
                }
            }
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let cert = server_params(&names)?.signed_by(&key, &issuer)?;
            write_file(&self.server_cert, cert.pem().as_bytes(), false)?;
            write_file(&self.server_key, key.serialize_pem().as_bytes(), true)?;
            write_file(&self.server_sans, names.join("\n").as_bytes(), false)?;
            wrote = true;
        }
        Ok(wrote)
    }
}

/// The CA's parameters; deterministic, so the stored CA key can issue again after a restart.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Flotilla");
    dn.push(DnType::CommonName, "Flotilla development CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    params
}

fn server_params(names: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Flotilla");
    dn.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    Ok(params)
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

/// The names a development certificate covers by default, plus the user's extra ones.
pub fn default_sans(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = hostname::get()
        && let Some(host) = host.to_str()
        && !host.is_empty()
    {
        names.push(host.to_owned());
    }
    for name in extra {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        // Normalise IP literals so "::0001" and "::1" are one name.
        let name = name
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| name.to_owned());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A rustls server configuration from PEM files, offering HTTP/2 and HTTP/1.1.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading a private key from {}", key_path.display()))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Handshakes whose ClientHello named the server by an IP address or an invalid name (wrk and
/// agents configured with an address do). rustls ignores such a name and warns once per
/// connection; [`IllegalSniCounter`] counts the warnings, and the log shows them only at debug,
/// so a fleet of such clients cannot flood the log.
pub static ILLEGAL_SNI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where rustls reports a server name it ignores.
pub const SNI_WARNING_TARGET: &str = "rustls::msgs::handshake";

/// A log layer that counts rustls's "Illegal SNI" warnings in [`ILLEGAL_SNI`].
pub struct IllegalSniCounter;

impl IllegalSniCounter {
    /// Only rustls's handshake warnings reach this layer.
    pub fn wants(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == SNI_WARNING_TARGET && *metadata.level() == tracing::Level::WARN
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for IllegalSniCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}").contains("SNI");
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            ILLEGAL_SNI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_extended_for_new_names() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::in_dir(dir.path());
        let names = default_sans(&[]);
        assert!(pki.ensure(&names).unwrap());
        let ca = fs::read(&pki.ca_cert).unwrap();
        assert!(
            !pki.ensure(&names).unwrap(),
            "second start reuses everything"
        );
        let more = default_sans(&["flotilla.example".into()]);
        assert!(pki.ensure(&more).unwrap());
        assert_eq!(
            fs::read(&pki.ca_cert).unwrap(),
            ca,
            "the CA survives a new SAN"
        );
        let sans = fs::read_to_string(&pki.server_sans).unwrap();
        assert!(sans.lines().any(|l| l == "flotilla.example"));
        assert!(sans.lines().any(|l| l == "127.0.0.1"));
        server_config(&pki.server_cert, &pki.server_key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&pki.ca_key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the CA key is private");
        }
    }
}
