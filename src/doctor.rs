//! `kaas doctor`: checks that this box can run kaas and prints, for each check, pass / warn /
//! fail with what to do about it. The exit code is the worst result (0 pass, 1 warn, 2 fail).
//!
//! Invariants:
//! - Every check is read-only on the host except the PodTolerationRestriction probe, which
//!   keeps one labelled namespace (`kaas-doctor`) and sends a `dryRun=All` pod create to it:
//!   nothing is ever scheduled.
//! - A check says only what it saw. "K3K controller" passes on positive evidence (an available
//!   k3k Deployment, or Clusters it has given a status), fails on evidence of absence (a
//!   Cluster stuck on K3K's finalizer), and otherwise warns that it cannot tell.
//! - When the host cannot be reached, the host checks report that instead of guessing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

use crate::config::{Config, TlsMode};
use crate::host::desired::{system_tolerations, tolerations_json};
use crate::host::names::{
    K3K_CLUSTER_FINALIZER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, TOLERATIONS_WHITELIST_ANNOTATION,
};
use crate::reconcile::connection::{
    HostConnection, K3K_CRDS, is_toleration_refusal, locate_kubeconfig,
};

/// The namespace the PodTolerationRestriction probe uses (created by the installer's RBAC
/// manifest, or here when missing).
pub const PROBE_NAMESPACE: &str = "kaas-doctor";
/// The toleration the probe pod carries and the probe namespace's whitelist forbids.
const PROBE_TOLERATION_KEY: &str = "kaas.io/doctor-probe";
const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// How long a Cluster may sit on K3K's finalizer before doctor blames the controller.
const STUCK_DELETING: Duration = Duration::from_secs(5 * 60);
const FREE_FAIL: u64 = 256 * 1024 * 1024;
const FREE_WARN: u64 = 2 * 1024 * 1024 * 1024;
/// Clock difference from the host API server that breaks certificates and tokens.
const SKEW_FAIL: Duration = Duration::from_secs(60);
const SKEW_WARN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
    /// The exit code for a worst result of `self`.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable short name, e.g. `k3k-crds`.
    pub name: &'static str,
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do about a warn or fail.
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as the operator reads it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "[{}] {:<26} {}\n",
                c.status.as_str(),
                c.name,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("       {:<26} fix: {fix}\n", ""));
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        out.push_str(&format!(
            "{} passed, {} warnings, {} failed\n",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail)
        ));
        out
    }
}

/// Runs every check.
pub async fn run(cfg: &Config) -> Report {
    let mut checks = Vec::new();
    let kubeconfig = locate_kubeconfig(
        cfg.host.kubeconfig.clone(),
        std::env::var("KUBECONFIG").ok(),
    );
    let client = HostConnection::new(kubeconfig.clone()).build_client().await;
    let host_fix = "start K3s (systemctl start k3s) and point host.kubeconfig at a kubeconfig \
                    for it (install.sh writes /etc/kaas/host.kubeconfig)";
    let client = match client {
        Ok(client) => match client.apiserver_version().await {
            Ok(info) => {
                checks.push(version_check(&info.git_version, kubeconfig.as_deref()));
                Some(client)
            }
            Err(e) => {
                checks.push(fail(
                    "host",
                    format!("the host API server does not answer: {}", one_line(&e)),
                    host_fix,
                ));
                None
            }
        },
        Err(e) => {
            checks.push(fail("host", e, host_fix));
            None
        }
    };
    match &client {
        Some(client) => {
            let crds = k3k_crds(client).await;
            let crds_ok = crds.status == Status::Pass;
            checks.push(crds);
            checks.push(if crds_ok {
                k3k_controller(client).await
            } else {
                fail(
                    "k3k-controller",
                    "not checked: the K3K CRDs are missing",
                    "install K3K first (see k3k-crds)",
                )
            });
            checks.push(pod_toleration_restriction(client).await);
            checks.push(default_storage_class(client).await);
        }
        None => {
            for name in [
                "k3k-crds",
                "k3k-controller",
                "pod-toleration-restriction",
                "default-storage-class",
            ] {
                checks.push(warn(
                    name,
                    "not checked: the host cannot be reached",
                    "fix the host connection first",
                ));
            }
        }
    }
    checks.push(external_address(cfg));
    checks.push(data_dir(&cfg.data.dir));
    checks.push(clock(client.as_ref()).await);
    Report { checks }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

fn version_check(git_version: &str, kubeconfig: Option<&Path>) -> Check {
    let from = kubeconfig
        .map(|p| format!(" (credentials from {})", p.display()))
        .unwrap_or_default();
    let minor = git_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= 30 => pass("host", format!("reachable, Kubernetes {git_version}{from}")),
        Some(_) => warn(
            "host",
            format!("reachable, Kubernetes {git_version}{from}: older than kaas is tested with"),
            "upgrade K3s to v1.30 or newer",
        ),
        None => warn(
            "host",
            format!("reachable, but its version \"{git_version}\" is not understood{from}"),
            "check that host.kubeconfig points at the K3s API server",
        ),
    }
}

