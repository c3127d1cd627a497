//! `/tuf/…`: the published repository as static files, the way go-tuf's and python-tuf's
//! HTTP clients fetch it. Only the five metadata names, `N.root.json` and files under
//! `targets/` are served; anything else (keys, staging files, directories, `..`) is a plain
//! 404, which is also what a client probing for the next `N.root.json` must get.
//!
//! Caching: metadata and channel paths (`…/stable/…`) change in place with consistent
//! snapshots off, so they are `no-cache` (revalidated with the ETag); `N.root.json` and
//! version paths (`…/1.38.2/…`) never change and are cached for a year.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::UpdateServer;

const METADATA: [&str; 4] = [
    "root.json",
    "targets.json",
    "snapshot.json",
    "timestamp.json",
];
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The `/tuf/` routes, over whatever state the router they join carries.
pub fn router<S: Clone + Send + Sync + 'static>(server: Arc<UpdateServer>) -> Router<S> {
    Router::new()
        .route("/tuf/{*path}", axum::routing::get(file))
        .with_state(server)
}

/// What a request path names: a metadata file, a versioned root, or a target.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    Metadata,
    VersionedRoot,
    Target(String),
}

fn classify(path: &str) -> Option<Served> {
    let parts: Vec<&str> = path.split('/').collect();
    // No empty, dot or hidden components (staged files start with a dot), no backslashes.
    if parts
        .iter()
        .any(|p| p.is_empty() || p.starts_with('.') || p.contains('\\'))
    {
        return None;
    }
    match parts.as_slice() {
        [name] if METADATA.contains(name) => Some(Served::Metadata),
        [name] => {
            let version = name.strip_suffix(".root.json")?;
            (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()))
                .then_some(Served::VersionedRoot)
        }
        ["targets", rest @ ..] if !rest.is_empty() => Some(Served::Target(rest.join("/"))),
        _ => None,
    }
}

async fn file(
    State(server): State<Arc<UpdateServer>>,
    Path(path): Path<String>,
    request: Request<Body>,
) -> Response {
    let Some(served) = classify(&path) else {
        return not_found();
    };
    let file = server.published_dir().join(&path);
    let Ok(meta) = tokio::fs::metadata(&file).await else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = format!("\"{:x}-{:x}\"", meta.len(), modified.as_nanos());
    let cache = match &served {
        Served::Metadata => REVALIDATE,
        Served::VersionedRoot => IMMUTABLE,
        Served::Target(target) if server.is_version_path(target) => IMMUTABLE,
        Served::Target(_) => REVALIDATE,
    };
    if matches_etag(request.headers(), &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_caching(response.headers_mut(), &etag, cache);
        return response;
    }
    let mut response = match ServeFile::new(&file).oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND {
        return not_found();
    }
    set_caching(response.headers_mut(), &etag, cache);
    if matches!(served, Served::Metadata | Served::VersionedRoot) {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

fn set_caching(headers: &mut HeaderMap, etag: &str, cache: &'static str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metadata_roots_and_targets_are_served() {
        assert_eq!(classify("timestamp.json"), Some(Served::Metadata));
        assert_eq!(classify("3.root.json"), Some(Served::VersionedRoot));
        assert_eq!(
            classify("targets/orbit/linux/stable/orbit"),
            Some(Served::Target("orbit/linux/stable/orbit".into()))
        );
        for refused in [
            "",
            "targets",
            "targets/",
            "../keys/root.json",
            "targets/../../keys/root.json",
            "targets/orbit/./x",
            "targets/orbit/.staged-abc",
            "x.root.json",
            ".root.json",
            "keys/root.json",
            "targets//orbit",
            "targets\\..\\x",
            "mirrors.json",
        ] {
            assert_eq!(classify(refused), None, "{refused}");
        }
    }
}
