//! `poolgate export`: Redis → the reference's files.

use std::path::PathBuf;
use std::process::ExitCode;

use poolgate_store::transfer::{self, ExportOptions, ExportSummary};

use super::progress::StderrProgress;
use super::{dry_run_note, open_store, print_errors, report, ConnArgs, EXIT_CODES_HELP};

/// Write everything in Redis back to the reference's files: config.json, provider_pools.json
/// (token path fields pointing at the exported token files), token files, pwd, token-store.json,
/// usage-cache.json, plugins.json. `migrate --config-dir DIR` reads them back.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct ExportArgs {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
    /// List the files that would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ExportArgs) -> ExitCode {
    let (store, source) = match open_store("export", &args.conn, None).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let opts = ExportOptions { output_dir: args.output_dir.clone(), force: args.force, dry_run: args.dry_run };
    let progress = StderrProgress::new(args.json);
    let outcome = transfer::export(&store, &opts, &progress).await;
    report("export", outcome, args.json, |sum| print_human(&args, &source, sum))
}

fn print_human(args: &ExportArgs, source: &str, s: &ExportSummary) {
    let dry = dry_run_note(s.dry_run);
    println!("poolgate export: {source} -> {}{dry}", args.output_dir.display());
    println!("  pools:     {} ({} accounts)", s.pools_exported, s.providers_exported);
    println!("  tokens:    {}", s.tokens_exported);
    println!("  sessions:  {}", s.sessions_exported);
    let yes = |b: bool| if b { "exported" } else { "not in Redis" };
    println!("  config:    {}", yes(s.config_exported));
    println!("  password:  {}", yes(s.password_exported));
    if s.client_keys_not_exported > 0 {
        println!(
            "  client keys: {} not exported (poolgate keeps only their SHA-256; issue new keys in the reference)",
            s.client_keys_not_exported
        );
    }
    println!("  usage:     {}", yes(s.usage_cache_exported));
    println!("  plugins:   {}", yes(s.plugins_exported));
    let verb = if s.dry_run { "would write" } else { "written" };
    println!("  files {verb}: {}, kept (exist, no --force): {}", s.files_written.len(), s.files_skipped.len());
    for f in &s.files_skipped {
        println!("    kept {f}");
    }
    print_errors("errors", &s.errors);
}
