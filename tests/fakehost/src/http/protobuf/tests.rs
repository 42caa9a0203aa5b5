//! Decoder tests: real kubectl bytes, and hand-built messages for each wire-to-JSON rule.

use serde_json::json;

use super::*;

/// `kubectl create deployment web --image=nginx --replicas=0` (kubectl v1.33, captured with -v=8).
const KUBECTL_DEPLOYMENT: &str = "\
    6b3873000a150a07617070732f7631120a4465706c6f796d656e7412ab010a1f\
    0a0377656212001a0022002a003200380042005a0a0a03617070120377656212\
    7a0800120c0a0a0a0361707012037765621a600a1c0a0012001a0022002a0032\
    00380042005a0a0a036170701203776562124012220a056e67696e7812056e67\
    696e782a0042006a007200800100880100900100a201001a00320042004a0052\
    005800600068008201008a01009a0100c2010022020a00280038001a0c080010\
    0018002000280038001a002200";

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// Protobuf encoding helpers for hand-built messages.
fn tag(number: u32, wire: u8) -> Vec<u8> {
    varint_bytes(u64::from(number) << 3 | u64::from(wire))
}

fn varint_bytes(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn len(number: u32, bytes: &[u8]) -> Vec<u8> {
    [
        tag(number, 2),
        varint_bytes(bytes.len() as u64),
        bytes.to_vec(),
    ]
    .concat()
}

fn int(number: u32, value: i64) -> Vec<u8> {
    [tag(number, 0), varint_bytes(value as u64)].concat()
}

fn envelope_of(api_version: &str, kind: &str, object: &[u8]) -> Vec<u8> {
    let type_meta = [len(1, api_version.as_bytes()), len(2, kind.as_bytes())].concat();
    [
        b"k8s\0".to_vec(),
        len(1, &type_meta),
        len(2, object),
        len(3, b""),
        len(4, b""),
    ]
    .concat()
}

#[test]
fn decodes_kubectls_deployment() {
    let decoded = decode(&unhex(KUBECTL_DEPLOYMENT), ("", "")).expect("decodes");
    assert!(decoded.unknown.is_empty(), "{:?}", decoded.unknown);
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
                },
            },
        })
    );
}

#[test]
fn reads_an_access_review() {
    let attrs = [len(1, b"dev"), len(2, b"create"), len(5, b"pods")].concat();
    let object = [len(1, b""), len(2, &len(1, &attrs))].concat();
    let body = envelope_of(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &object,
    );
    let decoded = decode(&body, ("", "")).expect("decodes");
    assert_eq!(
        decoded.object["spec"],
        json!({"resourceAttributes": {"namespace": "dev", "verb": "create", "resource": "pods"}})
    );
}

#[test]
fn maps_wire_types_to_json() {
    // Secret: data bytes → base64, stringData, immutable=false kept (a pointer).
    let entry = |k: &[u8], v: &[u8]| [len(1, k), len(2, v)].concat();
    let meta = [
        len(1, b"s"),
        len(8, &[int(1, 1_700_000_000), int(2, 5)].concat()),
        len(11, &entry(b"team", b"a")),
        len(11, &entry(b"tier", b"b")),
    ]
    .concat();
    let secret = [
        len(1, &meta),
        len(2, &entry(b"key", &[0xff, 0x00, 0x01])),
        len(3, b"Opaque"),
        int(5, 0),
    ]
    .concat();
    let decoded = decode(&envelope_of("v1", "Secret", &secret), ("", "")).expect("decodes");
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "creationTimestamp": "2023-11-14T22:13:20Z",
                         "labels": {"team": "a", "tier": "b"}},
            "data": {"key": "/wAB"}, "type": "Opaque", "immutable": false,
        })
    );

    // Service: IntOrString both ways, a negative int32, a ResourceQuota's quantities.
    let port = |target: Vec<u8>| {
        len(
            1,
            &[len(1, b"p"), int(3, 80), len(4, &target), int(5, 0)].concat(),
        )
    };
    let spec = [
        port([int(1, 0), int(2, 8080)].concat()),
        port([int(1, 1), len(3, b"http")].concat()),
        int(12, -1),
    ]
    .concat();
    let service = [len(1, &len(1, b"svc")), len(2, &spec)].concat();
    let decoded = decode(&envelope_of("v1", "Service", &service), ("", "")).expect("decodes");
    assert_eq!(
        decoded.object["spec"],
        json!({"ports": [{"name": "p", "port": 80, "targetPort": 8080},
                         {"name": "p", "port": 80, "targetPort": "http"}],
               "healthCheckNodePort": -1})
    );
    let hard = [len(1, b"cpu"), len(2, &len(1, b"500m"))].concat();
    let quota = [len(1, &len(1, b"q")), len(2, &len(1, &hard))].concat();
    let decoded = decode(&envelope_of("v1", "ResourceQuota", &quota), ("", "")).expect("decodes");
    assert_eq!(decoded.object["spec"], json!({"hard": {"cpu": "500m"}}));
}

#[test]
fn inline_structs_merge_into_their_parent_and_unknown_fields_are_reported() {
    // EnvVar{valueFrom{configMapKeyRef{LocalObjectReference{name}, key}}} and field 99.
    let selector = [len(1, &len(1, b"cm")), len(2, b"k")].concat();
    let env = [len(1, b"E"), len(3, &len(3, &selector))].concat();
    let container = [len(1, b"c"), len(7, &env), int(99, 1)].concat();
    let pod = [len(1, &len(1, b"p")), len(2, &len(2, &container))].concat();
    let decoded = decode(&envelope_of("v1", "Pod", &pod), ("", "")).expect("decodes");
    assert_eq!(
        decoded.object["spec"]["containers"][0]["env"],
        json!([{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}])
    );
    assert_eq!(decoded.unknown, vec![".spec.containers#99".to_string()]);
}

#[test]
fn refuses_what_it_cannot_read() {
    assert!(matches!(
        decode(b"{\"kind\": \"Pod\"}", ("v1", "Pod")),
        Err(DecodeError::Malformed(_))
    ));
    let truncated = &unhex(KUBECTL_DEPLOYMENT)[..60];
    assert!(matches!(
        decode(truncated, ("", "")),
        Err(DecodeError::Malformed(_))
    ));
    let custom = envelope_of("k3k.io/v1beta1", "Cluster", &len(1, &len(1, b"c")));
    assert_eq!(
        decode(&custom, ("", "")).err(),
        Some(DecodeError::UnknownKind {
            api_version: "k3k.io/v1beta1".into(),
            kind: "Cluster".into()
        })
    );
    // No type in the envelope: the endpoint's kind is used.
    let bare = [b"k8s\0".to_vec(), len(2, &len(1, &len(1, b"ns")))].concat();
    let decoded = decode(&bare, ("v1", "Namespace")).expect("decodes");
    assert_eq!(decoded.object["metadata"]["name"], "ns");
}
