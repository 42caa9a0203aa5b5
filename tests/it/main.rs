//! kaas integration tests: one binary, modules by surface.

mod api;
mod authz;
mod binary;
mod host;
mod support;
