//! kube-proxy for the fake host, on 127.0.0.1 (every fake node's address, as far as a test
//! can reach one): a NodePort or LoadBalancer Service's port with a `nodePort` is a listener
//! on `127.0.0.1:<nodePort>` while the Service selects at least one Ready, non-terminating
//! pod in which something listens on the port's `targetPort` (a number, or the name of a
//! container port); each connection goes to the next such endpoint in turn, bytes passed
//! through (TLS ends in the pod). A Service, port or last endpoint going away closes the
//! listener and its connections. `endpoints` is the same routing for a ClusterIP, for
//! in-process callers that play a client inside the cluster.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::{Containers, deleting, list, running_and_ready, selector_matches, text};
use crate::engine::Engine;
use crate::kinds::ResourceRef;

/// The port a Service port's `targetPort` names on `pod` (an absent one is the port itself).
pub fn target_port(port: &Value, pod: &Value) -> Option<u16> {
    match port.get("targetPort") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(name)) if !name.is_empty() => pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)?
            .iter()
            .filter_map(|c| c.get("ports").and_then(Value::as_array))
            .flatten()
            .find(|p| text(p, "/name") == name)
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
            .and_then(|n| u16::try_from(n).ok()),
        _ => port
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok()),
    }
}

/// The pods a Service selects that are Ready and not terminating (its EndpointSlice's ready
/// endpoints); a Service without a selector has none here.
pub fn ready_pods(engine: &Engine, service: &Value) -> Vec<Value> {
    let Some(selector) = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return Vec::new();
    };
    let selector = serde_json::json!({"matchLabels": selector});
    let ns = text(service, "/metadata/namespace");
    list(engine, &ResourceRef::core("pods"), Some(ns))
        .into_iter()
        .filter(|p| !deleting(p) && running_and_ready(p) && selector_matches(&selector, p))
        .collect()
}

/// Where connections to `port` (an entry of the Service's `spec.ports`) end up: the
/// listeners of its ready endpoints.
pub fn endpoints(
    engine: &Engine,
    containers: &dyn Containers,
    service: &Value,
    port: &Value,
) -> Vec<SocketAddr> {
    ready_pods(engine, service)
        .iter()
        .filter_map(|pod| containers.endpoint(pod, target_port(port, pod)?))
        .collect()
}

/// The Service port with this `port` number, if the Service has one.
pub fn service_port(service: &Value, number: u64) -> Option<Value> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(number))
        .cloned()
}

struct Forwarder {
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

/// The node-port listeners of one fake host.
#[derive(Default)]
pub struct KubeProxy {
    forwarders: HashMap<u16, Forwarder>,
}

impl KubeProxy {
    /// Brings the listeners in line with the Services and their endpoints; false when a
    /// node port could not be bound (to be tried again soon).
    pub fn sync(&mut self, engine: &Engine, containers: &dyn Containers) -> bool {
        let mut complete = true;
        let mut wanted: BTreeMap<u16, Vec<SocketAddr>> = BTreeMap::new();
        for service in list(engine, &ResourceRef::core("services"), None) {
            if !matches!(text(&service, "/spec/type"), "NodePort" | "LoadBalancer") {
                continue;
            }
            let ports = service
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for port in ports {
                let Some(node_port) = port
                    .get("nodePort")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
                else {
                    continue;
                };
                let backends = endpoints(engine, containers, &service, &port);
                if !backends.is_empty() {
                    wanted.entry(node_port).or_default().extend(backends);
                }
            }
        }
        self.forwarders.retain(|port, forwarder| {
            let keep = wanted.contains_key(port) && !forwarder.task.is_finished();
            if !keep {
                forwarder.task.abort();
            }
            keep
        });
        for (port, backends) in wanted {
            match self.forwarders.get(&port) {
                Some(forwarder) => {
                    *forwarder.backends.lock().unwrap_or_else(|p| p.into_inner()) = backends;
                }
                None => {
                    let std_listener =
                        match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                            Ok(listener) => listener,
                            Err(error) => {
                                // Held by something else: tried again soon.
                                tracing::debug!(%error, port, "node port");
                                complete = false;
                                continue;
                            }
                        };
                    let listener = std_listener
                        .set_nonblocking(true)
                        .and_then(|()| TcpListener::from_std(std_listener));
                    let Ok(listener) = listener else { continue };
                    let backends = Arc::new(Mutex::new(backends));
                    let task = tokio::spawn(forward(listener, backends.clone()));
                    self.forwarders.insert(port, Forwarder { backends, task });
                }
            }
        }
        complete
    }

    /// Closes every listener.
    pub fn shutdown(&mut self) {
        for (_, forwarder) in self.forwarders.drain() {
            forwarder.task.abort();
        }
    }

    /// The node ports being listened on.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.forwarders.keys().copied().collect();
        ports.sort_unstable();
        ports
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn forward(listener: TcpListener, backends: Arc<Mutex<Vec<SocketAddr>>>) {
    let next = AtomicUsize::new(0);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                let backend = {
                    let list = backends.lock().unwrap_or_else(|p| p.into_inner());
                    if list.is_empty() {
                        continue;
                    }
                    list[next.fetch_add(1, Ordering::Relaxed) % list.len()]
                };
                connections.spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(backend).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
