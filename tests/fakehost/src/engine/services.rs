//! Services as kube-apiserver's service REST storage treats them: field defaults, a
//! clusterIP from K3s' service CIDR, nodePorts for NodePort and LoadBalancer Services
//! (random in 30000–32767, as the real allocator), the allocated values an update keeps
//! (`patchAllocatedValues`: clusterIP, and nodePorts matched by port name — K3K replaces a
//! Service's whole spec on every pass and relies on it), the ones a change of type drops,
//! and the nodePort checks (range, already allocated).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

use super::defaults::{default_field, object_mut};
use crate::errors::{ApiError, Cause};
use crate::kinds::ResourceRef;
use crate::store::StoreInner;

pub const NODE_PORT_MIN: u64 = 30_000;
pub const NODE_PORT_MAX: u64 = 32_767;

/// Node ports any fake host in this process has handed out. Fake hosts of parallel tests
/// share 127.0.0.1, where each serves its virtual clusters on their node ports, so a random
/// pick also avoids the ports its neighbours handed out and ports something else holds.
static HANDED_OUT: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

fn needs_node_port(spec: &Value) -> bool {
    matches!(
        spec.get("type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

fn needs_cluster_ip(spec: &Value) -> bool {
    spec.get("type").and_then(Value::as_str) != Some("ExternalName")
}

fn node_port(port: &Value) -> Option<u64> {
    port.get("nodePort")
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
}

fn ports(spec: &Value) -> Vec<Value> {
    spec.get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// nodePorts of every Service but `except` (namespace, name).
fn used_node_ports(store: &StoreInner, except: (&str, &str)) -> BTreeSet<u64> {
    store
        .list(&ResourceRef::core("services"), None)
        .iter()
        .filter(|s| {
            let at = |p: &str| s.pointer(p).and_then(Value::as_str).unwrap_or_default();
            (at("/metadata/namespace"), at("/metadata/name")) != except
        })
        .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array).cloned())
        .flatten()
        .filter_map(|p| node_port(&p))
        .collect()
}

fn bindable(port: u64) -> bool {
    u16::try_from(port)
        .ok()
        .is_some_and(|p| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok())
}

/// A free nodePort, at random like the real allocator.
fn allocate(used: &BTreeSet<u64>) -> u64 {
    let span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
    let offset = rand::random_range(0..span);
    let candidates: Vec<u64> = (0..span)
        .map(|i| NODE_PORT_MIN + (offset + i) % span)
        .filter(|p| !used.contains(p))
        .collect();
    let mut handed = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let chosen = candidates
        .iter()
        .find(|p| !handed.contains(p) && bindable(**p))
        .or_else(|| candidates.iter().find(|p| bindable(**p)))
        .or_else(|| candidates.first())
        .copied()
        .unwrap_or(NODE_PORT_MAX);
    handed.insert(chosen);
    chosen
}

fn port_defaults(spec: &mut Map<String, Value>, used: &mut BTreeSet<u64>) {
    let wants_node_ports = needs_node_port(&Value::Object(spec.clone()));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_field(port, "protocol", json!("TCP"));
            // An absent or zero targetPort is the port itself.
            let target_unset = match port.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_u64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if target_unset && let Some(number) = port.get("port").cloned() {
                port.insert("targetPort".into(), number);
            }
            if port.get("nodePort").and_then(Value::as_u64) == Some(0) {
                port.remove("nodePort");
            }
            if wants_node_ports && !port.contains_key("nodePort") {
                let free = allocate(used);
                used.insert(free);
                port.insert("nodePort".into(), json!(free));
            }
        }
    }
}

