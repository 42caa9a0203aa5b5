//! fakehost: a stateful fake of the K3s API server, the K3K controller and the K3K virtual
//! clusters, served over real HTTPS so kaas, kube-rs and kubectl talk to it as to a real host.
//!
//! Layout: `store` keeps objects and events; `engine` holds the API semantics (shared by
//! HTTP and in-process callers); `http` maps REST onto the engine; `server` does TLS and
//! connections; `host` assembles a running fake (`FakeHost`). `seams` are the plug points for
//! authorization, admission and schema validation.

pub mod engine;
pub mod errors;
pub mod faults;
pub mod host;
pub mod hostsim;
pub mod http;
pub mod kinds;
pub mod managed;
pub mod patch;
pub mod policies;
pub mod seams;
pub mod selectors;
mod server;
pub mod store;
pub mod tls;

pub use engine::{
    DeleteOptions, Engine, ListOptions, ObjectList, PatchRequest, Propagation, WatchEvent,
    WatchOptions, Watcher, WriteOptions,
};
pub use errors::ApiError;
pub use faults::{FaultPlan, InjectedError, RequestCounts};
pub use host::{FakeHost, FakeHostOptions, NodeSeed};
pub use kinds::ResourceRef;
pub use patch::PatchType;
pub use tls::{CertPair, ClientIdentity};
pub mod admission;
pub mod k3k;
pub mod pki;
pub mod rbac;
pub mod schema;
pub mod vcluster;

/// The K3K CRDs (chart 1.2.0-rc4) kept in this crate, for `FakeHostOptions::manifests`.
pub const K3K_CRDS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
