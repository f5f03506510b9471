//! `poolgate migrate`: legacy files → Redis.

use std::path::PathBuf;
use std::process::ExitCode;

use poolgate_store::transfer::{self, MigrateOptions, MigrateSummary};

use super::progress::StderrProgress;
use super::{dry_run_note, open_store, print_errors, read_config, report, ConnArgs, EXIT_CODES_HELP};

/// Import config.json, provider_pools.json, token files, pwd, token-store.json sessions,
/// api-potluck-keys.json client keys (stored hashed),
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
    /// Import what parses even when some files do not (by default a source with any unreadable
    /// item writes nothing).
    #[arg(long)]
    pub partial: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: MigrateArgs) -> ExitCode {
    let (store, target) = match open_store("migrate", &args.conn, read_config(&args.config_dir).as_ref()).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let opts = MigrateOptions {
        config_dir: args.config_dir.clone(),
        dry_run: args.dry_run,
        force: args.force,
        verify: args.verify,
        partial: args.partial,
    };
    let progress = StderrProgress::new(args.json);
    let outcome = transfer::migrate(&store, &opts, &progress).await;
    report("migrate", outcome, args.json, |sum| print_human(&args, &target, sum))
}

fn print_human(args: &MigrateArgs, target: &str, s: &MigrateSummary) {
    let dry = dry_run_note(s.dry_run);
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
        ("prompt", "system-prompt", s.system_prompt_imported),
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
    println!("  client keys: {} imported, {} skipped", s.client_keys_imported, s.client_keys_skipped);
    for note in s.skipped.iter().filter(|k| k.starts_with("api-potluck")) {
        println!("  {note}");
    }
    print_errors("errors", &s.errors);
    match s.verified {
        Some(true) => println!("verification passed"),
        Some(false) => print_errors("verification FAILED", &s.verify_errors),
        None => {}
    }
    if s.nothing_written {
        println!(
            "nothing was written: fix the files named above and run again (or pass --partial to import what parses)"
        );
    }
    if !s.success {
        println!("some items failed: exit code 3");
    }
}
