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
