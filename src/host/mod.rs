//! The host side of kaas, as pure data: typed K3K resources, every derived name, and the
//! builders and parsers of every object kaas keeps on the host cluster and inside each
//! virtual cluster. Nothing here does I/O; `reconcile` applies what these functions return.
//!
//! - [`k3k`]: `Cluster` and `VirtualClusterPolicy`, generated from the K3K CRDs.
//! - [`names`]: names, labels, annotations and the field manager.
//! - [`desired`]: a workspace's host namespace, policy, Cluster and API Service.
//! - [`expose`]: the `kaas-api` Service and Traefik route per expose mode, and addresses.
//! - [`isolation`]: kaas's NetworkPolicies and priority-class quotas per workspace.
//! - [`tolerations`]: the toleration rules and whitelist of workspace namespaces.
//! - [`nodes`]: labels and taints of dedicated nodes.
//! - [`quantity`]: resource quantities in the canonical form a server stores.
//! - [`tenant`]: ClusterRoles, bindings and project objects inside a virtual cluster.
//! - [`credentials`]: K3K's bootstrap data, tenant client certificates and kubeconfigs.
//! - [`served_cert`]: which wanted addresses a certificate or k3s config does not cover.

pub mod credentials;
pub mod desired;
pub mod expose;
pub mod isolation;
pub mod k3k;
pub mod names;
pub mod nodes;
pub mod oidc;
pub mod quantity;
pub mod served_cert;
pub mod tenant;
pub mod tolerations;
