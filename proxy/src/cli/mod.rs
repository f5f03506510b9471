//! `poolgate migrate | export | init`: the operator's tools to move a deployment between the
//! reference's files and Redis. The data movement lives in `poolgate_store::transfer`; this
//! module parses flags, connects, draws progress and prints summaries.
//!
//! Exit codes (also in every command's `--help` and in docs/cli.md):
//! 0 success; 1 connection or fatal error; 2 usage error; 3 verification failed or some items
//! failed (the list is printed).

pub mod admin_password;
pub mod export;
pub mod init;
pub mod migrate;
pub mod progress;

use std::path::Path;
use std::process::ExitCode;

use poolgate_store::transfer::{ExportSummary, InitSummary, MigrateSummary};
use poolgate_store::{RedisSettings, RedisStore};
use serde_json::Value;

/// Exit code: everything done.
pub const EXIT_OK: u8 = 0;
/// Exit code: cannot connect, unreadable input directory, or another fatal error.
pub const EXIT_FATAL: u8 = 1;
/// Exit code: bad flags (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: some items failed to import/export, or verification found differences.
pub const EXIT_ITEMS_FAILED: u8 = 3;

/// Text appended to every command's `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:\n  0  success\n  1  connection or fatal error\n  2  usage error\n  \
3  verification failed or some items failed (the list is printed)";

/// Connection flags shared by every command. Without them the proxy's environment applies:
/// REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB, REDIS_KEY_PREFIX.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Redis URL, e.g. redis://:password@host:6379/0 (default: REDIS_URL, REDIS_HOST/PORT/…, localhost:6379).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Key prefix (default: REDIS_KEY_PREFIX, else "aiclient:").
    #[arg(long, value_name = "P")]
    pub key_prefix: Option<String>,
}

impl ConnArgs {
    /// Settings as the proxy resolves them (env over the config file's `redis` block over
    /// defaults), then the flags on top. Always enabled: these tools exist to talk to Redis.
    pub fn settings(&self, config: Option<&Value>) -> anyhow::Result<RedisSettings> {
        let mut s = RedisSettings::from_env(config)?;
        if let Some(url) = &self.redis_url {
            s.url = Some(url.clone());
        }
        if let Some(p) = &self.key_prefix {
            s.key_prefix = p.clone();
        }
        s.enabled = true;
        Ok(s)
    }
}

/// Connects or explains why not (the URL is always redacted).
pub async fn connect(settings: RedisSettings) -> anyhow::Result<RedisStore> {
    let url = settings.redacted_url();
    RedisStore::open_connected(settings).await.map_err(|e| anyhow::anyhow!("cannot connect to Redis at {url}: {e}"))
}

/// Resolves `conn` (over `config`) and connects. Returns the store and its description for the
/// summary (redacted URL and key prefix), or exit code 1 after printing why it failed.
pub async fn open_store(cmd: &str, conn: &ConnArgs, config: Option<&Value>) -> Result<(RedisStore, String), ExitCode> {
    let settings = conn.settings(config).map_err(|e| fatal(cmd, &e))?;
    let target = format!("{} (prefix {:?})", settings.redacted_url(), settings.key_prefix);
    let store = connect(settings).await.map_err(|e| fatal(cmd, &e))?;
    Ok((store, target))
}

/// config.json of a directory, when it exists and parses (only for connection settings;
/// `migrate` reports a malformed file as an item error on its own).
pub fn read_config(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Logging for the tools: warnings and errors only unless RUST_LOG says otherwise, on stderr
/// (the store's "Redis is empty, run migrate" hint is noise for these very commands).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,poolgate_store::redis=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Prints a fatal error and returns exit code 1.
pub fn fatal(cmd: &str, e: &anyhow::Error) -> ExitCode {
    eprintln!("poolgate {cmd}: error: {e:#}");
    ExitCode::from(EXIT_FATAL)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("poolgate: cannot render the JSON summary: {e}"),
    }
}

/// Prints an item error list.
pub fn print_errors(title: &str, errors: &[poolgate_store::transfer::ItemError]) {
    if errors.is_empty() {
        return;
    }
    println!("{title} ({}):", errors.len());
    for e in errors {
        println!("  - {}: {}", e.item, e.message);
    }
}

/// 0 when `ok`, else 3.
pub fn items_exit(ok: bool) -> ExitCode {
    ExitCode::from(if ok { EXIT_OK } else { EXIT_ITEMS_FAILED })
}

/// A command's summary: printed as JSON or for humans; its success decides the exit code.
pub trait Summary: serde::Serialize {
    fn success(&self) -> bool;
}

impl Summary for MigrateSummary {
    fn success(&self) -> bool {
        self.success
    }
}

impl Summary for ExportSummary {
    fn success(&self) -> bool {
        self.success
    }
}

impl Summary for InitSummary {
    fn success(&self) -> bool {
        self.success
    }
}

/// Prints a command's outcome (the JSON summary with `--json`, else `print_human`'s) and returns
/// its exit code: 0, 3 when some items failed, 1 on a fatal error.
pub fn report<S: Summary>(
    cmd: &str,
    outcome: Result<S, impl Into<anyhow::Error>>,
    json: bool,
    print_human: impl FnOnce(&S),
) -> ExitCode {
    match outcome {
        Ok(sum) => {
            if json {
                print_json(&sum);
            } else {
                print_human(&sum);
            }
            items_exit(sum.success())
        }
        Err(e) => fatal(cmd, &e.into()),
    }
}

/// The note a dry run's summary header ends with.
pub fn dry_run_note(dry_run: bool) -> &'static str {
    if dry_run {
        " [DRY RUN: nothing written]"
    } else {
        ""
    }
}
