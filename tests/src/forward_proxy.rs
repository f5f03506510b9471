//! An HTTP forward proxy for tests of outbound proxying: takes absolute-form requests
//! (`POST http://host/path`), sends them on, and counts what it forwarded and which
//! `Proxy-Authorization` it was given. Plain HTTP upstreams only (no CONNECT), which is what the
//! mock upstreams speak.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

#[derive(Default)]
pub struct ProxyState {
    forwarded: AtomicU64,
    auth: Mutex<Vec<Option<String>>>,
}

/// A running proxy; stops when dropped.
pub struct ForwardProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ForwardProxy {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState::default());
        let app = axum::Router::new().fallback(forward).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:port`, with `user:pass@` when given.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Requests forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// The `Proxy-Authorization` header of each forwarded request.
    pub fn auth_headers(&self) -> Vec<Option<String>> {
        self.state.auth.lock().clone()
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.uri.scheme().is_none() {
        return (StatusCode::BAD_REQUEST, "absolute-form requests only").into_response();
    }
    let auth = parts.headers.get("proxy-authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    state.auth.lock().push(auth);
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let client = reqwest::Client::new();
    let mut rb = client.request(parts.method.clone(), parts.uri.to_string()).body(bytes);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "proxy-authorization" | "proxy-connection" | "host" | "connection" | "content-length"
        ) {
            rb = rb.header(name, value);
        }
    }
    match rb.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let body = r.bytes().await.unwrap_or_default();
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status;
            for (name, value) in &headers {
                if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
                    resp.headers_mut().insert(name, value.clone());
                }
            }
            resp
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "upstream unreachable").into_response(),
    }
}

/// A SOCKS5 proxy (RFC 1928, CONNECT only, with optional RFC 1929 user/password) for tests:
/// counts the connections it relayed and whether each authenticated.
pub struct Socks5Proxy {
    addr: SocketAddr,
    relayed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Socks5Proxy {
    /// With `credentials`, only clients giving them are served.
    pub async fn start(credentials: Option<(&str, &str)>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let relayed = Arc::new(AtomicU64::new(0));
        let creds = credentials.map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec()));
        let counter = relayed.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (creds, counter) = (creds.clone(), counter.clone());
                tokio::spawn(async move {
                    if let Ok(mut upstream) = handshake(conn, creds.as_ref()).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = tokio::io::copy_bidirectional(&mut upstream.0, &mut upstream.1).await;
                    }
                });
            }
        });
        Ok(Self { addr, relayed, task })
    }

    /// `socks5://[user:pass@]127.0.0.1:port`.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("socks5://{c}@{}", self.addr),
            None => format!("socks5://{}", self.addr),
        }
    }

    /// Connections relayed after a successful handshake.
    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::SeqCst)
    }
}

type Pair = (tokio::net::TcpStream, tokio::net::TcpStream);

async fn handshake(mut c: tokio::net::TcpStream, creds: Option<&(Vec<u8>, Vec<u8>)>) -> std::io::Result<Pair> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "socks5");
    let mut head = [0u8; 2];
    c.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    c.read_exact(&mut methods).await?;
    let want = if creds.is_some() { 2u8 } else { 0u8 };
    if head[0] != 5 || !methods.contains(&want) {
        c.write_all(&[5, 0xff]).await?;
        return Err(bad());
    }
    c.write_all(&[5, want]).await?;
    if let Some((user, pass)) = creds {
        let mut v = [0u8; 2];
        c.read_exact(&mut v).await?;
        let mut u = vec![0u8; v[1] as usize];
        c.read_exact(&mut u).await?;
        let mut plen = [0u8; 1];
        c.read_exact(&mut plen).await?;
        let mut p = vec![0u8; plen[0] as usize];
        c.read_exact(&mut p).await?;
        let ok = &u == user && &p == pass;
        c.write_all(&[1, if ok { 0 } else { 1 }]).await?;
        if !ok {
            return Err(bad());
        }
    }
    let mut req = [0u8; 4];
    c.read_exact(&mut req).await?;
    if req[0] != 5 || req[1] != 1 {
        return Err(bad());
    }
    let host = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            c.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut n = [0u8; 1];
            c.read_exact(&mut n).await?;
            let mut name = vec![0u8; n[0] as usize];
            c.read_exact(&mut name).await?;
            String::from_utf8(name).map_err(|_| bad())?
        }
        4 => {
            let mut ip = [0u8; 16];
            c.read_exact(&mut ip).await?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => return Err(bad()),
    };
    let mut port = [0u8; 2];
    c.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    let upstream = tokio::net::TcpStream::connect(target).await?;
    c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    Ok((c, upstream))
}
