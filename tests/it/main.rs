//! kaas integration tests: one binary, modules by surface.

mod abuse;
mod api;
mod audit_chain;
mod auth_hardening;
mod authz;
mod billing;
mod binary;
mod components;
mod credentials;
mod edge;
mod host;
mod listing;
mod mfa;
mod nodes;
mod openapi;
mod plans;
mod realbox;
mod realhost;
mod revocation;
mod running;
mod ship;
mod sso;
mod support;
mod tenant_guards;
mod tenants;
mod web;
