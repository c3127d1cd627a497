//! A tiny plain-HTTP/1.1 keep-alive server for round-trip tests (no framework).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    /// Decoded (gunzipped if needed) JSON body, `Null` if it did not parse.
    pub body: Value,
    /// Index of the TCP connection it arrived on.
    pub conn: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Recorded) -> (u16, String) + Send + Sync;

pub struct TestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(
        handler: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, conns) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let conn = conns.fetch_add(1, Ordering::SeqCst);
                let (reqs, handler) = (reqs.clone(), handler.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, conn, reqs, handler).await;
                });
            }
        });
        TestServer {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    conn: usize,
    reqs: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Handler>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0; len];
        r.read_exact(&mut raw).await?;
        if headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v == "gzip")
        {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
            raw = out;
        }
        let rec = Recorded {
            path,
            headers,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            conn,
        };
        reqs.lock().unwrap().push(rec.clone());
        let (status, body) = handler(&rec);
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        w.write_all(resp.as_bytes()).await?;
    }
}

/// A TLS (rustls, ring) variant on plain threads, serving the test certificate for
/// `localhost` / `127.0.0.1` signed by `testdata/ca.pem`. Handles keep-alive; never stops.
pub struct TlsTestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub const TEST_CA_PEM: &[u8] = include_bytes!("testdata/ca.pem");
pub const OTHER_CA_PEM: &[u8] = include_bytes!("testdata/other-ca.pem");
const SERVER_CERT_PEM: &[u8] = include_bytes!("testdata/server.pem");
const SERVER_KEY_PEM: &[u8] = include_bytes!("testdata/server-key.pem");

impl TlsTestServer {
    pub fn start(
        handler: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> TlsTestServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        crate::install_crypto_provider();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(SERVER_CERT_PEM)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM).unwrap();
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for (conn, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let (cfg, reqs, handler) = (cfg.clone(), reqs.clone(), handler.clone());
                std::thread::spawn(move || {
                    let Ok(tls) = rustls::ServerConnection::new(cfg) else {
                        return;
                    };
                    let stream = rustls::StreamOwned::new(tls, stream);
                    let _ = serve_blocking(stream, conn, &reqs, &*handler);
                });
            }
        });
        TlsTestServer { addr, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_blocking<S: std::io::Read + std::io::Write>(
    stream: S,
    conn: usize,
    reqs: &Mutex<Vec<Recorded>>,
    handler: &Handler,
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut r = std::io::BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0; len];
        r.read_exact(&mut raw)?;
        let rec = Recorded {
            path,
            headers,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            conn,
        };
        reqs.lock().unwrap().push(rec.clone());
        let (status, body) = handler(&rec);
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let w = r.get_mut();
        w.write_all(resp.as_bytes())?;
        w.flush()?;
    }
}
