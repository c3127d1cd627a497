//! Reading a request body under a size limit, and refusing one over it without cutting the
//! connection under a client that is still sending.
//!
//! A server that answers 413 and closes an HTTP/1.1 connection while the client is still
//! writing makes the kernel reset it, and a reset throws away the answer the client had not read
//! yet: the client sees "connection reset", not 413, and may retry the same body forever. So an
//! oversized body is read to its end and thrown away (up to [`DRAIN_BYTES`] and [`DRAIN_TIME`],
//! as web servers' "lingering close" does) before the refusal is sent. A body larger than that
//! is refused at once; its sender is already far outside what any client of this server sends.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

/// The most of an oversized body that is read and discarded so that its refusal arrives.
pub const DRAIN_BYTES: usize = 16 << 20;

/// The longest an oversized body is read for before its refusal is sent anyway.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit was declared or sent.
    TooLarge,
    /// The connection failed or the client stopped mid-body.
    Failed(axum::Error),
}

/// The body's bytes, or [`BodyError::TooLarge`] once more than `limit` are declared
/// (`Content-Length`) or sent.
pub async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        if length <= DRAIN_BYTES as u64 {
            drain(body).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Failed)?.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
            drain(body).await;
            return Err(BodyError::TooLarge);
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut joined = Vec::with_capacity(total);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            Bytes::from(joined)
        }
    })
}

/// Reads and discards what is left of `body`, up to [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut discarded = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                discarded += data.len();
                if discarded > DRAIN_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn stream(chunks: Vec<&'static [u8]>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c)));
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_in_several_chunks_is_joined() {
        let body = read_limited(&HeaderMap::new(), stream(vec![b"ab", b"cd", b"e"]), 5)
            .await
            .unwrap();
        assert_eq!(&body[..], b"abcde");
    }

    #[tokio::test]
    async fn one_byte_over_the_limit_is_too_large() {
        let error = read_limited(&HeaderMap::new(), stream(vec![b"abc", b"def"]), 5)
            .await
            .unwrap_err();
        assert!(matches!(error, BodyError::TooLarge));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_and_the_body_read_out() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "6".parse().unwrap());
        let (sender, mut drained) = tokio::sync::mpsc::channel::<()>(1);
        let frames =
            futures_util::stream::iter([b"abc".as_slice(), b"def".as_slice()]).map(move |c| {
                let _ = sender.try_send(());
                Ok::<_, std::io::Error>(Bytes::from_static(c))
            });
        let error = read_limited(&headers, Body::from_stream(frames), 5)
            .await
            .unwrap_err();
        assert!(matches!(error, BodyError::TooLarge));
        assert!(
            drained.try_recv().is_ok(),
            "the body was read before refusing"
        );
    }
}
