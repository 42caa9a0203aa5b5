//! How tenants reach a workspace's API server, per the plan's `expose` (`domain::Expose`).
//!
//! kaas exposes the API server with a Service of its own, `kaas-api` (K3K's `spec.expose` is
//! left unset: see `desired::cluster`), whose type follows the mode:
//! - `nodeport`: a NodePort Service; clients use the first `host.external_addresses` entry
//!   and the node port Kubernetes allocated.
//! - `loadbalancer`: a LoadBalancer Service; K3s's ServiceLB (or any LB controller) writes
//!   the address to `status.loadBalancer.ingress`, which kaas reads back, puts into the
//!   Cluster's `tlsSANs` and gives to clients, on port 443.
//! - `ingress`: a ClusterIP Service behind a Traefik `IngressRouteTCP` that routes TLS by SNI
//!   (`HostSNI(ws-<short>.<domain>)`) with `passthrough`: Traefik never terminates the TLS,
//!   so the API server still sees the client certificate kaas minted. A standard Ingress
//!   cannot say this: Traefik offers TLS passthrough only on its TCP routers (the Kubernetes
//!   Ingress provider has no passthrough annotation), and an HTTP router would terminate TLS
//!   and lose the client certificate. Clients use `https://ws-<short>.<domain>:<port>`;
//!   kaas itself dials the first external address with that name as TLS server name, so it
//!   needs no DNS for it.
//!
//! Pure: the reconciler applies what these functions build and reads addresses back with
//! [`api_address`].

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::names;
use crate::domain::{Expose, WorkspaceId};

/// The port of kaas's API Service (and of a LoadBalancer address).
pub const API_SERVICE_PORT: i32 = 443;
/// Traefik's TLS entry point on K3s.
pub const TRAEFIK_TLS_ENTRY_POINT: &str = "websecure";

/// What exposure needs from configuration (`[expose]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposeSettings {
    /// Empty: ingress plans cannot be served.
    pub ingress_domain: String,
    pub ingress_port: u16,
}

impl Default for ExposeSettings {
    fn default() -> Self {
        ExposeSettings {
            ingress_domain: String::new(),
            ingress_port: 443,
        }
    }
}

/// Traefik's `IngressRouteTCP` (traefik.io/v1alpha1).
pub fn ingress_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("traefik.io", "v1alpha1", "IngressRouteTCP"),
        "ingressroutetcps",
    )
}

/// `ws-<short>.<domain>`, or `None` when no ingress domain is configured.
pub fn ingress_host(ws: WorkspaceId, settings: &ExposeSettings) -> Option<String> {
    let domain = settings.ingress_domain.trim().trim_end_matches('.');
    (!domain.is_empty()).then(|| format!("{}.{domain}", names::cluster(ws)))
}

/// The Service type of `kaas-api` for a mode.
pub fn service_type(mode: Expose) -> &'static str {
    match mode {
        Expose::NodePort => "NodePort",
        Expose::LoadBalancer => "LoadBalancer",
        Expose::Ingress => "ClusterIP",
    }
}

