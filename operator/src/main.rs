//! `poolgate-operator`: `run` (default) reconciles ClientConfig and ProviderPool resources;
//! `crd` prints (or writes) the CRD YAML.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use poolgate_operator::admin::{self, AdminState};
use poolgate_operator::leader::{self, Held, LeaseConfig};
use poolgate_operator::metrics::Metrics;
use poolgate_operator::{controller, Context, OperatorConfig};

#[derive(Parser)]
#[command(
    name = "poolgate-operator",
    version,
    about = "Reconciles poolgate ClientConfig and ProviderPool resources into Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (default).
    Run(RunArgs),
    /// Print the CRD YAML, or write one file per CRD into `--out`.
    Crd {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Namespace to watch (empty: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    namespace: String,
    /// Image with the `poolgate` binary for the init and migration Jobs.
    #[arg(long, env = "POOLGATE_JOB_IMAGE", default_value = "ghcr.io/poolgate/poolgate:latest")]
    job_image: String,
    /// Service account of Job pods.
    #[arg(long, env = "POOLGATE_JOB_SERVICE_ACCOUNT")]
    job_service_account: Option<String>,
    /// Where the migration Job mounts its source.
    #[arg(long, env = "POOLGATE_MIGRATION_MOUNT_PATH", default_value = "/var/run/poolgate/migration")]
    migration_mount_path: String,
    /// Seconds between refreshes of pool status from Redis.
    #[arg(long, env = "POOLGATE_STATUS_INTERVAL", default_value_t = 30)]
    status_interval_secs: u64,
    /// Seconds a finished Job is kept (for its logs).
    #[arg(long, env = "POOLGATE_JOB_TTL", default_value_t = 86_400)]
    job_ttl_secs: i32,
    /// Admin server address (/healthz, /readyz, /metrics).
    #[arg(long, env = "POOLGATE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    /// Elect a leader through a Lease (needed with more than one replica).
    #[arg(long, env = "POOLGATE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "POOLGATE_LEASE_NAME", default_value = "poolgate-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the watched namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the pod name / host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Some(Command::Crd { out }) => crd(out),
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn crd(out: Option<PathBuf>) -> anyhow::Result<std::process::ExitCode> {
    let files = poolgate_crds::render_all()?;
    match out {
        Some(dir) => {
            for (name, yaml) in files {
                std::fs::write(dir.join(name), yaml).with_context(|| format!("writing {name}"))?;
            }
        }
        None => {
            for (_, yaml) in files {
                print!("{yaml}");
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let client = kube::Client::try_default().await.context("building the Kubernetes client")?;
    let namespace = (!args.namespace.is_empty()).then(|| args.namespace.clone());
    let metrics = Arc::new(Metrics::default());
    let admin_state = Arc::new(AdminState { metrics: metrics.clone(), ..AdminState::default() });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining");
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    let admin =
        tokio::spawn(admin::serve(args.admin_addr, admin_state.clone(), controller::run::stopped(stop_rx.clone())));

    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("poolgate-operator-{}", std::process::id()));
    let lease_ns = args.lease_namespace.clone().or_else(|| namespace.clone()).unwrap_or_else(|| "default".into());
    let lease_cfg = LeaseConfig::new(&args.lease_name, &lease_ns, &identity);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &lease_ns);
    admin_state.ready.store(true, Ordering::Relaxed);
    if args.leader_election {
        let mut rx = stop_rx.clone();
        if !leader::acquire(&leases, &lease_cfg, &mut rx).await {
            return Ok(std::process::ExitCode::SUCCESS);
        }
    }
    metrics.leader.set(1);
    admin_state.leader.store(true, Ordering::Relaxed);

    let config = OperatorConfig {
        job_image: args.job_image.clone(),
        job_service_account: args.job_service_account.clone(),
        status_interval: Duration::from_secs(args.status_interval_secs.max(1)),
        migration_mount_path: args.migration_mount_path.clone(),
        job_ttl_seconds_after_finished: args.job_ttl_secs,
        ..OperatorConfig::default()
    };
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), config, Some(identity.clone())));
    let controllers = controller::run(ctx, namespace, stop_rx.clone());
    let code = if args.leader_election {
        let mut rx = stop_rx.clone();
        let hold = leader::hold(&leases, &lease_cfg, &mut rx);
        tokio::pin!(controllers);
        tokio::select! {
            _ = &mut controllers => std::process::ExitCode::SUCCESS,
            held = hold => match held {
                Held::Lost(why) => {
                    // Stop writing at once: dropping the controllers aborts in-flight reconciles.
                    tracing::error!("lost leadership ({why}); exiting so that only the new leader writes");
                    return Ok(std::process::ExitCode::from(2));
                }
                Held::Stopped => {
                    controllers.await;
                    std::process::ExitCode::SUCCESS
                }
            },
        }
    } else {
        controllers.await;
        std::process::ExitCode::SUCCESS
    };
    if args.leader_election {
        if let Err(e) = leader::release(&leases, &lease_cfg).await {
            tracing::warn!("could not release the lease: {e}");
        }
    }
    metrics.leader.set(0);
    let _ = tokio::time::timeout(Duration::from_secs(5), admin).await;
    Ok(code)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
