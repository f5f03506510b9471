//! `poolgate admin-password`: stores the admin password (hashed) in the store the gateway uses
//! (Redis when configured, else `configs/pwd`), so the admin API and dashboard can be opened.
//! The password comes from `POOLGATE_ADMIN_PASSWORD` or standard input, never from argv.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{EXIT_FATAL, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Reads the password from POOLGATE_ADMIN_PASSWORD, else the first line of standard input.")]
pub struct AdminPasswordArgs {
    /// Directory holding config.json (for the Redis settings) and, without Redis, `pwd`.
    #[arg(long, env = "POOLGATE_CONFIG_DIR", default_value = "configs")]
    pub config_dir: PathBuf,
}

fn read_password() -> Option<String> {
    if let Ok(p) = std::env::var("POOLGATE_ADMIN_PASSWORD") {
        return Some(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(args: AdminPasswordArgs) -> ExitCode {
    let Some(password) = read_password().filter(|p| p.trim().chars().count() >= 8) else {
        eprintln!("admin-password: give a password of at least 8 characters in POOLGATE_ADMIN_PASSWORD or on stdin");
        return ExitCode::from(EXIT_USAGE);
    };
    let serve = crate::server::ServeArgs {
        config_dir: args.config_dir,
        host: None,
        port: None,
        api_key: None,
        model_provider: None,
    };
    let result = async {
        let loaded = crate::server::load(&serve).await?;
        if !loaded.store.status().connected {
            anyhow::bail!("storage is unreachable");
        }
        let hashed = tokio::task::spawn_blocking(move || poolgate_store::password::hash(&password)).await?;
        loaded.store.set_password(&hashed).await?;
        loaded.store.flush().await?;
        anyhow::Ok(loaded.store.kind())
    };
    match result.await {
        Ok(kind) => {
            println!("admin password stored ({kind:?} storage)");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("admin-password: {e:#}");
            ExitCode::from(EXIT_FATAL)
        }
    }
}
