//! Test helpers: a mock API server for one reconcile pass.
