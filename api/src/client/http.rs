//! `Api`: one server's admin REST API as the command line uses it — TLS set up from the
//! context (a CA file, the system's roots, or no check at all), the bearer token, and Fleet's
//! JSON errors turned into one readable line.

use std::path::Path;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use super::config::Context;

/// What went wrong talking to the server, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer at all: refused, unresolvable, timed out, or the TLS handshake failed.
    #[error("cannot reach the server at {address}: {reason}{hint}")]
    Unreachable {
        address: String,
        reason: String,
        hint: &'static str,
    },
    /// The server answered with an error; `message` is its own, in one line.
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    /// The server answered 2xx with something that is not the JSON expected.
    #[error("unexpected answer from {url}: {reason}")]
    Unexpected { url: String, reason: String },
}

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How to check the server's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The operating system's roots (the default).
    System,
    /// Only the CA certificates in this PEM file (e.g. `flotilla-data/tls/ca.pem`).
    CaFile(std::path::PathBuf),
    /// Any certificate: development only.
    Insecure,
}

impl Trust {
    pub fn of(context: &Context) -> Trust {
        if context.tls_skip_verify {
            Trust::Insecure
        } else if !context.rootca.is_empty() {
            Trust::CaFile(context.rootca.clone().into())
        } else {
            Trust::System
        }
    }

    /// A rustls client configuration for this trust, without ALPN (the caller adds it).
    pub fn rustls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        install_crypto_provider();
        let config = match self {
            Trust::System => {
                use rustls_platform_verifier::ConfigVerifierExt;
                rustls::ClientConfig::with_platform_verifier()
                    .map_err(|e| anyhow::anyhow!("loading the system's root certificates: {e}"))?
            }
            Trust::CaFile(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_pem_certificates(path)? {
                    roots.add(cert).map_err(|e| {
                        anyhow::anyhow!("{} holds an unusable certificate: {e}", path.display())
                    })?;
                }
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth()
            }
            Trust::Insecure => rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                    rustls::crypto::ring::default_provider(),
                )))
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

