//! End-to-end tests of the simulated K3K controller and virtual clusters: a fake host with
//! the k3k CRDs, the controller running against it, kube-rs for the host and the real
//! kubectl against the virtual clusters with certificates minted from their bootstrap CAs.

mod access;
mod agents;
mod binary;
mod exposure;
mod lifecycle;
mod policy;
mod sans;
mod servers;
mod support;
