//! The `s3` log destination: osquery log lines written to an S3 bucket (or an S3-compatible
//! store: MinIO, Ceph, Garage) as gzip-compressed JSON-lines objects, through the spool
//! ([`crate::logs::spool`]), with Apache Arrow's `object_store` client doing the signing,
//! the retries and the requests.
//!
//! The spool lingers: its segment stays open for `--s3-flush-interval` (or until it holds
//! `--s3-flush-size`), and each closed segment becomes one object,
//! `PREFIX/YYYY/MM/DD/HH/<node>-<segment>.json.gz`, the hour being the UTC hour the segment's first
//! line was accepted. Segment numbers never repeat (the spool keeps them across restarts) and
//! `<node>` is `--node-name` (or the host name and a random suffix), so no object overwrites
//! another; an upload retried after a lost answer writes the same key again with the same
//! bytes.
//!
//! Credentials come, in this order, from the flags, from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), from the shared credentials file's profile
//! (`AWS_PROFILE`, else `default`, in `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`),
//! and otherwise from the instance, task or web-identity role that `object_store` asks AWS for.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, PutOptions, PutPayload, RetryConfig,
};

use crate::logs::redact_url;
use crate::logs::spool::{BatchId, Delivery, DeliveryError};

#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix, without a trailing `/` (may be empty).
    pub prefix: String,
    pub region: Option<String>,
    /// An S3-compatible store's URL (`http://127.0.0.1:9000`); plain HTTP is allowed for it.
    pub endpoint: Option<String>,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// This node's name, in object keys.
    pub node: String,
    /// How long one upload may take, retries included, before the spool sees a failure.
    pub attempt_timeout: Duration,
}

pub struct S3Delivery {
    settings: S3Settings,
    store: Arc<AmazonS3>,
}

/// `[section]` → key → value, from an AWS shared credentials or config file.
fn ini_sections(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    sections
}

/// The shared files' credentials and region for the profile `AWS_PROFILE` names (`default`).
struct Profile {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    region: Option<String>,
}

fn aws_file(variable: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".aws").join(name)))
}

fn read_profile(credentials: Option<&Path>, config: Option<&Path>, profile: &str) -> Profile {
    let section = |path: Option<&Path>, name: &str| {
        let text = std::fs::read_to_string(path?).ok()?;
        ini_sections(&text).remove(name)
    };
    let keys = section(credentials, profile).unwrap_or_default();
    // The config file names profiles `[profile NAME]`, except `[default]`.
    let config_name = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let config = section(config, &config_name).unwrap_or_default();
    Profile {
        access_key_id: keys.get("aws_access_key_id").cloned(),
        secret_access_key: keys.get("aws_secret_access_key").cloned(),
        session_token: keys.get("aws_session_token").cloned(),
        region: config.get("region").cloned(),
    }
}

impl S3Delivery {
    pub fn new(settings: S3Settings) -> Result<S3Delivery, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
        let profile = read_profile(
            aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials").as_deref(),
            aws_file("AWS_CONFIG_FILE", "config").as_deref(),
            &std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned()),
        );
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err("--s3-access-key-id and --s3-secret-access-key go together".to_owned());
            }
            (None, None) if !env_keys => {
                if let (Some(id), Some(secret)) =
                    (&profile.access_key_id, &profile.secret_access_key)
                {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                    if let Some(token) = &profile.session_token {
                        builder = builder.with_token(token);
                    }
                }
            }
            (None, None) => {}
        }
        let env_region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok();
        if let Some(region) = settings.region.clone().or(env_region).or(profile.region) {
            builder = builder.with_region(region);
        }
        let mut client = ClientOptions::new().with_timeout(settings.attempt_timeout);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
            client = client.with_allow_http(endpoint.starts_with("http://"));
        }
        builder = builder
            .with_virtual_hosted_style_request(!settings.force_path_style)
            .with_client_options(client)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: settings.attempt_timeout,
                ..RetryConfig::default()
            });
        let store = builder
            .build()
            .map_err(|e| format!("S3 bucket {:?}: {e}", settings.bucket))?;
        Ok(S3Delivery {
            settings,
            store: Arc::new(store),
        })
    }

    /// The object a batch becomes.
    fn key(&self, batch: BatchId) -> object_store::path::Path {
        let hour: DateTime<Utc> = batch.opened.into();
        let mut key = String::new();
        if !self.settings.prefix.is_empty() {
            key.push_str(&self.settings.prefix);
            key.push('/');
        }
        key.push_str(&hour.format("%Y/%m/%d/%H/").to_string());
        key.push_str(&format!("{}-{:012}", self.settings.node, batch.segment));
        if batch.index > 0 {
            key.push_str(&format!("-{}", batch.index));
        }
        key.push_str(".json.gz");
        object_store::path::Path::from(key)
    }
}