async fn k3k_crds(client: &Client) -> Check {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for name in K3K_CRDS {
        match api.get_opt(name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(name),
            Err(e) => {
                return warn(
                    "k3k-crds",
                    format!("cannot read CRD {name}: {}", one_line(&e)),
                    "give kaas's host account read access to customresourcedefinitions",
                );
            }
        }
    }
    if missing.is_empty() {
        pass("k3k-crds", format!("installed: {}", K3K_CRDS.join(", ")))
    } else {
        fail(
            "k3k-crds",
            format!("missing: {}", missing.join(", ")),
            "install the K3K chart: install.sh puts it into /var/lib/rancher/k3s/server/manifests/k3k.yaml \
             (check `kubectl -n kube-system get helmchart k3k` and the helm-install-k3k job)",
        )
    }
}

fn cluster_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

/// What the Clusters on the host say about the controller.
#[derive(Debug, Default, PartialEq, Eq)]
struct ClusterEvidence {
    total: usize,
    with_status: usize,
    stuck_deleting: Vec<String>,
}

fn cluster_evidence(clusters: &[DynamicObject], now: jiff::Timestamp) -> ClusterEvidence {
    let mut ev = ClusterEvidence {
        total: clusters.len(),
        ..Default::default()
    };
    for c in clusters {
        let phase = c.data.pointer("/status/phase").and_then(|p| p.as_str());
        if matches!(phase, Some(p) if !p.is_empty() && p != "Unknown") {
            ev.with_status += 1;
        }
        let finalized = c
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == K3K_CLUSTER_FINALIZER));
        if let Some(ts) = &c.metadata.deletion_timestamp {
            let since = now.duration_since(ts.0);
            if finalized && since.as_secs() >= STUCK_DELETING.as_secs() as i64 {
                ev.stuck_deleting.push(format!(
                    "{}/{}",
                    c.metadata.namespace.as_deref().unwrap_or(""),
                    c.metadata.name.as_deref().unwrap_or("")
                ));
            }
        }
    }
    ev
}

