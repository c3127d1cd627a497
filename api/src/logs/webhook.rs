//! The `webhook` log destination: batches of lines POSTed as JSON arrays to an HTTP receiver,
//! through the spool ([`crate::logs::spool`]). Any 2xx answer accepts a batch; anything else, or no
//! answer within the timeout, is retried.

use std::io;
use std::time::Duration;

use async_trait::async_trait;

use crate::logs::redact_url;
use crate::logs::spool::{BatchId, Delivery, DeliveryError};

pub struct WebhookDelivery {
    url: String,
    client: reqwest::Client,
}

impl WebhookDelivery {
    pub fn new(url: String, timeout: Duration) -> io::Result<WebhookDelivery> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(io::Error::other)?;
        Ok(WebhookDelivery { url, client })
    }
}

/// `[line,line,…]`: the lines are JSON documents already.
fn json_array(lines: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(line);
    }
    body.push(b']');
    body
}

#[async_trait]
impl Delivery for WebhookDelivery {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn describe(&self) -> String {
        redact_url(&self.url)
    }

    async fn deliver(&self, lines: &[&[u8]], _batch: BatchId) -> Result<(), DeliveryError> {
        let result = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(json_array(lines))
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(DeliveryError::Retry(format!(
                "the receiver answered {}",
                response.status()
            ))),
            // reqwest's message names the URL, secrets and all: leave it out (describe() says
            // where, redacted).
            Err(error) => Err(DeliveryError::Retry(error.without_url().to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_one_json_array() {
        let body = json_array(&[br#"{"a":1}"#, br#"{"b":[2]}"#]);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value, serde_json::json!([{"a": 1}, {"b": [2]}]));
        assert_eq!(json_array(&[]), b"[]");
    }
}
