//! kaas integration tests: one binary, modules by surface.

mod abuse;
mod api;
mod authz;
mod billing;
mod binary;
mod components;
mod credentials;
mod host;
mod nodes;
mod openapi;
mod plans;
mod realbox;
mod realhost;
mod running;
mod ship;
mod support;
mod tenants;
mod web;