async fn k3k_controller(client: &Client) -> Check {
    const NAME: &str = "k3k-controller";
    let clusters = match cluster_api(client).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            return warn(
                NAME,
                format!("cannot list K3K Clusters: {}", one_line(&e)),
                "give kaas's host account read access to clusters.k3k.io",
            );
        }
    };
    let ev = cluster_evidence(&clusters, jiff::Timestamp::now());
    if !ev.stuck_deleting.is_empty() {
        return fail(
            NAME,
            format!(
                "Clusters stuck on K3K's finalizer for over {} min: {}; the controller is not running",
                STUCK_DELETING.as_secs() / 60,
                ev.stuck_deleting.join(", ")
            ),
            "check the k3k Deployment (kubectl -n k3k-system get deploy,pods) and its logs",
        );
    }
    let deployments: Api<Deployment> = Api::all(client.clone());
    let found = deployments
        .list(&ListParams::default().labels("app.kubernetes.io/name=k3k"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    if let Some(d) = found.iter().find(|d| {
        d.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            > 0
    }) {
        return pass(
            NAME,
            format!(
                "Deployment {}/{} is available",
                d.metadata.namespace.as_deref().unwrap_or(""),
                d.metadata.name.as_deref().unwrap_or("")
            ),
        );
    }
    if ev.with_status > 0 {
        return pass(
            NAME,
            format!(
                "{} of {} Clusters carry a status set by the controller and none is stuck deleting",
                ev.with_status, ev.total
            ),
        );
    }
    let detail = if found.is_empty() {
        "no k3k Deployment found and no Cluster with a status yet: cannot confirm the controller runs"
            .to_string()
    } else {
        "the k3k Deployment has no available replica".to_string()
    };
    warn(
        NAME,
        detail,
        "check `kubectl -n k3k-system get deploy,pods`; the controller comes with the K3K chart",
    )
}

async fn pod_toleration_restriction(client: &Client) -> Check {
    const NAME: &str = "pod-toleration-restriction";
    let fix = "enable it in K3s: /etc/rancher/k3s/config.yaml.d/50-kaas.yaml with \
               `kube-apiserver-arg+: [enable-admission-plugins=NodeRestriction,PodTolerationRestriction]` \
               (install.sh writes it), then restart K3s (systemctl restart k3s)";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": PROBE_NAMESPACE,
            "labels": { MANAGED_BY_LABEL: MANAGED_BY_VALUE },
            "annotations": {
                TOLERATIONS_WHITELIST_ANNOTATION: tolerations_json(&system_tolerations()),
            },
        },
    });
    if let Err(e) = namespaces
        .patch(
            PROBE_NAMESPACE,
            &PatchParams::apply("kaas-doctor").force(),
            &Patch::Apply(&ns),
        )
        .await
    {
        return warn(
            NAME,
            format!(
                "cannot prepare the probe namespace {PROBE_NAMESPACE}: {}",
                one_line(&e)
            ),
            "give kaas's host account the installer's ClusterRole (namespaces: patch)",
        );
    }
    let pod: Pod = match serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "toleration-probe" },
        "spec": {
            "containers": [{
                "name": "probe",
                "image": "registry.invalid/kaas-doctor-probe:never-pulled",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "runAsNonRoot": true,
                    "runAsUser": 65534,
                    "capabilities": { "drop": ["ALL"] },
                    "seccompProfile": { "type": "RuntimeDefault" },
                },
            }],
            "tolerations": [{
                "key": PROBE_TOLERATION_KEY,
                "operator": "Exists",
                "effect": "NoSchedule",
            }],
        },
    })) {
        Ok(p) => p,
        Err(e) => return warn(NAME, format!("building the probe pod: {e}"), "report a bug"),
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), PROBE_NAMESPACE);
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match pods.create(&params, &pod).await {
        Ok(_) => fail(
            NAME,
            "not enabled: a pod with a toleration its namespace's whitelist forbids was admitted (dry run)",
            fix,
        ),
        Err(kube::Error::Api(ae)) if is_toleration_refusal(&ae) => pass(
            NAME,
            "enabled: a forbidden toleration was refused by admission (dry run)",
        ),
        Err(e) => warn(
            NAME,
            format!(
                "the probe pod (dry run) failed for another reason: {}",
                one_line(&e)
            ),
            "give kaas's host account pods: create in the kaas-doctor namespace, then re-run",
        ),
    }
}

async fn default_storage_class(client: &Client) -> Check {
    const NAME: &str = "default-storage-class";
    let api: Api<StorageClass> = Api::all(client.clone());
    let classes = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            return warn(
                NAME,
                format!("cannot list StorageClasses: {}", one_line(&e)),
                "give kaas's host account read access to storageclasses",
            );
        }
    };
    let defaults: Vec<String> = classes
        .iter()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let fix_default = "mark one default: kubectl patch storageclass local-path -p \
        '{\"metadata\":{\"annotations\":{\"storageclass.kubernetes.io/is-default-class\":\"true\"}}}'";
    match defaults.len() {
        1 => pass(NAME, format!("{} is the default", defaults[0])),
        0 if classes.is_empty() => fail(
            NAME,
            "no StorageClass at all: virtual clusters use dynamic persistence and would stay Pending",
            "keep K3s's local-path provisioner enabled (do not pass --disable local-storage), or install one",
        ),
        0 => fail(
            NAME,
            "no default StorageClass: virtual clusters use dynamic persistence and would stay Pending",
            fix_default,
        ),
        _ => warn(
            NAME,
            format!("several defaults: {}", defaults.join(", ")),
            "keep exactly one StorageClass annotated as the default",
        ),
    }
}

/// SANs (DNS names and IPs, as text) of the first certificate in a PEM file.
fn certificate_names(path: &Path) -> Result<Vec<String>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| format!("{} holds no certificate", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    crate::tls::subject_alt_names(&der).map_err(|e| format!("{}: {e}", path.display()))
}

