//! `poolgate migrate`: legacy files → Redis.

use std::path::PathBuf;
use std::process::ExitCode;

use poolgate_store::transfer::{self, MigrateOptions, MigrateSummary};

use super::progress::StderrProgress;
use super::{connect, fatal, items_exit, print_errors, print_json, read_config, ConnArgs, EXIT_CODES_HELP};

/// Import config.json, provider_pools.json, token files, pwd, token-store.json sessions,
/// usage-cache.json and plugins.json into Redis. Items already in Redis are skipped unless
/// --force; a second run changes nothing.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct MigrateArgs {
    /// Directory holding the reference's files (config.json, provider_pools.json, …).
    #[arg(long, value_name = "DIR")]
    pub config_dir: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Read and report only; write nothing to Redis.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite items that already exist in Redis.
    #[arg(long)]
    pub force: bool,
    /// After importing, compare every item in Redis with its source field by field; exit 3 on any difference.
    #[arg(long)]
    pub verify: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: MigrateArgs) -> ExitCode {
    let settings = match args.conn.settings(read_config(&args.config_dir).as_ref()) {
        Ok(s) => s,
        Err(e) => return fatal("migrate", &e),
    };
    let target = format!("{} (prefix {:?})", settings.redacted_url(), settings.key_prefix);
    let store = match connect(settings).await {
        Ok(s) => s,
        Err(e) => return fatal("migrate", &e),
    };
    let opts = MigrateOptions {
        config_dir: args.config_dir.clone(),
        dry_run: args.dry_run,
        force: args.force,
        verify: args.verify,
    };
    let progress = StderrProgress::new(args.json);
    match transfer::migrate(&store, &opts, &progress).await {
        Ok(sum) => {
            if args.json {
                print_json(&sum);
            } else {
                print_human(&args, &target, &sum);
            }
            items_exit(sum.success)
        }
        Err(e) => fatal("migrate", &e.into()),
    }
}

fn print_human(args: &MigrateArgs, target: &str, s: &MigrateSummary) {
    let dry = if s.dry_run { " [DRY RUN: nothing written]" } else { "" };
    println!("poolgate migrate: {} -> {target}{dry}", args.config_dir.display());
    println!(
        "  pools:     {} imported, {} skipped ({} accounts imported, {} skipped)",
        s.pools_imported, s.pools_skipped, s.providers_imported, s.providers_skipped
    );
    println!(
        "  tokens:    {} imported, {} skipped, {} legacy imported",
        s.tokens_imported, s.tokens_skipped, s.legacy_tokens_imported
    );
    for (name, key, done) in [
        ("config", "config", s.config_imported),
        ("password", "pwd", s.password_imported),
        ("usage", "usage:cache", s.usage_cache_imported),
        ("plugins", "plugins", s.plugins_imported),
    ] {
        let state = if done {
            "imported"
        } else if s.skipped.iter().any(|k| k == key) {
            "skipped (already in Redis)"
        } else {
            "not found"
        };
        println!("  {name:<10} {state}");
    }
    println!(
        "  sessions:  {} imported, {} skipped, {} expired (not imported)",
        s.sessions_imported, s.sessions_skipped, s.sessions_expired
    );
    print_errors("errors", &s.errors);
    match s.verified {
        Some(true) => println!("verification passed"),
        Some(false) => print_errors("verification FAILED", &s.verify_errors),
        None => {}
    }
    if !s.success {
        println!("some items failed: exit code 3");
    }
}
