//! kaas integration tests: one binary, modules by surface.

mod api;
mod audit_chain;
mod authz;
mod billing;
mod binary;
mod components;
mod credentials;
mod host;
mod nodes;
mod plans;
mod realbox;
mod realhost;
mod running;
mod ship;
mod support;
mod tenant_guards;
mod tenants;
mod web;