fn external_address(cfg: &Config) -> Check {
    const NAME: &str = "external-address";
    let addrs = &cfg.host.external_addresses;
    if addrs.is_empty() {
        return fail(
            NAME,
            "host.external_addresses is empty: virtual clusters get no reachable TLS name and provisioning cannot finish",
            "set host.external_addresses = [\"<name or IP clients use>\"] in /etc/kaas/config.toml and restart kaas",
        );
    }
    if !cfg.uses_tls() {
        return pass(
            NAME,
            format!(
                "{} (kaas itself serves plain HTTP on {}; no certificate to check)",
                addrs.join(", "),
                cfg.server.listen
            ),
        );
    }
    let cert = match cfg.server.tls.mode {
        TlsMode::Files => cfg.server.tls.cert.clone().unwrap_or_default(),
        TlsMode::Auto | TlsMode::Off => crate::tls::self_signed_paths(&cfg.data.dir).0,
    };
    if cfg.server.tls.mode == TlsMode::Auto && !cert.exists() {
        return pass(
            NAME,
            format!(
                "{} (the self-signed certificate is generated with these names on first start)",
                addrs.join(", ")
            ),
        );
    }
    let names = match certificate_names(&cert) {
        Ok(n) => n,
        Err(e) => {
            return fail(
                NAME,
                e,
                "fix server.tls.cert, or let kaas generate one (server.tls.mode = \"auto\")",
            );
        }
    };
    let mut wanted: Vec<String> = addrs.iter().map(|a| a.to_ascii_lowercase()).collect();
    if let Some(h) = cfg.server.public_url.as_ref().and(cfg.public_host()) {
        wanted.push(h.to_ascii_lowercase());
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !names.iter().any(|n| n == *w || wildcard_covers(n, w)))
        .collect();
    if missing.is_empty() {
        pass(
            NAME,
            format!("{} (all in {})", addrs.join(", "), cert.display()),
        )
    } else {
        let fix = match cfg.server.tls.mode {
            TlsMode::Files => format!("reissue {} with these names", cert.display()),
            _ => "restart kaas: the self-signed certificate is regenerated when names are missing"
                .to_string(),
        };
        fail(
            NAME,
            format!(
                "not in the certificate {}: {}",
                cert.display(),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix,
        )
    }
}

fn wildcard_covers(pattern: &str, name: &str) -> bool {
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((_, rest))) => suffix == rest,
        _ => false,
    }
}

/// The filesystem type of the mount holding `path`, from /proc/self/mountinfo.
fn filesystem_type(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = fields.get(4)?;
        let sep = fields.iter().position(|f| *f == "-")?;
        let fstype = fields.get(sep + 1)?;
        let mp = mount_point.replace("\\040", " ");
        if path.starts_with(&mp) && best.as_ref().is_none_or(|(len, _)| mp.len() >= *len) {
            best = Some((mp.len(), fstype.to_string()));
        }
    }
    best.map(|(_, t)| t)
}

/// Bytes available to an unprivileged writer on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

const REMOTE_FS: [&str; 12] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "fuse.sshfs",
    "glusterfs",
    "ceph",
    "afs",
    "davfs",
    "fuse.s3fs",
];

fn data_dir(dir: &Path) -> Check {
    const NAME: &str = "data-directory";
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    };
    // The directory may not exist yet (first start creates it): look at its nearest ancestor.
    let existing: PathBuf = abs
        .ancestors()
        .find(|a| a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let existing = existing.canonicalize().unwrap_or(existing);
    let fstype = filesystem_type(&existing).unwrap_or_else(|| "unknown".into());
    if REMOTE_FS.contains(&fstype.as_str()) {
        return fail(
            NAME,
            format!(
                "{} is on a network filesystem ({fstype}); the database needs reliable locks and fsync",
                abs.display()
            ),
            "set data.dir to a local disk (the default /var/lib/kaas)",
        );
    }
    let free = match free_bytes(&existing) {
        Some(f) => f,
        None => {
            return warn(
                NAME,
                format!("{} ({fstype}): cannot read free space", abs.display()),
                "check the directory exists and is readable",
            );
        }
    };
    let gib = free as f64 / (1024.0 * 1024.0 * 1024.0);
    let what = format!("{} on {fstype}, {gib:.1} GiB free", abs.display());
    if free < FREE_FAIL {
        fail(
            NAME,
            what,
            "free disk space: the database and its backups need room",
        )
    } else if fstype == "tmpfs" || fstype == "ramfs" {
        warn(
            NAME,
            format!("{what}: in memory, lost on reboot"),
            "set data.dir to a disk (the default /var/lib/kaas)",
        )
    } else if free < FREE_WARN {
        warn(NAME, what, "free disk space: less than 2 GiB left")
    } else {
        pass(NAME, what)
    }
}