fn type_defaults(spec: &mut Map<String, Value>) {
    default_field(spec, "type", json!("ClusterIP"));
    default_field(spec, "sessionAffinity", json!("None"));
    default_field(spec, "internalTrafficPolicy", json!("Cluster"));
    if needs_node_port(&Value::Object(spec.clone())) {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if spec.get("type").and_then(Value::as_str) == Some("LoadBalancer") {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn allocate_cluster_ip(store: &StoreInner, spec: &mut Map<String, Value>) {
    let used_ips: BTreeSet<String> = store
        .list(&ResourceRef::core("services"), None)
        .iter()
        .filter_map(|s| {
            s.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    // K3s' default service CIDR is 10.43.0.0/16; .0.1 is the kubernetes service.
    let ip = (10u32..65_000)
        .map(|n| format!("10.43.{}.{}", n / 256, n % 256))
        .find(|ip| !used_ips.contains(ip))
        .unwrap_or_else(|| "10.43.255.254".into());
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    spec.insert("ipFamilies".into(), json!(["IPv4"]));
    spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
}

pub(super) fn on_create(store: &StoreInner, object: &mut Value) {
    let (ns, name) = identity(object);
    let mut used = used_node_ports(store, (&ns, &name));
    let Some(spec) = object_mut(object, "spec") else {
        return;
    };
    type_defaults(spec);
    if needs_cluster_ip(&Value::Object(spec.clone())) && !spec.contains_key("clusterIP") {
        allocate_cluster_ip(store, spec);
    }
    used.extend(
        ports(&Value::Object(spec.clone()))
            .iter()
            .filter_map(node_port),
    );
    port_defaults(spec, &mut used);
}

fn identity(object: &Value) -> (String, String) {
    let at = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (at("/metadata/namespace"), at("/metadata/name"))
}

/// An update: what the old object had allocated stays unless the update changed it.
pub(super) fn on_update(store: &StoreInner, current: &Value, next: &mut Value) {
    let (ns, name) = identity(current);
    let old = current.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut used = used_node_ports(store, (&ns, &name));
    let Some(spec) = object_mut(next, "spec") else {
        return;
    };
    type_defaults(spec);
    let new_view = Value::Object(spec.clone());
    if needs_cluster_ip(&old) && needs_cluster_ip(&new_view) {
        let unset = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset {
            for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if let Some(value) = old.get(key) {
                    spec.insert(key.into(), value.clone());
                }
            }
        }
    } else if needs_cluster_ip(&new_view) && !spec.contains_key("clusterIP") {
        allocate_cluster_ip(store, spec);
    }
    let old_ports = ports(&old);
    let mut new_ports = ports(&new_view);
    if needs_node_port(&old) && needs_node_port(&new_view) {
        // patchAllocatedValues: a port without nodePort keeps the one of the old port of
        // the same name, unless another port of the new spec took it.
        let taken: BTreeSet<u64> = new_ports.iter().filter_map(node_port).collect();
        for port in new_ports.iter_mut() {
            if node_port(port).is_some() {
                continue;
            }
            let name = port.get("name").cloned().unwrap_or(json!(""));
            let previous = old_ports
                .iter()
                .find(|p| p.get("name").cloned().unwrap_or(json!("")) == name)
                .and_then(node_port);
            if let Some(previous) = previous.filter(|p| !taken.contains(p)) {
                port["nodePort"] = json!(previous);
            }
        }
    } else if needs_node_port(&old) && !needs_node_port(&new_view) {
        // dropTypeDependentFields: node ports the update did not change go with the type.
        let same = old_ports.len() == new_ports.len()
            && old_ports
                .iter()
                .zip(&new_ports)
                .all(|(a, b)| node_port(a) == node_port(b));
        if same {
            for port in new_ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
        if old.get("externalTrafficPolicy") == spec.get("externalTrafficPolicy") {
            spec.remove("externalTrafficPolicy");
        }
    }
    if spec.contains_key("ports") {
        spec.insert("ports".into(), Value::Array(new_ports.clone()));
    }
    used.extend(new_ports.iter().filter_map(node_port));
    port_defaults(spec, &mut used);
}

/// The nodePort checks of Service validation and allocation, on create and update.
pub(super) fn check_node_ports(
    store: &StoreInner,
    current: Option<&Value>,
    object: &Value,
) -> Result<(), ApiError> {
    let (ns, name) = identity(object);
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let kept: BTreeSet<u64> = current
        .and_then(|c| c.get("spec"))
        .map(ports)
        .unwrap_or_default()
        .iter()
        .filter_map(node_port)
        .collect();
    let used = used_node_ports(store, (&ns, &name));
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let mut seen = BTreeSet::new();
    let mut causes = Vec::new();
    for (index, port) in ports(&spec).iter().enumerate() {
        let Some(number) = node_port(port) else {
            continue;
        };
        let field = format!("spec.ports[{index}].nodePort");
        if !needs_node_port(&spec) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: format!("Forbidden: may not be used when `type` is '{service_type}'"),
                field,
            });
            continue;
        }
        if !seen.insert(number) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: \"{number}\""),
                field,
            });
        } else if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&number) {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {number}: provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}"
                ),
                field,
            });
        } else if used.contains(&number) && !kept.contains(&number) {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {number}: provided port is already allocated"),
                field,
            });
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("", "Service", &name, causes))
    }
}