/// The Service `kaas-api` through which tenants and kaas reach the virtual cluster's API
/// server: K3K's server pods' 6443 and nothing else (etcd stays on K3K's ClusterIP
/// Service). No `nodePort`: Kubernetes allocates one and keeps it on every later apply (and
/// drops it when the type no longer needs one); the reconciler reads it back.
pub fn api_service(ws: WorkspaceId, mode: Expose) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(names::API_SERVICE.to_string()),
            namespace: Some(names::namespace(ws)),
            labels: Some(names::workspace_labels(ws)),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(service_type(mode).into()),
            selector: Some(names::k3k_server_pod_labels(&names::cluster(ws))),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                protocol: Some("TCP".into()),
                port: API_SERVICE_PORT,
                target_port: Some(IntOrString::Int(names::K3S_SERVER_PORT)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The `IngressRouteTCP` `kaas-api`: TLS for `host` passed through, untouched, to `kaas-api`.
pub fn ingress_route(ws: WorkspaceId, host: &str) -> DynamicObject {
    let mut route = DynamicObject::new(names::API_SERVICE, &ingress_route_resource())
        .within(&names::namespace(ws));
    route.metadata.labels = Some(names::workspace_labels(ws));
    route.data = json!({
        "spec": {
            "entryPoints": [TRAEFIK_TLS_ENTRY_POINT],
            "routes": [{
                "match": format!("HostSNI(`{host}`)"),
                "services": [{"name": names::API_SERVICE, "port": API_SERVICE_PORT}],
            }],
            "tls": {"passthrough": true},
        }
    });
    route
}

/// The addresses (IPs, else host names) a LoadBalancer controller published for `svc`.
pub fn load_balancer_addresses(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Names the API server must serve for the mode, besides the external addresses.
pub fn extra_tls_sans(
    ws: WorkspaceId,
    mode: Expose,
    settings: &ExposeSettings,
    load_balancer: &[String],
) -> Vec<String> {
    match mode {
        Expose::NodePort => Vec::new(),
        Expose::LoadBalancer => load_balancer.to_vec(),
        Expose::Ingress => ingress_host(ws, settings).into_iter().collect(),
    }
}

/// Where a client reaches the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAddress {
    /// The host to connect to.
    pub connect: String,
    pub port: u16,
    /// The TLS server name when it is not `connect` (ingress: the route's host name).
    pub server_name: Option<String>,
}

impl ApiAddress {
    /// The URL tenants get: the server name when there is one (their DNS resolves it).
    pub fn url(&self) -> String {
        let host = self.server_name.as_deref().unwrap_or(&self.connect);
        format!("https://{}:{}", bracket_ipv6(host), self.port)
    }

    /// The URL kaas dials (with [`ApiAddress::server_name`] as TLS server name).
    pub fn connect_url(&self) -> String {
        format!("https://{}:{}", bracket_ipv6(&self.connect), self.port)
    }
}

fn bracket_ipv6(addr: &str) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

/// Where the API server behind the observed `kaas-api` Service is reached now. The mode is
/// read from the Service itself, so the answer follows what is applied, also while a mode
/// change rolls out. `Err`: why there is no address yet (or not at all).
pub fn api_address(
    svc: &Service,
    ws: WorkspaceId,
    external_address: Option<&str>,
    settings: &ExposeSettings,
) -> Result<ApiAddress, String> {
    let spec = svc.spec.as_ref();
    let external = || {
        external_address
            .map(str::to_string)
            .ok_or_else(|| "no external address configured (host.external_addresses)".to_string())
    };
    match spec.and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => {
            let port = spec
                .and_then(|s| s.ports.as_ref())
                .and_then(|ports| ports.iter().find(|p| p.port == API_SERVICE_PORT))
                .and_then(|p| p.node_port)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("the virtual cluster's API service has no NodePort for port 443 yet")?;
            Ok(ApiAddress {
                connect: external()?,
                port,
                server_name: None,
            })
        }
        Some("LoadBalancer") => {
            let connect = load_balancer_addresses(svc).into_iter().next().ok_or(
                "waiting for a load balancer address for the virtual cluster's API service",
            )?;
            Ok(ApiAddress {
                connect,
                port: API_SERVICE_PORT as u16,
                server_name: None,
            })
        }
        _ => {
            let host = ingress_host(ws, settings).ok_or(
                "the plan exposes the API server by ingress, but expose.ingress_domain is not configured",
            )?;
            Ok(ApiAddress {
                connect: external()?,
                port: settings.ingress_port,
                server_name: Some(host),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    fn ws() -> WorkspaceId {
        static ID: std::sync::OnceLock<WorkspaceId> = std::sync::OnceLock::new();
        *ID.get_or_init(WorkspaceId::generate)
    }

    fn settings() -> ExposeSettings {
        ExposeSettings {
            ingress_domain: "kaas.example".into(),
            ingress_port: 8443,
        }
    }

    #[test]
    fn the_service_type_follows_the_mode() {
        for (mode, ty) in [
            (Expose::NodePort, "NodePort"),
            (Expose::LoadBalancer, "LoadBalancer"),
            (Expose::Ingress, "ClusterIP"),
        ] {
            let svc = api_service(ws(), mode);
            assert_eq!(svc.spec.unwrap().type_.as_deref(), Some(ty));
        }
    }

    #[test]
    fn node_port_address_is_the_external_address_and_the_allocated_port() {
        let mut svc = api_service(ws(), Expose::NodePort);
        let err = api_address(&svc, ws(), Some("10.0.0.5"), &settings()).unwrap_err();
        assert!(err.contains("no NodePort"), "{err}");
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(31000);
        let a = api_address(&svc, ws(), Some("10.0.0.5"), &settings()).unwrap();
        assert_eq!(a.url(), "https://10.0.0.5:31000");
        assert_eq!(a.connect_url(), a.url());
        let a = api_address(&svc, ws(), Some("fd00::1"), &settings()).unwrap();
        assert_eq!(a.url(), "https://[fd00::1]:31000");
    }

    #[test]
    fn load_balancer_address_is_read_back_from_status() {
        let mut svc = api_service(ws(), Expose::LoadBalancer);
        let err = api_address(&svc, ws(), Some("10.0.0.5"), &settings()).unwrap_err();
        assert!(err.contains("waiting for a load balancer"), "{err}");
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some("192.0.2.7".into()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        });
        let a = api_address(&svc, ws(), None, &settings()).unwrap();
        assert_eq!(a.url(), "https://192.0.2.7:443");
        assert_eq!(
            extra_tls_sans(
                ws(),
                Expose::LoadBalancer,
                &settings(),
                &load_balancer_addresses(&svc)
            ),
            ["192.0.2.7"]
        );
    }

    #[test]
    fn ingress_address_is_the_workspace_host_name_dialled_at_the_external_address() {
        let svc = api_service(ws(), Expose::Ingress);
        let a = api_address(&svc, ws(), Some("10.0.0.5"), &settings()).unwrap();
        let host = format!("{}.kaas.example", names::cluster(ws()));
        assert_eq!(a.url(), format!("https://{host}:8443"));
        assert_eq!(a.connect_url(), "https://10.0.0.5:8443");
        assert_eq!(a.server_name.as_deref(), Some(host.as_str()));
        assert_eq!(
            extra_tls_sans(ws(), Expose::Ingress, &settings(), &[]),
            std::slice::from_ref(&host)
        );
        let err =
            api_address(&svc, ws(), Some("10.0.0.5"), &ExposeSettings::default()).unwrap_err();
        assert!(err.contains("expose.ingress_domain"), "{err}");
    }

    #[test]
    fn the_ingress_route_passes_tls_through_by_sni() {
        let route = serde_json::to_value(ingress_route(ws(), "ws-x.kaas.example")).unwrap();
        assert_eq!(route["apiVersion"], "traefik.io/v1alpha1");
        assert_eq!(route["kind"], "IngressRouteTCP");
        assert_eq!(route["metadata"]["name"], "kaas-api");
        assert_eq!(route["metadata"]["namespace"], names::namespace(ws()));
        assert_eq!(route["spec"]["tls"]["passthrough"], true);
        assert_eq!(
            route["spec"]["routes"][0]["match"],
            "HostSNI(`ws-x.kaas.example`)"
        );
        assert_eq!(route["spec"]["routes"][0]["services"][0]["port"], 443);
    }
}
