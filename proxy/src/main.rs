//! The `poolgate` command: `serve` (the default) runs the gateway; `migrate`, `export` and `init`
//! move data between the reference's files and Redis.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    poolgate_proxy::logging::init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("poolgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        None => rt.block_on(poolgate_proxy::server::run(cli.serve)),
        Some(Command::Serve(args)) => rt.block_on(poolgate_proxy::server::run(args)),
    }
}
