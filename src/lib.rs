//! kaas: a Kubernetes-as-a-Service appliance. One binary beside K3s keeps tenancy in redb,
//! serves a JSON API and console, and drives the host cluster (see docs/architecture.md in
//! the shared design notes and README.md).
//!
//! Layers point inward: `web`/`api` → `ops` → `domain`/`store`; `reconcile` (the Kubernetes
//! runtime) → `host` (the pure Kubernetes model) and `ops`. `ops` defines the ports the
//! runtime implements, and `app` wires them; `host` imports neither `ops` nor `reconcile`.
//!
//! Outside tests nothing may `unwrap`, `expect`, `panic!` or index out of bounds: input
//! from outside, from the host or from the database must come back as an error, not take
//! the server down. The few places where a panic is impossible say why where they allow it.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod api;
pub mod app;
pub mod backup;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod credential;
pub mod doctor;
pub mod domain;
pub mod edge;
pub mod healthcheck;
pub mod host;
pub mod http;
pub mod ops;
pub mod reconcile;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;

/// The version and, when built from git, the commit (set by the release build).
pub const VERSION: &str = match option_env!("KAAS_BUILD_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
