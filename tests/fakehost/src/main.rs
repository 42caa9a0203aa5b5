//! The `fakehost` binary: starts a fake K3s API server, writes an admin kubeconfig, prints
//! the address and serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use fakehost::{FakeHost, FakeHostOptions, FaultPlan, InjectedError, NodeSeed};

#[derive(Parser)]
#[command(about = "A stateful fake K3s API server for kaas tests and demos")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Directory (or file) of manifests, e.g. CRDs, created at start.
    #[arg(long)]
    crds: Vec<PathBuf>,
    #[arg(long)]
    pod_toleration_restriction: bool,
    /// Answer every Nth resource request with an error (see --fail-code).
    #[arg(long)]
    fail_every: Option<u64>,
    /// 500 or 429.
    #[arg(long, default_value_t = 500)]
    fail_code: u16,
    /// Added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let options = FakeHostOptions {
        listen: cli.listen,
        nodes: NodeSeed {
            count: cli.nodes,
            ..NodeSeed::default()
        },
        pod_toleration_restriction: cli.pod_toleration_restriction,
        manifests: cli.crds,
        ..FakeHostOptions::default()
    };
    let host = FakeHost::start(options).await?;
    host.write_kubeconfig(&cli.kubeconfig_out)?;
    if let Some(n) = cli.fail_every {
        let error = if cli.fail_code == 429 {
            InjectedError::TooManyRequests {
                retry_after_seconds: 1,
            }
        } else {
            InjectedError::Internal
        };
        host.set_fault_plan(Some(FaultPlan::EveryNth { n, error }));
    }
    host.set_latency(std::time::Duration::from_millis(cli.latency_ms));
    println!("{}", host.url());
    wait_for_signal().await?;
    host.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
