//! `poolgate init`: seed a fresh Redis so the proxy can start without any file.

use std::process::ExitCode;

use poolgate_store::transfer::{self, init::DEFAULT_PORT, InitOptions, InitSummary};

use super::{dry_run_note, open_store, print_errors, report, ConnArgs, EXIT_CODES_HELP};

/// Seed an empty Redis: config (API key generated unless given), empty pools for every known
/// provider type (pool-types), default plugins, web UI password (generated unless given),
/// metadata. On an initialised Redis nothing changes (exit 0) unless --defaults or --force.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct InitArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// REQUIRED_API_KEY for the config (default: generated and printed once). Prefer the
    /// environment variable: a flag's value is visible in the process list.
    #[arg(long, value_name = "K", env = "POOLGATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// SERVER_PORT for the config.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Web UI password (default: generated and printed once). Prefer the environment variable.
    #[arg(long, value_name = "P", env = "POOLGATE_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Never print a generated API key or password (human or JSON output); for logs others read,
    /// e.g. a Kubernetes Job's.
    #[arg(long, env = "POOLGATE_QUIET_SECRETS")]
    pub quiet_secrets: bool,
    /// On an already initialised Redis, add only the missing keys (never overwrite).
    #[arg(long)]
    pub defaults: bool,
    /// Overwrite config, password and plugins even if present (pools are never touched).
    #[arg(long)]
    pub force: bool,
    /// Show what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: InitArgs) -> ExitCode {
    let (store, target) = match open_store("init", &args.conn, None).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let opts = InitOptions {
        api_key: args.api_key.clone(),
        port: args.port,
        password: args.password.clone(),
        defaults: args.defaults,
        force: args.force,
        dry_run: args.dry_run,
    };
    let quiet = args.quiet_secrets;
    let outcome = transfer::init(&store, &opts).await.map(|mut sum| {
        if quiet && (sum.generated_api_key.take().is_some() | sum.generated_password.take().is_some()) {
            eprintln!("poolgate init: generated credentials are stored in Redis and not shown (--quiet-secrets)");
        }
        sum
    });
    report("init", outcome, args.json, |sum| print_human(&target, sum))
}

fn print_human(target: &str, s: &InitSummary) {
    let dry = dry_run_note(s.dry_run);
    println!("poolgate init: {target}{dry}");
    if s.already_initialized {
        println!(
            "Redis is already initialised: no changes made (use --defaults to add missing keys, --force to overwrite)."
        );
        return;
    }
    let verb = if s.dry_run { "would write" } else { "written" };
    println!("  {verb}: {}", s.written.join(", "));
    if !s.kept.is_empty() {
        println!("  kept (already present): {}", s.kept.join(", "));
    }
    if !s.pool_types.is_empty() {
        println!("  empty pools: {}", s.pool_types.join(", "));
    }
    // Generated credentials: shown this once, never stored anywhere else in clear but Redis.
    if let Some(k) = &s.generated_api_key {
        println!("Generated API key (REQUIRED_API_KEY): {k}");
    }
    if let Some(p) = &s.generated_password {
        println!("Generated web UI password: {p}");
    }
    print_errors("errors", &s.errors);
    if !s.dry_run {
        println!("Start the proxy with REDIS_ENABLED=true and the same Redis settings.");
    }
}
