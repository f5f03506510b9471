//! Runs a test API server for manual poking with kubectl, for a bounded time.
//!
//! `cargo run -p poolgate-kube-apiserver --example serve -- [SECONDS]` prints the kubeconfig path;
//! then `kubectl --kubeconfig PATH get ns`.

use std::time::Duration;

use poolgate_kube_apiserver::TestApiServer;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let server = TestApiServer::start().await;
    println!("url: {}", server.url());
    println!("kubeconfig: {}", server.kubeconfig_path().display());
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
