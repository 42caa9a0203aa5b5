//! Test helpers for one reconcile pass against a mock API server (as kube-rs's controller-rs
//! does): a kube `Client` over a `tower-test` mock, and an [`ApiServerVerifier`] that
//! answers each request from a fixed set of objects and records what was asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

/// A client whose every request goes to the returned verifier.
pub fn mock_client() -> (Client, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServerVerifier(handle))
}

/// The requests a verifier answered: method and path (no query).
#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<(Method, String)>>>);

impl Seen {
    pub fn all(&self) -> Vec<(Method, String)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Everything that was not a read.
    pub fn writes(&self) -> Vec<(Method, String)> {
        self.all()
            .into_iter()
            .filter(|(m, _)| m != Method::GET)
            .collect()
    }
}

/// What the mock API server holds: objects and lists by path.
#[derive(Debug, Default)]
pub struct Objects(HashMap<String, Value>);

impl Objects {
    pub fn with(mut self, path: impl Into<String>, object: &impl Serialize) -> Objects {
        let value = serde_json::to_value(object).expect("serializable");
        self.0.insert(path.into(), value);
        self
    }

    /// A list at a collection path.
    pub fn with_list<T: Serialize>(self, path: &str, kind: &str, items: &[T]) -> Objects {
        let list = json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items});
        self.with(path, &list)
    }
}

pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// A failure as the API server words it (`reason` is the status name without spaces, e.g.
/// `NotFound`, which is what kube's `get_opt` looks for).
fn status(code: StatusCode, message: &str) -> Response<Body> {
    let reason = code.canonical_reason().unwrap_or_default().replace(' ', "");
    let body = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response")
}

impl ApiServerVerifier {
    /// Answers reads and deletes from `objects` (404 for anything else) until the client is
    /// gone. Any other write is answered with the object it sent, so that a pass that writes
    /// goes on and the test sees the write in [`Seen::writes`].
    pub fn serve(self, objects: Objects) -> (Seen, JoinHandle<()>) {
        self.run(
            move |method, path, body| match (method, objects.0.get(path)) {
                (&Method::GET | &Method::DELETE, Some(v)) => {
                    Response::new(Body::from(serde_json::to_vec(v).expect("json")))
                }
                (&Method::GET | &Method::DELETE, None) => {
                    status(StatusCode::NOT_FOUND, &format!("{path} not found"))
                }
                _ => Response::new(Body::from(body)),
            },
        )
    }

    /// Refuses every request with `code` and `message`.
    pub fn refuse(self, code: StatusCode, message: &'static str) -> (Seen, JoinHandle<()>) {
        self.run(move |_, _, _| status(code, message))
    }

    fn run(
        self,
        answer: impl Fn(&Method, &str, Vec<u8>) -> Response<Body> + Send + 'static,
    ) -> (Seen, JoinHandle<()>) {
        let seen = Seen::default();
        let log = seen.clone();
        let mut handle = self.0;
        let task = tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let body = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let response = answer(&method, &path, body);
                if let Ok(mut v) = log.0.lock() {
                    v.push((method, path));
                }
                send.send_response(response);
            }
        });
        (seen, task)
    }
}
