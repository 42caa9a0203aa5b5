//! The `fakehost` binary: starts a fake K3s API server (optionally with the simulated K3K
//! controller), writes an admin kubeconfig, prints the address and serves until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use fakehost::k3k::{K3kController, K3kOptions};
use fakehost::{FakeHost, FakeHostOptions, FaultPlan, InjectedError, NodeSeed};

#[derive(Parser)]
#[command(about = "A stateful fake K3s API server for kaas tests and demos")]
struct Cli {
    /// Address to serve HTTPS on; port 0 picks a free one (printed on start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Ready nodes to seed (4 CPU, 8Gi each).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Directory (or file) of manifests, e.g. CRDs, created at start. With --k3k and no
    /// --crds, the K3K CRDs kept in the fakehost crate.
    #[arg(long)]
    crds: Vec<PathBuf>,
    /// Run the simulated K3K controller (with the host's StatefulSet/DaemonSet controllers,
    /// scheduler, kubelets and kube-proxy): Clusters get server pods, and each virtual
    /// cluster is served on 127.0.0.1:<nodePort> of any NodePort Service selecting them.
    #[arg(long)]
    k3k: bool,
    /// Time a server pod's K3s takes to become ready (about a Cluster's Provisioning time),
    /// in milliseconds.
    #[arg(long, default_value_t = 500)]
    k3k_delay_ms: u64,
    /// Enable the PodTolerationRestriction admission plugin, as the kaas installer does.
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
        manifests: if cli.k3k && cli.crds.is_empty() {
            vec![PathBuf::from(fakehost::K3K_CRDS_DIR)]
        } else {
            cli.crds
        },
        ..FakeHostOptions::default()
    };
    let host = FakeHost::start(options).await?;
    let k3k = cli.k3k.then(|| {
        K3kController::for_host(
            &host,
            K3kOptions {
                provision_delay: std::time::Duration::from_millis(cli.k3k_delay_ms),
                ..K3kOptions::default()
            },
        )
    });
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
    if let Some(k3k) = k3k {
        k3k.shutdown().await;
    }
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