/// Whether the kernel clock is disciplined by NTP/PTP (None: cannot tell).
fn kernel_clock_synchronized() -> Option<bool> {
    // SAFETY: modes = 0 only reads the kernel's time state into a zeroed struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

/// The host API server's clock, from the `Date` header of `/version`.
async fn host_time(client: &Client) -> Option<jiff::Timestamp> {
    let req = http::Request::get("/version").body(Vec::new()).ok()?;
    let res = client.send(req.map(Into::into)).await.ok()?;
    let date = res.headers().get(http::header::DATE)?.to_str().ok()?;
    jiff::fmt::rfc2822::parse(date).ok().map(|z| z.timestamp())
}

async fn clock(client: Option<&Client>) -> Check {
    const NAME: &str = "clock";
    let now = jiff::Timestamp::now();
    let synced = kernel_clock_synchronized();
    let skew = match client {
        Some(c) => host_time(c).await.map(|t| {
            let d = now.duration_since(t);
            Duration::from_secs(d.as_secs().unsigned_abs())
        }),
        None => None,
    };
    let skew_text = match skew {
        Some(s) => format!(", {}s from the host API server", s.as_secs()),
        None => String::new(),
    };
    let fix_sync = "synchronize the clock: point chrony or systemd-timesyncd at an NTP server \
                    reachable from this box (air-gapped: a local one)";
    if let Some(s) = skew {
        // The Date header has one-second resolution; the request itself takes a moment.
        if s > SKEW_FAIL {
            return fail(
                NAME,
                format!("{now}{skew_text}: certificates and tokens will be refused"),
                fix_sync,
            );
        }
        if s > SKEW_WARN {
            return warn(NAME, format!("{now}{skew_text}"), fix_sync);
        }
    }
    match synced {
        Some(true) => pass(NAME, format!("{now}, synchronized{skew_text}")),
        Some(false) => warn(
            NAME,
            format!("{now}, not synchronized by NTP{skew_text}"),
            fix_sync,
        ),
        None => pass(
            NAME,
            format!("{now}{skew_text} (synchronization state unknown)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_result_sets_the_exit_code() {
        let r = Report {
            checks: vec![pass("a", "ok"), warn("b", "hm", "do x")],
        };
        assert_eq!(r.worst().exit_code(), 1);
        let text = r.render();
        assert!(
            text.contains("[warn] b") && text.contains("fix: do x"),
            "{text}"
        );
        assert_eq!(Report { checks: vec![] }.worst(), Status::Pass);
    }

    #[test]
    fn a_cluster_stuck_on_the_finalizer_is_evidence_against_the_controller() {
        let now = jiff::Timestamp::now();
        let old = now - jiff::SignedDuration::from_secs(600);
        let mk = |phase: Option<&str>, deleting: Option<jiff::Timestamp>| {
            let mut o = DynamicObject::new(
                "c",
                &ApiResource::from_gvk(&GroupVersionKind::gvk("k3k.io", "v1beta1", "Cluster")),
            )
            .within("ns");
            if let Some(p) = phase {
                o.data = json!({"status": {"phase": p}});
            }
            o.metadata.finalizers = Some(vec![K3K_CLUSTER_FINALIZER.into()]);
            o.metadata.deletion_timestamp =
                deleting.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            o
        };
        let ev = cluster_evidence(
            &[
                mk(Some("Ready"), None),
                mk(Some("Unknown"), None),
                mk(None, Some(old)),
                mk(None, Some(now)),
            ],
            now,
        );
        assert_eq!(ev.total, 4);
        assert_eq!(ev.with_status, 1);
        assert_eq!(ev.stuck_deleting, vec!["ns/c".to_string()]);
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(wildcard_covers("*.example.com", "kaas.example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
        assert!(!wildcard_covers("kaas.example.com", "kaas.example.com"));
    }

    #[test]
    fn the_data_directory_check_reads_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let c = data_dir(&dir.path().join("not-yet"));
        assert_ne!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("GiB free"), "{c:?}");
    }
}
