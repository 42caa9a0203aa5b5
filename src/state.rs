//! What every request handler shares: the use-case layer and a few serving facts.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use crate::ops::Ops;
use crate::reconcile::ReconcilerHandle;

#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub ops: Arc<Ops>,
    pub reconciler: Option<ReconcilerHandle>,
    /// Cookies get `Secure` (and the `__Host-` name) when served over TLS.
    pub secure_cookies: bool,
    /// The base URL people use, for links kaas hands out.
    pub public_url: String,
    pub started: Instant,
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        AppState(Arc::new(inner))
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-kaas_session"
        } else {
            "kaas_session"
        }
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}
