//! Reading osquery request bodies: size limits (also after gzip), gzip, JSON, and the node key
//! from the body or the `Authorization: NodeKey` header.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use flate2::read::GzDecoder;
use serde::Deserialize;

use super::error::OsqueryError;
use crate::request_body::{BodyError, read_limited};

/// At most this many bodies are inflated at once (each may grow to its endpoint's limit, 64 MiB
/// for logs): a burst of gzip bombs waits its turn instead of taking the memory all at once.
fn inflating() -> &'static tokio::sync::Semaphore {
    static INFLATING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    INFLATING.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores * 2)
    })
}

/// When the request carries `Authorization: NodeKey` (osquery 5.23+ sends it), refuses an
/// unknown key before the body is read or inflated, so a stranger's body costs nothing.
pub async fn check_header_key(
    hosts: &flotilla_engine::Hosts,
    headers: &HeaderMap,
) -> Result<(), OsqueryError> {
    if let Ok(key) = node_key(None, headers) {
        hosts.knows_key(key, flotilla_engine::unix_now()).await?;
    }
    Ok(())
}

/// Inflates a gzip body, refusing it once it grows past `limit`.
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, OsqueryError> {
    let mut inflated = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    GzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| OsqueryError::BadRequest(format!("invalid gzip body: {e}")))?;
    if inflated.len() > limit {
        return Err(OsqueryError::TooLarge(format!(
            "request body exceeds the limit of {limit} bytes"
        )));
    }
    Ok(inflated)
}

/// Reads the whole body, refusing more than `limit` bytes, and inflates it if it came with
/// `Content-Encoding: gzip` (osquery's `--logger_tls_compress`). The inflated size is held to the
/// same limit, so a small compressed body cannot expand without bound. Bytes that are not UTF-8
/// are replaced (see [`valid_utf8`]).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, OsqueryError> {
    let collected = read_limited(headers, body, limit)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => {
                OsqueryError::TooLarge(format!("request body exceeds the limit of {limit} bytes"))
            }
            BodyError::Failed(e) => OsqueryError::BadRequest(format!("reading request body: {e}")),
        })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(valid_utf8(collected)),
        Some("gzip") | Some("x-gzip") => {
            // Inflating is CPU work of unknown size: off the async workers, a few at a time.
            let _permit = inflating()
                .acquire()
                .await
                .map_err(|e| OsqueryError::BadRequest(e.to_string()))?;
            let inflated = tokio::task::spawn_blocking(move || inflate(&collected, limit))
                .await
                .map_err(|e| OsqueryError::BadRequest(format!("inflating the body: {e}")))??;
            Ok(valid_utf8(Bytes::from(inflated)))
        }
        Some(other) => Err(OsqueryError::BadRequest(format!(
            "unsupported content encoding: {other}"
        ))),
    }
}

/// Bodies that were not valid UTF-8 and were read with U+FFFD in place of the bad bytes.
pub static INVALID_UTF8_BODIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The body as valid UTF-8: osquery passes through whatever bytes a table returned (a file
/// name, a registry value), and refusing the body would make it resend the same batch
/// forever. A bad byte becomes U+FFFD, the rest is kept, and the body is counted.
pub fn valid_utf8(body: Bytes) -> Bytes {
    if std::str::from_utf8(&body).is_ok() {
        return body;
    }
    INVALID_UTF8_BODIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Bytes::from(String::from_utf8_lossy(&body).into_owned())
}

/// Parses JSON, turning serde's message into osquery's error form.
pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, OsqueryError> {
    serde_json::from_slice(bytes)
        .map_err(|e| OsqueryError::BadRequest(format!("invalid JSON body: {e}")))
}

/// The node key: the body's `node_key` if present and non-empty, else the header osquery 5.23+
/// also sends (`Authorization: NodeKey <key>`).
pub fn node_key<'a>(
    body_key: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Result<&'a str, OsqueryError> {
    if let Some(key) = body_key.filter(|k| !k.is_empty()) {
        return Ok(key);
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("NodeKey").then(|| key.trim())
        })
        .filter(|k| !k.is_empty())
        .ok_or_else(|| OsqueryError::NodeInvalid("authentication error: missing node key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn gzip_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn gzip_bodies_are_inflated() {
        let body = read_body(&gzip_headers(), Body::from(gzip(b"{\"a\":1}")), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn inflated_size_is_limited_too() {
        let bomb = gzip(&vec![b' '; 100_000]);
        assert!(bomb.len() < 1024);
        let error = read_body(&gzip_headers(), Body::from(bomb), 1024)
            .await
            .unwrap_err();
        assert!(matches!(error, OsqueryError::TooLarge(_)));
    }

    #[tokio::test]
    async fn raw_size_is_limited() {
        let error = read_body(&HeaderMap::new(), Body::from(vec![b'x'; 2000]), 1024)
            .await
            .unwrap_err();
        assert!(matches!(error, OsqueryError::TooLarge(_)));
    }

    #[test]
    fn node_key_from_body_or_header() {
        let mut headers = HeaderMap::new();
        assert!(node_key(None, &headers).is_err());
        assert!(node_key(Some(""), &headers).is_err());
        headers.insert(header::AUTHORIZATION, "NodeKey abc".parse().unwrap());
        assert_eq!(node_key(None, &headers).unwrap(), "abc");
        assert_eq!(node_key(Some("body"), &headers).unwrap(), "body");
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(node_key(None, &headers).is_err());
    }
}
