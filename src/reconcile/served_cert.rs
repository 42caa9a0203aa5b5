//! The certificate a virtual cluster's API server really serves, read over TLS (the pure
//! comparisons are in `host::served_cert`), and its repair: when it lacks an address, K3K's
//! stale server config Secrets are removed, K3K is asked to rewrite them, and the servers
//! are restarted one at a time (k3s reads `tls-san` only when it starts).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use super::context::Context;
use super::error::{Error, Result};
use super::kubeapi::delete_if_present;
use super::observe::Verdict;
use crate::domain::{WorkspaceId, WorkspaceState};
use crate::host::expose::ApiAddress;
use crate::host::k3k::Cluster;
use crate::host::names;
use crate::host::served_cert::{config_tls_sans, missing};

/// How long one look at the served certificate may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The subject alternative names (DNS names lower-cased, IPs as text) of the certificate
/// served at `host:port`. Nothing is sent after the handshake.
pub async fn served_names(host: &str, port: u16) -> Result<Vec<String>, String> {
    served_names_as(host, port, None).await
}

/// Like [`served_names`], naming `server_name` in TLS (SNI) instead of `host`: what an SNI
/// router (the ingress controller) needs to pick the backend.
pub async fn served_names_as(
    host: &str,
    port: u16,
    server_name: Option<&str>,
) -> Result<Vec<String>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptToRead(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(
        server_name
            .unwrap_or(host.trim_matches(['[', ']']))
            .to_string(),
    )
    .map_err(|e| format!("{host} is no TLS server name: {e}"))?;
    let look = async {
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| format!("{host}:{port} presented no certificate"))?
            .clone();
        crate::tls::subject_alt_names(&leaf)
    };
    tokio::time::timeout(TIMEOUT, look)
        .await
        .map_err(|_| format!("{host}:{port} did not complete a TLS handshake in time"))?
}

fn updating(message: String) -> Verdict {
    Verdict {
        state: WorkspaceState::Updating,
        message,
        applied: None,
    }
}

/// Makes sure the API server serves a certificate for every address in `wanted`.
/// `None`: it does. Otherwise the state to report while the servers are restarted, one
/// at a time, to read K3K's rewritten configuration (k3s reads `tls-san` only at start).
pub async fn check_served_names(
    ctx: &Context,
    client: &Client,
    id: WorkspaceId,
    address: &ApiAddress,
    wanted: &[String],
) -> Result<Option<Verdict>> {
    let verified = ctx
        .memory()?
        .verified_sans
        .get(&id)
        .is_some_and(|v| v == wanted);
    if verified || wanted.is_empty() {
        return Ok(None);
    }
    let served = match served_names_as(
        &address.connect,
        address.port,
        address.server_name.as_deref(),
    )
    .await
    {
        Ok(names) => names,
        Err(e) => {
            return Ok(Some(updating(format!(
                "checking the served certificate: {e}"
            ))));
        }
    };
    let absent: Vec<String> = missing(&served, wanted)
        .into_iter()
        .map(str::to_string)
        .collect();
    if absent.is_empty() {
        let mut mem = ctx.memory()?;
        mem.verified_sans.insert(id, wanted.to_vec());
        mem.san_rolls.remove(&id);
        return Ok(None);
    }
    let absent = absent.join(", ");
    let rolling = |what: String| {
        Ok(Some(updating(format!(
            "restarting the K3K servers so that they serve {absent}: {what}"
        ))))
    };
    let ns = names::namespace(id);
    let cluster = names::cluster(id);
    // NB: K3K writes the servers' config Secrets (where k3s reads `tls-san`) only when
    // they do not exist: it creates them and ignores AlreadyExists, so a tlsSANs change
    // never reaches them. Remove stale ones and poke the Cluster so that K3K reconciles
    // and writes them anew; only then can a restarted server pick the names up.
    if let Some(waiting) = refresh_server_config(client, id, &cluster, wanted).await? {
        return rolling(waiting);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let selector = names::k3k_server_pod_labels(&cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let servers = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::kube("listing the K3K server pods", e))?
        .items;
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    let old: HashSet<String> = {
        let mut mem = ctx.memory()?;
        let roll = mem
            .san_rolls
            .entry(id)
            .or_insert_with(|| servers.iter().map(uid).collect());
        roll.retain(|u| servers.iter().any(|p| &uid(p) == u));
        roll.clone()
    };
    let all_ready = servers
        .iter()
        .all(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p));
    if !all_ready {
        return rolling("waiting for the restarted server to be ready".into());
    }
    let mut candidates: Vec<&Pod> = servers.iter().filter(|p| old.contains(&uid(p))).collect();
    candidates.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    let Some(next) = candidates.first() else {
        return Ok(Some(Verdict {
            state: WorkspaceState::Error,
            message: format!(
                "every K3K server restarted, but the API server still serves a certificate without {absent}; check host.external_addresses and the Cluster's tlsSANs"
            ),
            applied: None,
        }));
    };
    let name = next.metadata.name.clone().unwrap_or_default();
    delete_if_present(&pods, &name, &DeleteParams::default())
        .await
        .map_err(|e| Error::kube(format!("restarting server pod {name}"), e))?;
    tracing::info!(workspace = %id, pod = %name, missing = %absent, "restarting a K3K server to serve new addresses");
    rolling(format!("restarted {name}"))
}

/// `None` when both of K3K's server config Secrets name every address in `wanted`;
/// otherwise what was done to get there (stale Secrets deleted, K3K asked to rewrite
/// them) or is awaited.
async fn refresh_server_config(
    client: &Client,
    id: WorkspaceId,
    cluster: &str,
    wanted: &[String],
) -> Result<Option<String>> {
    let ns = names::namespace(id);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut stale = Vec::new();
    let mut absent = false;
    for name in names::k3k_server_config_secrets(cluster) {
        let secret = secrets
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube("reading K3K's server configuration", e))?;
        match secret {
            None => absent = true,
            Some(sec) => {
                let text = sec
                    .data
                    .as_ref()
                    .and_then(|d| d.get(names::K3K_SERVER_CONFIG_KEY))
                    .map(|b| String::from_utf8_lossy(&b.0).to_string())
                    .unwrap_or_default();
                if !missing(&config_tls_sans(&text), wanted).is_empty() {
                    stale.push(name);
                }
            }
        }
    }
    if stale.is_empty() && !absent {
        return Ok(None);
    }
    for name in &stale {
        delete_if_present(&secrets, name, &DeleteParams::default())
            .await
            .map_err(|e| {
                Error::kube(
                    format!("removing K3K's stale server configuration {name}"),
                    e,
                )
            })?;
    }
    // Any change to the Cluster makes K3K reconcile it (it does not watch its Secrets).
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), &ns);
    let poke = serde_json::json!({"metadata": {"annotations": {
        names::CONFIG_REFRESH_ANNOTATION: jiff::Timestamp::now().to_string()
    }}});
    clusters
        .patch(cluster, &PatchParams::default(), &Patch::Merge(&poke))
        .await
        .map_err(|e| Error::kube("asking K3K to rewrite its configuration", e))?;
    tracing::info!(workspace = %id, stale = ?stale, "asked K3K to rewrite the servers' configuration");
    Ok(Some(
        "waiting for K3K to write the servers' configuration with the new addresses".into(),
    ))
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Accepts whatever certificate the server presents, so that its names can be read; the
/// handshake signatures are still checked. NB: only for reading names — nothing is sent
/// over such a connection.
#[derive(Debug)]
struct AcceptToRead(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptToRead {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
