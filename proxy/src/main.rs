//! The `poolgate` command: `serve` (the default) runs the gateway; `migrate`, `export` and `init`
//! move data between the reference's files and Redis.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the gateway allocates and frees small buffers on
/// every request (see docs/benchmarks.md for the measured difference).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "poolgate", version, about = "Kubernetes-native AI API gateway over pools of provider accounts")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `poolgate` alone is `poolgate serve`.
    #[command(flatten)]
    serve: poolgate_proxy::server::ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (default when no command is given).
    Serve(poolgate_proxy::server::ServeArgs),
    /// Import the reference's files (config dir) into Redis.
    Migrate(poolgate_proxy::cli::migrate::MigrateArgs),
    /// Write everything in Redis back to the reference's files.
    Export(poolgate_proxy::cli::export::ExportArgs),
    /// Seed a fresh Redis so the proxy starts without files.
    Init(poolgate_proxy::cli::init::InitArgs),
    /// Store the admin (web UI) password, hashed, where the gateway reads it.
    AdminPassword(poolgate_proxy::cli::admin_password::AdminPasswordArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("poolgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let _in_runtime = rt.enter();
    match cli.command {
        None | Some(Command::Serve(_)) => poolgate_proxy::logging::init(),
        Some(_) => poolgate_proxy::cli::init_logging(),
    }
    match cli.command {
        None => rt.block_on(poolgate_proxy::server::run(cli.serve)),
        Some(Command::Serve(args)) => rt.block_on(poolgate_proxy::server::run(args)),
        Some(Command::Migrate(args)) => rt.block_on(poolgate_proxy::cli::migrate::run(args)),
        Some(Command::Export(args)) => rt.block_on(poolgate_proxy::cli::export::run(args)),
        Some(Command::Init(args)) => rt.block_on(poolgate_proxy::cli::init::run(args)),
        Some(Command::AdminPassword(args)) => rt.block_on(poolgate_proxy::cli::admin_password::run(args)),
    }
}
