//! kubectl's imperative commands, which send protobuf bodies: every object kubectl prints
//! for `--dry-run=client -o json` must be what the fake stores from the protobuf it sends
//! (server defaults may add to it), and RBAC applies to those writes and to `auth can-i`.

use std::path::PathBuf;
use std::time::Duration;

use fakehost::ResourceRef;
use serde_json::{Map, Value};

use crate::api::support::{TestHost, start};

/// JSON without the empty values Go's encoder writes for unset struct fields.
fn pruned(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let map: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| pruned(v).map(|v| (k.clone(), v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|i| pruned(i).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Every leaf of `expected` is in `actual` at the same place.
fn assert_within(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let child = format!("{path}.{key}");
                let got = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{child} missing in {actual:#}"));
                assert_within(value, got, &child);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: {expected} vs {actual}");
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                assert_within(e, a, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

/// `args` plus `flags`, which go before a `--` (after it, everything is the container's).
fn with_flags<'a>(args: &[&'a str], flags: &[&'a str]) -> Vec<&'a str> {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let mut out = args[..split].to_vec();
    out.extend(flags);
    out.extend(&args[split..]);
    out
}

/// Runs `kubectl create ...` for real and checks the stored object against kubectl's own
/// client-side rendering of it.
async fn create_and_compare(t: &TestHost, args: &[&str], resource: ResourceRef, ns: Option<&str>) {
    let dry = with_flags(args, &["--dry-run=client", "-o", "json"]);
    let printed = t.kubectl_ok(&dry).await;
    let rendered: Value =
        serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{args:?}: {e}: {printed}"));
    t.kubectl_ok(args).await;
    let name = rendered["metadata"]["name"].as_str().expect("name");
    let stored = t.host.engine().get(&resource, ns, name).expect("stored");
    let mut expected = pruned(&rendered).expect("object");
    if let Some(map) = expected.as_object_mut() {
        map.remove("status");
    }
    assert_within(&expected, &stored, name);
}

fn core(resource: &str) -> ResourceRef {
    ResourceRef::core(resource)
}

fn rbac(resource: &str) -> ResourceRef {
    ResourceRef::new("rbac.authorization.k8s.io", resource)
}

#[tokio::test]
async fn imperative_creates_send_protobuf_and_store_what_kubectl_means() {
    let t = start().await;
    let pair = t
        .host
        .issue_client_cert("tls.example", &[], Duration::from_secs(3600))
        .expect("cert");
    let cert = t.manifest("tls.crt", &pair.cert_pem);
    let key = t.manifest("tls.key", &pair.key_pem);
    let binary = t.dir.path().join("blob");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x01]).expect("blob");
    let from_blob = format!("--from-file=blob={}", binary.display());
    let dev = Some("dev");

    create_and_compare(
        &t,
        &["create", "namespace", "dev"],
        core("namespaces"),
        None,
    )
    .await;
    let cases: Vec<(Vec<&str>, ResourceRef)> = vec![
        (
            vec![
                "configmap",
                "settings",
                "--from-literal=a=1",
                "--from-literal=b=two words",
                &from_blob,
            ],
            core("configmaps"),
        ),
        (
            vec![
                "secret",
                "generic",
                "creds",
                "--from-literal=user=admin",
                "--type=Opaque",
            ],
            core("secrets"),
        ),
        (
            vec!["secret", "tls", "web-tls", "--cert", &cert, "--key", &key],
            core("secrets"),
        ),
        (vec!["serviceaccount", "robot"], core("serviceaccounts")),
        (
            vec![
                "deployment",
                "web",
                "--image=nginx:1.27",
                "--image=busybox:1",
                "--replicas=3",
                "--port=8080",
            ],
            ResourceRef::new("apps", "deployments"),
        ),
        (
            vec![
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods,deployments.apps",
                "--resource-name=web",
            ],
            rbac("roles"),
        ),
        (
            vec![
                "rolebinding",
                "readers",
                "--role=reader",
                "--user=alice",
                "--group=devs",
                "--serviceaccount=dev:robot",
            ],
            rbac("rolebindings"),
        ),
        (
            vec![
                "quota",
                "small",
                "--hard=cpu=2,memory=1Gi,pods=10",
                "--scopes=NotTerminating",
            ],
            core("resourcequotas"),
        ),
        (
            vec!["service", "clusterip", "api", "--tcp=80:8080", "--tcp=443"],
            core("services"),
        ),
        (
            vec![
                "service",
                "nodeport",
                "edge",
                "--tcp=80:8080",
                "--node-port=30080",
            ],
            core("services"),
        ),
        (
            vec![
                "job",
                "once",
                "--image=busybox:1",
                "--",
                "sh",
                "-c",
                "echo hi",
            ],
            ResourceRef::new("batch", "jobs"),
        ),
        (
            vec![
                "cronjob",
                "tick",
                "--image=busybox:1",
                "--schedule=*/5 * * * *",
                "--",
                "date",
            ],
            ResourceRef::new("batch", "cronjobs"),
        ),
        (
            vec![
                "poddisruptionbudget",
                "web",
                "--selector=app=web",
                "--min-available=50%",
            ],
            ResourceRef::new("policy", "poddisruptionbudgets"),
        ),
    ];
    for (args, resource) in cases {
        let mut full = vec!["create"];
        full.extend(args);
        let full = with_flags(&full, &["-n", "dev"]);
        create_and_compare(&t, &full, resource, dev).await;
    }
    let cluster_scoped: Vec<(Vec<&str>, ResourceRef)> = vec![
        (
            vec![
                "clusterrole",
                "logs",
                "--verb=get",
                "--non-resource-url=/logs/*",
            ],
            rbac("clusterroles"),
        ),
        (
            vec![
                "clusterrole",
                "aggregate",
                "--aggregation-rule=rbac.example.com/aggregate=true",
            ],
            rbac("clusterroles"),
        ),
        (
            vec![
                "clusterrolebinding",
                "log-readers",
                "--clusterrole=logs",
                "--user=bob",
                "--group=ops",
            ],
            rbac("clusterrolebindings"),
        ),
    ];
    for (args, resource) in cluster_scoped {
        let mut full = vec!["create"];
        full.extend(args);
        create_and_compare(&t, &full, resource, None).await;
    }

    // The server's side of it: defaults on top, and the Job's generated selector.
    let job = t
        .host
        .engine()
        .get(&ResourceRef::new("batch", "jobs"), dev, "once")
        .expect("job");
    let uid = job["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(job["spec"]["backoffLimit"], 6);
    let listed = t.kubectl_ok(&["get", "jobs,cronjobs", "-n", "dev"]).await;
    assert!(
        listed.contains("once") && listed.contains("tick"),
        "{listed}"
    );
    let secret = t
        .kubectl_ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            "dev",
            "-o",
            "jsonpath={.data.user}",
        ])
        .await;
    assert_eq!(secret, "YWRtaW4=");
}

/// Writes a kubeconfig for `user` in `groups` and returns its path.
fn kubeconfig_as(t: &TestHost, user: &str, groups: &[&str]) -> PathBuf {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let yaml = t.host.kubeconfig_for(user, &groups).expect("kubeconfig");
    PathBuf::from(t.manifest(&format!("{user}.kubeconfig"), &yaml))
}

async fn kubectl_as(t: &TestHost, kubeconfig: &PathBuf, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(t.dir.path().join("cache-as"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn host_rbac_applies_to_protobuf_writes_and_can_i_via_either_group() {
    let t = start().await;
    for ns in ["team-a", "team-b", "other"] {
        t.kubectl_ok(&["create", "namespace", ns]).await;
    }
    t.kubectl_ok(&[
        "create",
        "rolebinding",
        "edit-a",
        "--clusterrole=edit",
        "--group=group-a",
        "-n",
        "team-a",
    ])
    .await;
    t.kubectl_ok(&[
        "create",
        "rolebinding",
        "edit-b",
        "--clusterrole=edit",
        "--group=group-b",
        "-n",
        "team-b",
    ])
    .await;
    // One certificate, two O attributes: both groups must count.
    let carol = kubeconfig_as(&t, "carol", &["group-a", "group-b"]);

    assert_eq!(
        kubectl_as(
            &t,
            &carol,
            &["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"]
        )
        .await
        .1,
        r#"["group-a","group-b","system:authenticated"]"#
    );
    for ns in ["team-a", "team-b"] {
        let (ok, out, err) = kubectl_as(
            &t,
            &carol,
            &["auth", "can-i", "create", "configmaps", "-n", ns],
        )
        .await;
        assert!(ok && out == "yes", "{ns}: {out} {err}");
        let (ok, _, err) = kubectl_as(
            &t,
            &carol,
            &["create", "configmap", "c", "--from-literal=k=v", "-n", ns],
        )
        .await;
        assert!(ok, "{ns}: {err}");
    }
    let (ok, out, _) = kubectl_as(
        &t,
        &carol,
        &["auth", "can-i", "create", "configmaps", "-n", "other"],
    )
    .await;
    assert!(!ok && out == "no");
    let (ok, _, err) = kubectl_as(
        &t,
        &carol,
        &[
            "create",
            "configmap",
            "c",
            "--from-literal=k=v",
            "-n",
            "other",
        ],
    )
    .await;
    assert!(!ok, "denied");
    assert!(
        err.contains(r#"configmaps is forbidden: User "carol" cannot create resource "configmaps" in API group "" in the namespace "other""#),
        "{err}"
    );
    let (ok, _, err) = kubectl_as(&t, &carol, &["create", "namespace", "mine"]).await;
    assert!(!ok && err.contains("forbidden"), "{err}");

    let (_, rules, err) =
        kubectl_as(&t, &carol, &["auth", "can-i", "--list", "-n", "team-a"]).await;
    assert!(
        rules.contains("configmaps") && rules.contains("deployments.apps"),
        "{rules} {err}"
    );
    let (_, rules, _) = kubectl_as(&t, &carol, &["auth", "can-i", "--list", "-n", "other"]).await;
    assert!(!rules.contains("configmaps"), "{rules}");

    // The admin, by group system:masters.
    assert_eq!(
        t.kubectl_ok(&["auth", "can-i", "delete", "nodes"])
            .await
            .trim(),
        "yes"
    );
    assert_eq!(
        t.kubectl_ok(&["auth", "can-i", "get", "/healthz"])
            .await
            .trim(),
        "yes"
    );
}

/// POSTs `body` as protobuf and returns the status code and the Status message.
async fn post_protobuf(t: &TestHost, path: &str, body: Vec<u8>) -> (u16, String) {
    let request = http::Request::post(path)
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header("accept", "application/json")
        .body(kube::client::Body::from(body))
        .expect("request");
    let response = t.client.send(request).await.expect("sent");
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    let status: Value = serde_json::from_slice(&bytes).expect("a Status");
    (
        code,
        status["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// `k8s\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw: {metadata{name}}}.
fn envelope(api_version: &str, kind: &str, name: &str) -> Vec<u8> {
    let field =
        |n: u8, bytes: &[u8]| [vec![n << 3 | 2, bytes.len() as u8], bytes.to_vec()].concat();
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    let object = field(1, &field(1, name.as_bytes()));
    [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &object)].concat()
}

#[tokio::test]
async fn protobuf_is_for_built_in_kinds_only() {
    let t = crate::api::support::start_with_k3k().await;
    let (code, message) = post_protobuf(
        &t,
        "/apis/k3k.io/v1beta1/namespaces/default/clusters",
        envelope("k3k.io/v1beta1", "Cluster", "c1"),
    )
    .await;
    assert_eq!(code, 415, "{message}");
    let (code, message) = post_protobuf(
        &t,
        "/api/v1/namespaces/default/configmaps",
        b"k8s\0\x0a\xff".to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("could not be decoded"), "{message}");
    let (code, message) = post_protobuf(
        &t,
        "/api/v1/namespaces/default/configmaps",
        envelope("v1", "ConfigMap", "raw"),
    )
    .await;
    assert_eq!(code, 201, "{message}");
    // The body's kind must match the endpoint's, as for JSON.
    let (code, message) = post_protobuf(
        &t,
        "/api/v1/namespaces/default/secrets",
        envelope("v1", "ConfigMap", "wrong"),
    )
    .await;
    assert_eq!(code, 400, "{message}");
}
