//! End-to-end tests of fakehost over real HTTPS, with kube-rs and the real kubectl as
//! clients. Each test starts its own host on a free port.

mod crds;
mod escalation;
mod faults;
mod imperative;
mod kubectl;
mod policy;
mod rest;
mod services;
mod ssa;
mod support;
mod watch;