/// The lines as one gzip member of JSON lines.
fn gzip_lines(lines: &[Vec<u8>]) -> std::io::Result<Vec<u8>> {
    let size: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(size / 4), flate2::Compression::new(6));
    for line in lines {
        encoder.write_all(line)?;
        encoder.write_all(b"\n")?;
    }
    encoder.finish()
}

#[async_trait]
impl Delivery for S3Delivery {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn describe(&self) -> String {
        let place = format!("s3://{}/{}", self.settings.bucket, self.settings.prefix);
        match &self.settings.endpoint {
            Some(endpoint) => format!("{place} at {}", redact_url(endpoint)),
            None => place,
        }
    }

    async fn check(&self) -> Result<(), String> {
        let prefix = object_store::path::Path::from(self.settings.prefix.as_str());
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn deliver(&self, lines: &[&[u8]], batch: BatchId) -> Result<(), DeliveryError> {
        let owned: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        let body = tokio::task::spawn_blocking(move || gzip_lines(&owned))
            .await
            .map_err(|e| DeliveryError::Retry(e.to_string()))?
            .map_err(|e| DeliveryError::Retry(format!("compressing: {e}")))?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "application/gzip".into());
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.key(batch), PutPayload::from(body), options)
            .await
            .map(|_| ())
            .map_err(|e| DeliveryError::Retry(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_from_the_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = d\n\n\
             # a comment\n[logs]\naws_access_key_id=AKLOGS\naws_secret_access_key=l\naws_session_token=t\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = us-east-2\n[profile logs]\nregion = eu-west-1\n",
        )
        .unwrap();
        let logs = read_profile(Some(&credentials), Some(&config), "logs");
        assert_eq!(logs.access_key_id.as_deref(), Some("AKLOGS"));
        assert_eq!(logs.secret_access_key.as_deref(), Some("l"));
        assert_eq!(logs.session_token.as_deref(), Some("t"));
        assert_eq!(logs.region.as_deref(), Some("eu-west-1"));
        let default = read_profile(Some(&credentials), Some(&config), "default");
        assert_eq!(default.access_key_id.as_deref(), Some("AKDEFAULT"));
        assert_eq!(default.region.as_deref(), Some("us-east-2"));
        let missing = read_profile(Some(&dir.path().join("none")), None, "default");
        assert!(missing.access_key_id.is_none() && missing.region.is_none());
    }

    #[test]
    fn keys_name_the_hour_the_node_and_the_segment() {
        let delivery = S3Delivery::new(S3Settings {
            bucket: "logs".into(),
            prefix: "osquery/result".into(),
            region: Some("us-east-1".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            node: "node-a".into(),
            attempt_timeout: Duration::from_secs(1),
            ..S3Settings::default()
        })
        .unwrap();
        let opened = std::time::UNIX_EPOCH + Duration::from_secs(1_785_837_600 + 3_599);
        let batch = BatchId {
            segment: 42,
            index: 0,
            opened,
        };
        assert_eq!(
            delivery.key(batch).as_ref(),
            "osquery/result/2026/08/04/10/node-a-000000000042.json.gz"
        );
        assert_eq!(
            delivery.key(BatchId { index: 2, ..batch }).as_ref(),
            "osquery/result/2026/08/04/10/node-a-000000000042-2.json.gz"
        );
        assert!(!delivery.describe().contains("secret"));
    }

    #[test]
    fn objects_are_gzip_json_lines() {
        let body = gzip_lines(&[br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec()]).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
    }
}
