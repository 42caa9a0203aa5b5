//! fakehost's end-to-end tests in one binary (one link instead of two): [`api`] drives the
//! fake Kubernetes API server over real HTTPS with kube-rs and the real kubectl; [`k3k`]
//! drives the simulated K3K controller and virtual clusters.

mod api;
mod k3k;
