//! The HTTP/1.1 accept loop: hyper with a header read timeout, a cap on open connections,
//! JSON bodies for the rejections hyper answers itself, and graceful shutdown.
//!
//! `axum::serve` is not used because it sets no header read timeout: a client that sends part of
//! a request and then nothing would hold its connection forever.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct ListenLimits {
    /// Longest wait for a request's complete headers (also between keep-alive requests).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); 431 beyond.
    pub max_header_bytes: usize,
    /// Open connections in total; later ones get 503 and are closed.
    pub max_connections: usize,
    /// Open connections per client IP (0: no per-IP cap).
    pub max_connections_per_ip: usize,
}

/// Descriptors kept for everything but connections (Redis, files, listeners, the runtime).
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard one and caps `max_connections` so that every
/// accepted connection can also open its upstream socket: past the cap a client gets the JSON
/// 503 at once, instead of a connection whose upstream call fails with "too many open files".
pub fn fit_to_descriptors(max_connections: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; MAX_CONNECTIONS is not checked against it");
            return max_connections;
        }
    };
    let fit = connections_for(limit);
    if max_connections > fit {
        tracing::warn!(
            max_connections,
            open_files = limit,
            capped_to = fit,
            "MAX_CONNECTIONS capped to fit the open-file limit (each connection needs a client and an upstream socket)"
        );
        return fit;
    }
    max_connections
}

/// Connections that fit `limit` descriptors, two each.
fn connections_for(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX).max(1)
}

/// Serves `app` on `listener` until `stop` resolves, then waits for open connections to end.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let counts = Arc::new(Counts::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192) * 2)
        .max_header_size(limits.max_header_bytes);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let Some(slot) = counts.enter(peer.ip(), &limits) else {
            tokio::spawn(refuse(tcp));
            continue;
        };
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), req)
        });
        let conn = http.serve_connection(TokioIo::new(JsonRejections::new(tcp)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection over the cap and closes it.
async fn refuse(mut tcp: TcpStream) {
    let body = error_json(503, "Too many open connections; retry later");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// Open connections, in total and per client IP.
#[derive(Default)]
struct Counts {
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection; released on drop.
struct Slot {
    counts: Arc<Counts>,
    /// Set only while a per-IP cap is on, so the map costs nothing otherwise.
    ip: Option<IpAddr>,
}

impl Counts {
    fn enter(self: &Arc<Self>, ip: IpAddr, limits: &ListenLimits) -> Option<Slot> {
        let mut st = self.state.lock();
        if st.0 >= limits.max_connections {
            return None;
        }
        let per_ip_cap = limits.max_connections_per_ip;
        if per_ip_cap > 0 {
            let n = st.1.entry(ip).or_insert(0);
            if *n >= per_ip_cap {
                return None;
            }
            *n += 1;
        }
        st.0 += 1;
        Some(Slot { counts: self.clone(), ip: (per_ip_cap > 0).then_some(ip) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.counts.state.lock();
        st.0 = st.0.saturating_sub(1);
        let Some(ip) = self.ip else { return };
        if let Some(n) = st.1.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.1.remove(&ip);
            }
        }
    }
}

fn error_json(status: u16, message: &str) -> String {
    let kind = if status < 500 { "invalid_request_error" } else { "server_error" };
    serde_json::json!({"error": {"message": message, "type": kind, "code": status}}).to_string()
}

/// Gives the responses hyper writes on its own (400 for a malformed request line, header or
/// `Content-Length`, 414, 431) a JSON error body: they leave hyper as a bare head with
/// `content-length: 0`, which this writer recognises and completes.
struct JsonRejections {
    inner: TcpStream,
    /// Rewritten bytes not yet written to the socket.
    pending: Vec<u8>,
}

impl JsonRejections {
    fn new(inner: TcpStream) -> Self {
        Self { inner, pending: Vec::new() }
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

/// `buf` with a JSON body, when it is exactly a bodiless error head.
fn with_json_body(buf: &[u8]) -> Option<Vec<u8>> {
    // Only the statuses hyper answers by itself: the application's own errors carry JSON bodies,
    // and an empty 4xx of the application may answer a HEAD request, which must stay bodiless.
    let own = [&b"HTTP/1.1 400 "[..], b"HTTP/1.1 414 ", b"HTTP/1.1 431 "];
    if !own.iter().any(|p| buf.starts_with(p)) || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    if head.matches("\r\n\r\n").count() != 1 {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    let at = lower.find("\r\ncontent-length: 0\r\n")?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let message = match status {
        400 => "Malformed HTTP request: bad request line, header or Content-Length",
        414 => "Request URI is too long",
        431 => "Request header fields are too large",
        _ => return None,
    };
    let body = error_json(status, message);
    let mut out = Vec::with_capacity(buf.len() + body.len() + 40);
    out.extend_from_slice(&buf[..at]);
    out.extend_from_slice(
        format!("\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len()).as_bytes(),
    );
    out.extend_from_slice(&buf[at + "\r\ncontent-length: 0\r\n".len()..]);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl AsyncRead for JsonRejections {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonRejections {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        if let Some(out) = with_json_body(buf) {
            self.pending = out;
            // The caller's bytes are taken; what is left is written by later calls and flushes.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        let first = bufs.iter().find(|b| !b.is_empty());
        let only_one = bufs.iter().filter(|b| !b.is_empty()).count() == 1;
        if let (Some(first), true) = (first, only_one) {
            if let Some(out) = with_json_body(first) {
                self.pending = out;
                let _ = self.drain(cx)?;
                return Poll::Ready(Ok(first.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bare_error_heads_get_a_json_body() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(with_json_body(head).expect("rewritten")).expect("utf8");
        let (h, body) = out.split_once("\r\n\r\n").expect("head");
        let v: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(v["error"]["code"], 431);
        assert!(h.contains(&format!("content-length: {}", body.len())), "{h}");
        assert!(h.contains("content-type: application/json"));
        assert!(h.ends_with("date: x"), "other headers are kept: {h}");
    }

    #[test]
    fn other_writes_pass_unchanged() {
        assert!(with_json_body(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n").is_none());
        assert!(with_json_body(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}").is_none());
        assert!(with_json_body(b"data: {}\n\n").is_none());
        assert!(with_json_body(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").is_none());
    }

    #[test]
    fn connections_fit_two_sockets_each_within_the_limit() {
        assert_eq!(connections_for(20_000), 9_872);
        assert_eq!(connections_for(1_048_576), 524_160);
        assert_eq!(connections_for(100), 1, "at least one connection");
        // The process's own limit, raised: the default cap fits in it or is lowered to fit.
        let fitted = fit_to_descriptors(16_384);
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("limit").0;
        assert!(
            fitted <= 16_384 && (fitted as u64) * 2 + RESERVED_FDS <= limit.max(RESERVED_FDS + 2),
            "{fitted} {limit}"
        );
    }

    proptest! {
        /// Arbitrary writes never panic, and a rewrite only ever adds a body after the same head.
        #[test]
        fn rewriting_is_safe(bytes in prop::collection::vec(any::<u8>(), 0..120), status in prop::sample::select(vec![400u16, 404, 405, 414, 431, 500])) {
            let _ = with_json_body(&bytes);
            let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            if let Some(out) = with_json_body(head.as_bytes()) {
                let text = String::from_utf8(out).expect("utf8");
                let start = format!("HTTP/1.1 {status} X\r\n");
                prop_assert!(text.starts_with(&start));
                let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
                prop_assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
            }
        }
    }
}
