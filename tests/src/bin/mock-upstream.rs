//! Instant mock upstream for the benchmark: answers every wire format at once.
//! `mock-upstream --port 18080 [--delay-ms N] [--chunks N] [--chunk-delay-ms N]`; prints `listening <addr>` when ready.

use std::time::Duration;

use clap::Parser;
use poolgate_tests::mock_upstream::{bench_state, router, Script};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Delay before each answer.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Text chunks in streamed answers.
    #[arg(long, default_value_t = 3)]
    chunks: usize,
    /// Delay before each stream chunk (slow streams).
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
        println!("listening {}", listener.local_addr()?);
        let mut script = Script::slow(Duration::from_millis(args.delay_ms));
        script.chunks = args.chunks;
        script.chunk_delay = Duration::from_millis(args.chunk_delay_ms);
        let app = router(bench_state(script));
        axum::serve(listener, app).await?;
        Ok(())
    })
}