/// The process-wide TLS provider: ring, as everywhere in Flotilla.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read_pem_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("reading the CA file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// `--insecure`: checks signatures (so the handshake is well-formed) but not who signed.
#[derive(Debug)]
struct AcceptAnyCertificate(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for AcceptAnyCertificate {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The admin API of one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `https://host:port`, without a trailing slash.
    address: String,
    token: Option<String>,
    trust: Trust,
}

/// The API prefix every admin call goes under.
pub const PREFIX: &str = "/api/latest/fleet";

impl Api {
    pub fn new(address: &str, trust: Trust, token: Option<String>) -> anyhow::Result<Api> {
        let address = normalise_address(address)?;
        let mut tls = trust.rustls_config()?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| anyhow::anyhow!("setting up the HTTP client: {e}"))?;
        Ok(Api {
            http,
            address,
            token,
            trust,
        })
    }

    /// The API of the server a context names, with its session.
    pub fn for_context(context: &Context) -> anyhow::Result<Api> {
        let token = (!context.token.is_empty()).then(|| context.token.clone());
        Api::new(&context.address, Trust::of(context), token)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A call under `/api/latest/fleet` (or a full path when `path` starts with `/api/`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = if path.starts_with("/api/") {
            format!("{}{path}", self.address)
        } else {
            format!("{}{PREFIX}{path}", self.address)
        };
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status,
                message: error_message(status, &text),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Unexpected {
            url,
            reason: format!("not JSON ({e})"),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ApiError> {
        self.call(Method::DELETE, path, None).await
    }

    /// Every item of a paged list endpoint (`page`, `per_page`), gathered.
    pub async fn get_all(&self, path: &str, key: &str) -> Result<Vec<Value>, ApiError> {
        const PER_PAGE: usize = 500;
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 0.. {
            let body = self
                .get(&format!("{path}{separator}page={page}&per_page={PER_PAGE}"))
                .await?;
            let items = match body.get(key) {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(_) => {
                    return Err(ApiError::Unexpected {
                        url: path.into(),
                        reason: format!("`{key}` is not a list"),
                    });
                }
            };
            let last = items.len() < PER_PAGE;
            all.extend(items);
            if last {
                break;
            }
        }
        Ok(all)
    }

    fn unreachable(&self, error: &reqwest::Error) -> ApiError {
        let reason = root_cause(error);
        let hint = if reason.contains("certificate") || reason.contains("UnknownIssuer") {
            " (pass --ca PATH with the server's CA, e.g. flotilla-data/tls/ca.pem, to trust it)"
        } else {
            ""
        };
        ApiError::Unreachable {
            address: self.address.clone(),
            reason,
            hint,
        }
    }
}

/// The innermost cause of an error, which is the one that says what happened
/// ("Connection refused", "invalid peer certificate: UnknownIssuer").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    let text = current.to_string();
    // io errors carry "(os error 111)"; the words are enough.
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// `text` as one URL path segment (`All Hosts` → `All%20Hosts`, `/` escaped).
pub fn path_segment(text: &str) -> String {
    let mut url = reqwest::Url::parse("https://x/").expect("a valid base");
    url.path_segments_mut()
        .expect("a base URL")
        .push(text.trim());
    url.path().trim_start_matches('/').to_owned()
}

/// `text` as a query-string value (`a b&c` → `a+b%26c`).
pub fn query_value(text: &str) -> String {
    let mut url = reqwest::Url::parse("https://x/").expect("a valid base");
    url.query_pairs_mut().append_pair("v", text);
    url.query().unwrap_or_default()[2..].to_owned()
}

/// `https://host:port` checked and without a trailing slash; `host:port` gets `https://`.
pub fn normalise_address(address: &str) -> anyhow::Result<String> {
    let address = address.trim();
    let address = if address.contains("://") {
        address.to_owned()
    } else {
        format!("https://{address}")
    };
    let url = reqwest::Url::parse(&address)
        .map_err(|e| anyhow::anyhow!("`{address}` is not a server address: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        anyhow::bail!("`{address}` is not a server address like https://HOST:PORT");
    }
    Ok(address.trim_end_matches('/').to_owned())
}

/// Fleet's error body as one line: `message`, then each `errors[].reason` that adds to it
/// (with the field name when it is not `base`).
pub fn error_message(status: StatusCode, body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        return if text.is_empty() || text.len() > 200 || text.contains('\n') {
            format!("the server answered {status}")
        } else {
            format!("{text} ({status})")
        };
    };
    // osquery-style errors are {"error": "…"}.
    let message = json["message"]
        .as_str()
        .or_else(|| json["error"].as_str())
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut parts: Vec<String> = Vec::new();
    if !message.is_empty() {
        parts.push(message.clone());
    }
    if let Some(errors) = json["errors"].as_array() {
        for error in errors {
            let reason = error["reason"].as_str().unwrap_or_default().trim();
            if reason.is_empty() || reason == message {
                continue;
            }
            match error["name"].as_str() {
                Some(name) if !name.is_empty() && name != "base" => {
                    parts.push(format!("{name}: {reason}"))
                }
                _ => parts.push(reason.to_owned()),
            }
        }
    }
    if parts.is_empty() {
        return format!("the server answered {status}");
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_errors_become_one_line() {
        let body = r#"{"message":"Validation Failed","errors":[{"name":"password","reason":"must be 12 characters"}],"uuid":"x"}"#;
        assert_eq!(
            error_message(StatusCode::UNPROCESSABLE_ENTITY, body),
            "Validation Failed: password: must be 12 characters"
        );
        let body = r#"{"message":"Authentication failed","errors":[{"name":"base","reason":"Authentication failed"}]}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, body),
            "Authentication failed"
        );
        let body =
            r#"{"message":"Bad request","errors":[{"name":"base","reason":"no hosts targeted"}]}"#;
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, body),
            "Bad request: no hosts targeted"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, "<html>\n</html>"),
            "the server answered 502 Bad Gateway"
        );
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, r#"{"error":"no such thing"}"#),
            "no such thing"
        );
    }

    #[test]
    fn text_is_escaped_for_paths_and_query_strings() {
        assert_eq!(path_segment("web 1/a"), "web%201%2Fa");
        assert_eq!(path_segment("All Hosts"), "All%20Hosts");
        assert_eq!(query_value("a b&c"), "a+b%26c");
    }

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(
            normalise_address("https://localhost:8080/").unwrap(),
            "https://localhost:8080"
        );
        assert_eq!(
            normalise_address("fleet.example:8080").unwrap(),
            "https://fleet.example:8080"
        );
        assert!(normalise_address("ftp://x").is_err());
        assert!(normalise_address("https://").is_err());
    }
}
