//! Credentials for a virtual cluster: reading K3K's bootstrap CAs, minting client
//! certificates from the virtual cluster's client CA, and writing kubeconfigs around them.
//! Pure functions: no network, no clock (callers pass `not_before`), no storage.
//!
//! How a virtual cluster authenticates (see docs/k3k-notes.md, "Getting credentials"): its
//! API server trusts client certificates signed by the `clientCA` of the Secret
//! `k3k-<cluster>-bootstrap`, and maps Subject CN to the user and every Subject O to a group.
//! Its serving certificate chains to `serverCA`, which a kubeconfig pins as
//! `certificate-authority-data`.
//!
//! Invariants:
//! - The client CA key is never stored and never printed: it is read from the host Secret
//!   when a certificate is minted and dropped afterwards; [`Bootstrap`]'s `Debug` redacts it,
//!   and no error message echoes bootstrap content.
//! - Minted private keys are handed to the caller once and never stored by kaas either
//!   (`MintedCert`'s `Debug` redacts the key).
//! - Client certificates cannot be revoked (Kubernetes has no CRL/OCSP for them), so the
//!   only control over a leaked one is its expiry: callers must keep lifetimes short, and a
//!   certificate never outlives the CA that signed it.
//! - Each group is its own O attribute, in order, and the issuer name is the CA's subject
//!   byte for byte, so the API server sees exactly the identity that was asked for.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, SigningKey as _,
};
use rustls::pki_types::PrivateKeyDer;
use serde::Serialize;
use serde_json::Value;
use x509_parser::der_parser::asn1_rs::{Any, FromDer as _};
use x509_parser::prelude::X509Certificate;

use crate::config::Secret;

/// How far `notBefore` is back-dated, so that an API server whose clock runs a little behind
/// kaas's does not refuse a certificate minted a moment ago as "not yet valid".
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The identity kaas itself uses inside a virtual cluster.
const ADMIN_USER: &str = "kaas";
/// Kubernetes' built-in superuser group (bound to `cluster-admin`; RBAC cannot restrict it).
const ADMIN_GROUP: &str = "system:masters";

/// Why bootstrap data could not be read or a credential could not be minted. Messages name
/// the bootstrap field at fault but never include its content (which may be a private key).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("bootstrap data is not valid JSON: {0}")]
    BootstrapNotJson(String),
    #[error("bootstrap data has no {0}")]
    Missing(&'static str),
    #[error("bootstrap {field} is malformed: {reason}")]
    Malformed { field: &'static str, reason: String },
    #[error("bootstrap clientCAKey does not belong to the clientCA certificate")]
    KeyMismatch,
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    #[error("the client CA is no longer valid at {0}")]
    CaExpired(Timestamp),
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rcgen produced DER that `rewrite_names` could not take apart (a bug, not bad input).
    #[error("re-encoding the certificate failed: {0}")]
    Encoding(String),
    #[error("kubeconfig serialization failed: {0}")]
    Kubeconfig(String),
}

/// What kaas needs from `k3k-<cluster>-bootstrap` to hand out access to a virtual cluster.
/// Built only by [`parse_bootstrap`], which checks that the client CA key belongs to the
/// client CA.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// Trust root for the virtual cluster's serving certificate (PEM).
    pub server_ca_pem: String,
    /// The CA whose certificates the virtual cluster accepts from clients (PEM).
    pub client_ca_pem: String,
    /// Its private key; only [`mint_client_certificate`] reads it.
    client_ca_key_pem: Secret<String>,
}

/// A freshly minted client certificate and its private key (both PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct MintedCert {
    pub cert_pem: String,
    /// PKCS#8 ECDSA P-256 key. Goes into the kubeconfig handed to the caller; never stored.
    pub key_pem: String,
    /// Lower-case hex of the serial number, for audit records (certificates can't be revoked,
    /// but a serial ties an API-server audit line to the kubeconfig that was issued).
    pub serial_hex: String,
    /// End of validity, in whole seconds as X.509 stores it.
    pub not_after: Timestamp,
}

impl std::fmt::Debug for MintedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// The user and groups the reconciler authenticates as inside a virtual cluster. Its
/// certificates are minted per use and never stored.
pub fn admin_identity() -> (&'static str, Vec<String>) {
    (ADMIN_USER, vec![ADMIN_GROUP.to_string()])
}

/// Parses the `bootstrap` value of `k3k-<cluster>-bootstrap` (already base64-decoded from the
/// Secret's `data`): JSON with `serverCA`, `clientCA` and `clientCAKey`, each
/// `{"Timestamp": .., "Content": <PEM>}`. Other fields (`serverCAKey`, etcd CAs) are ignored:
/// kaas has no use for them and does not keep them.
///
/// Checks that serverCA and clientCA are certificates, that clientCA is a CA, and that
/// clientCAKey is its key, so a broken Secret is reported here rather than as a certificate
/// the virtual cluster refuses later.
pub fn parse_bootstrap(secret_data_value: &[u8]) -> Result<Bootstrap, CredentialError> {
    // Parsed as an untyped Value and walked by hand: a typed deserializer's error can quote
    // the offending value, which here may be a private key.
    let json: Value = serde_json::from_slice(secret_data_value)
        .map_err(|e| CredentialError::BootstrapNotJson(e.to_string()))?;
    if !json.is_object() {
        return Err(CredentialError::BootstrapNotJson(
            "top level is not an object".into(),
        ));
    }
    let server_ca_pem = entry_content(&json, "serverCA")?;
    let client_ca_pem = entry_content(&json, "clientCA")?;
    let client_ca_key_pem = entry_content(&json, "clientCAKey")?;

    first_certificate_der(&server_ca_pem, "serverCA")?;
    let client_ca_der = first_certificate_der(&client_ca_pem, "clientCA")?;
    let client_ca = parse_certificate(&client_ca_der, "clientCA")?;
    if !client_ca.is_ca() {
        return Err(malformed(
            "clientCA",
            "certificate is not a CA (basicConstraints)",
        ));
    }
    let key = load_key(&client_ca_key_pem, "clientCAKey")?;
    if *client_ca.public_key().subject_public_key.data != *key.public_key_raw() {
        return Err(CredentialError::KeyMismatch);
    }
    Ok(Bootstrap {
        server_ca_pem,
        client_ca_pem,
        client_ca_key_pem: Secret::new(client_ca_key_pem),
    })
}

/// Mints a client certificate for `user` in `groups`, signed by the bootstrap's client CA:
/// a new ECDSA P-256 key, Subject `O=<group>...` (one O per group, in order) then `CN=<user>`,
/// EKU clientAuth only, a random positive 128-bit serial, valid from `not_before` minus
/// [`CLOCK_SKEW`] for `lifetime` after `not_before`, but never past the CA's own expiry.
pub fn mint_client_certificate(
    b: &Bootstrap,
    user: &str,
    groups: &[String],
    not_before: Timestamp,
    lifetime: Duration,
) -> Result<MintedCert, CredentialError> {
    // The API server refuses a certificate with an empty CN; say so here instead.
    if user.is_empty() {
        return Err(CredentialError::InvalidRequest("user is empty".into()));
    }
    if lifetime < Duration::from_secs(1) {
        return Err(CredentialError::InvalidRequest(
            "lifetime is shorter than one second".into(),
        ));
    }
    let ca_der = first_certificate_der(&b.client_ca_pem, "clientCA")?;
    let ca = parse_certificate(&ca_der, "clientCA")?;
    let ca_key = load_key(b.client_ca_key_pem.expose(), "clientCAKey")?;

    let start = not_before.as_second().saturating_sub(secs(CLOCK_SKEW));
    let ca_not_after = ca.validity().not_after.timestamp();
    if ca_not_after <= not_before.as_second() {
        return Err(CredentialError::CaExpired(not_before));
    }
    // A certificate outliving its CA would only fail later, and less clearly.
    let end = not_before
        .as_second()
        .saturating_add(secs(lifetime))
        .min(ca_not_after);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let serial = random_serial();
    let mut params = CertificateParams::default();
    // rcgen keeps one value per attribute type, so it can't express one O per group: this
    // subject is a placeholder that `rewrite_names` replaces below.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    // rcgen's date type is `time::OffsetDateTime`; built from the epoch so kaas needn't
    // depend on `time`.
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + unix_seconds(start)?;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + unix_seconds(end)?;
    let issuer = Issuer::from_ca_cert_der(&ca_der.as_slice().into(), &ca_key)?;
    let draft = params.signed_by(&key, &issuer)?;

    let der = rewrite_names(
        draft.der(),
        ca.subject().as_raw(),
        &subject_der(user, groups),
        &ca_key,
    )?;
    Ok(MintedCert {
        cert_pem: certificate_pem(&der),
        key_pem: key.serialize_pem(),
        serial_hex: hex::encode(serial),
        not_after: Timestamp::from_second(end)
            .map_err(|e| CredentialError::InvalidRequest(format!("notAfter: {e}")))?,
    })
}

/// A complete kubeconfig with one cluster, one user and one context (named after the
/// cluster, and current), carrying the server CA, the certificate and its key inline.
pub fn kubeconfig_yaml(
    cluster_name: &str,
    server_url: &str,
    server_ca_pem: &str,
    user: &str,
    cert: &MintedCert,
) -> Result<String, CredentialError> {
    let config = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: vec![NamedCluster {
            name: cluster_name,
            cluster: ClusterEntry {
                server: server_url,
                certificate_authority_data: STANDARD.encode(server_ca_pem),
            },
        }],
        users: vec![NamedUser {
            name: user,
            user: UserEntry {
                client_certificate_data: STANDARD.encode(&cert.cert_pem),
                client_key_data: STANDARD.encode(&cert.key_pem),
            },
        }],
        contexts: vec![NamedContext {
            name: cluster_name,
            context: ContextEntry {
                cluster: cluster_name,
                user,
            },
        }],
        current_context: cluster_name,
    };
    serde_yaml::to_string(&config).map_err(|e| CredentialError::Kubeconfig(e.to_string()))
}

/// A kubeconfig whose user is kubectl's exec plugin `kaas credential --server URL
/// --workspace WS` (client.authentication.k8s.io/v1): no certificate and nothing secret; the
/// plugin fetches short-lived tokens from kaas's issuer. `interactiveMode: Never`: the plugin
/// never reads standard input (it says on stderr when the user must sign in again).
pub fn exec_kubeconfig_yaml(
    cluster_name: &str,
    server_url: &str,
    server_ca_pem: &str,
    user: &str,
    kaas_url: &str,
    workspace: &str,
) -> Result<String, CredentialError> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": cluster_name,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(server_ca_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "kaas",
                    "args": ["credential", "--server", kaas_url, "--workspace", workspace],
                    "interactiveMode": "Never",
                    "provideClusterInfo": false,
                    "installHint": "kubectl gets its tokens from kaas: install the kaas binary \
                        and run `kaas login` first, or download a kubeconfig with a client \
                        certificate instead.",
                },
            },
        }],
        "contexts": [{
            "name": cluster_name,
            "context": {"cluster": cluster_name, "user": user},
        }],
        "current-context": cluster_name,
    });
    serde_yaml::to_string(&config).map_err(|e| CredentialError::Kubeconfig(e.to_string()))
}

// --- kubeconfig (clientcmd v1) -----------------------------------------------------------

#[derive(Serialize)]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: Vec<NamedCluster<'a>>,
    users: Vec<NamedUser<'a>>,
    contexts: Vec<NamedContext<'a>>,
    #[serde(rename = "current-context")]
    current_context: &'a str,
}

#[derive(Serialize)]
struct NamedCluster<'a> {
    name: &'a str,
    cluster: ClusterEntry<'a>,
}

#[derive(Serialize)]
struct ClusterEntry<'a> {
    server: &'a str,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: UserEntry,
}

#[derive(Serialize)]
struct UserEntry {
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: String,
    #[serde(rename = "client-key-data")]
    client_key_data: String,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    name: &'a str,
    context: ContextEntry<'a>,
}

#[derive(Serialize)]
struct ContextEntry<'a> {
    cluster: &'a str,
    user: &'a str,
}

// --- bootstrap parsing -------------------------------------------------------------------

fn malformed(field: &'static str, reason: impl Into<String>) -> CredentialError {
    CredentialError::Malformed {
        field,
        reason: reason.into(),
    }
}

/// `json[field].Content` as PEM text. K3K stores the PEM itself; K3s' own bootstrap
/// encoding (Go `[]byte` in JSON) is base64 of it, accepted too so that either source works.
fn entry_content(json: &Value, field: &'static str) -> Result<String, CredentialError> {
    let entry = json.get(field).ok_or(CredentialError::Missing(field))?;
    let content = entry
        .get("Content")
        .ok_or_else(|| malformed(field, "no Content"))?
        .as_str()
        .ok_or_else(|| malformed(field, "Content is not a string"))?;
    if content.trim_start().starts_with("-----BEGIN") {
        return Ok(content.to_string());
    }
    let decoded = STANDARD
        .decode(content.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|text| text.trim_start().starts_with("-----BEGIN"));
    decoded.ok_or_else(|| malformed(field, "Content is neither PEM nor base64-encoded PEM"))
}

/// The DER of the first CERTIFICATE block of `pem` (a CA file may be a bundle).
fn first_certificate_der(pem: &str, field: &'static str) -> Result<Vec<u8>, CredentialError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| malformed(field, "not PEM"))?;
    if block.label != "CERTIFICATE" {
        return Err(malformed(
            field,
            format!("PEM block is {:?}, not CERTIFICATE", block.label),
        ));
    }
    parse_certificate(&block.contents, field)?;
    Ok(block.contents)
}

fn parse_certificate<'a>(
    der: &'a [u8],
    field: &'static str,
) -> Result<X509Certificate<'a>, CredentialError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| malformed(field, format!("not an X.509 certificate: {e}")))
}

/// Loads a CA private key in any PEM form K3s or K3K may write: PKCS#8 (`PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`, what Go's K3s writes for its ECDSA CAs). rcgen on ring only reads
/// PKCS#8, so a SEC1 key is wrapped into PKCS#8 first.
fn load_key(pem: &str, field: &'static str) -> Result<KeyPair, CredentialError> {
    // Only fixed messages here: the details of a failed key parse are nobody's business.
    let key = rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|_| malformed(field, "not PEM"))?
        .ok_or_else(|| malformed(field, "no private key PEM block"))?;
    match key {
        PrivateKeyDer::Pkcs8(pkcs8) => KeyPair::try_from(pkcs8.secret_pkcs8_der())
            .map_err(|_| malformed(field, "unsupported or invalid PKCS#8 private key")),
        PrivateKeyDer::Sec1(sec1) => [OID_P256, OID_P384]
            .iter()
            .find_map(|curve| {
                KeyPair::try_from(sec1_to_pkcs8(sec1.secret_sec1_der(), curve).as_slice()).ok()
            })
            .ok_or_else(|| malformed(field, "unsupported or invalid EC private key")),
        _ => Err(malformed(
            field,
            "unsupported private key type (want ECDSA or PKCS#8)",
        )),
    }
}

/// DER of the named-curve OIDs prime256v1 (1.2.840.10045.3.1.7) and secp384r1 (1.3.132.0.34).
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// RFC 5208 PrivateKeyInfo { version 0, AlgorithmIdentifier { id-ecPublicKey, curve },
/// OCTET STRING { the RFC 5915 ECPrivateKey } }. ring checks the inner key against the curve.
fn sec1_to_pkcs8(sec1: &[u8], curve_oid: &[u8]) -> Vec<u8> {
    let algorithm = tlv(TAG_SEQUENCE, &[OID_EC_PUBLIC_KEY, curve_oid].concat());
    let version = [0x02, 0x01, 0x00];
    tlv(
        TAG_SEQUENCE,
        &[&version[..], &algorithm, &tlv(TAG_OCTET_STRING, sec1)].concat(),
    )
}

// --- certificate construction ------------------------------------------------------------

/// 16 random bytes with the top bit clear (serials are positive INTEGERs) and a non-zero
/// first byte (so the DER stays 16 bytes and `serial_hex` matches the encoded serial).
fn random_serial() -> [u8; 16] {
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f).max(1);
    serial
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Unix seconds as a duration since the epoch; X.509 validity before 1970 is not a thing
/// kaas mints.
fn unix_seconds(unix: i64) -> Result<Duration, CredentialError> {
    u64::try_from(unix)
        .map(Duration::from_secs)
        .map_err(|_| CredentialError::InvalidRequest("validity starts before 1970".into()))
}

const TAG_OCTET_STRING: u8 = 0x04;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
/// `[0] EXPLICIT Version` at the start of a v2/v3 TBSCertificate.
const TAG_VERSION: u8 = 0xa0;
/// DER of the attribute types id-at-organizationName (2.5.4.10) and id-at-commonName (2.5.4.3).
const OID_ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// A DER TLV with a one-byte tag and a definite, minimal length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8); // fits: checked just above
    } else {
        let bytes = len.to_be_bytes();
        let significant = bytes
            .get(bytes.iter().take_while(|b| **b == 0).count()..)
            .unwrap_or_default();
        out.push(0x80 | significant.len() as u8); // at most size_of::<usize>()
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// The Subject Name: one single-valued RDN per group (O, UTF8String, in order), then CN —
/// the order Go's `pkix.Name.ToRDNSequence` produces, which is what K3s and kubeadm mint.
fn subject_der(user: &str, groups: &[String]) -> Vec<u8> {
    let rdn = |oid: &[u8], value: &str| {
        let attribute = [oid, &tlv(TAG_UTF8_STRING, value.as_bytes())].concat();
        tlv(TAG_SET, &tlv(TAG_SEQUENCE, &attribute))
    };
    let mut rdns: Vec<u8> = groups
        .iter()
        .flat_map(|group| rdn(OID_ORGANIZATION, group))
        .collect();
    rdns.extend(rdn(OID_COMMON_NAME, user));
    tlv(TAG_SEQUENCE, &rdns)
}

/// The TLVs directly inside `content`, each as its full encoding.
fn elements(mut content: &[u8]) -> Result<Vec<&[u8]>, CredentialError> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (rest, _) = Any::from_der(content).map_err(|e| internal_der(&e))?;
        let (element, remaining) = content.split_at(content.len() - rest.len());
        out.push(element);
        content = remaining;
    }
    Ok(out)
}

/// The content octets of a single TLV with the given tag.
fn content_of(encoded: &[u8], tag: u8) -> Result<&[u8], CredentialError> {
    if encoded.first() != Some(&tag) {
        return Err(internal_der(&format!("expected tag {tag:#04x}")));
    }
    let (_, any) = Any::from_der(encoded).map_err(|e| internal_der(&e))?;
    Ok(any.data)
}

fn internal_der(e: &dyn std::fmt::Display) -> CredentialError {
    CredentialError::Encoding(e.to_string())
}

/// Replaces the issuer and subject of rcgen's certificate and signs the result again with
/// the CA key. The subject is how one O per group gets in (see `subject_der`); the issuer is
/// the CA's subject byte for byte, because clients match issuer to CA by raw bytes and
/// rcgen re-encodes the name it parsed from the CA.
fn rewrite_names(
    cert_der: &[u8],
    issuer: &[u8],
    subject: &[u8],
    ca_key: &KeyPair,
) -> Result<Vec<u8>, CredentialError> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let [tbs, algorithm, _signature] = elements(content_of(cert_der, TAG_SEQUENCE)?)?[..] else {
        return Err(internal_der(&"certificate is not three elements"));
    };
    // TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature, issuer, validity,
    //                               subject, subjectPublicKeyInfo, extensions... }
    let mut fields = elements(content_of(tbs, TAG_SEQUENCE)?)?;
    let base = usize::from(fields.first().and_then(|f| f.first()) == Some(&TAG_VERSION));
    let (issuer_at, subject_at) = (base + 2, base + 4);
    if fields.len() <= subject_at + 1 {
        return Err(internal_der(&"TBSCertificate is too short"));
    }
    for (at, value) in [(issuer_at, issuer), (subject_at, subject)] {
        if let Some(field) = fields.get_mut(at) {
            *field = value;
        }
    }
    let tbs = tlv(TAG_SEQUENCE, &fields.concat());
    let signature = ca_key.sign(&tbs)?;
    let signature_bits = [&[0u8][..], &signature].concat(); // no unused bits
    Ok(tlv(
        TAG_SEQUENCE,
        &[&tbs[..], algorithm, &tlv(TAG_BIT_STRING, &signature_bits)].concat(),
    ))
}

fn certificate_pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    // 64 characters per line (RFC 7468); base64 output is ASCII, so chunks are whole chars.
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rcgen::BasicConstraints;
    use rustls::RootCertStore;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use serde_json::json;

    use super::*;

    /// Test-only keys in the SEC1 form Go's K3s writes for its CAs (`openssl ecparam
    /// -genkey`: with curve parameters and public key, as Go's `MarshalECPrivateKey`).
    const SEC1_P256: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIPsyfp8GF5Q+Vd3nfySDw8gn6rOahoKTpAE2YhNhWguLoAoGCCqGSM49
AwEHoUQDQgAEjNGFkGEkPnUw3UpXA74ZX93EnV7wIgToRrfdlMgwRYE/zLaS2+5K
qKLkY0+zPM54mEhkjP7qp16V4SfSv0Lb2g==
-----END EC PRIVATE KEY-----
";
    const SEC1_P384: &str = "-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDDPYyhhEdS0YlTGZcnSVc8kXi80tzcvsCcUjtSgngLkKregaJ+lbYvN
0eKCRGFcPwigBwYFK4EEACKhZANiAAT/DV/KXBdBHzBxwF1pIqykO6ryfPVJFkrK
1KH5xAQQRs7qJ7M8ucCs5Ko+Jqt3cBjs1azAHcah4iNfKuTx6mDNzADzbC2+2MRd
xKSAH9zohojPz6nLNIUYpHCEDldsFKU=
-----END EC PRIVATE KEY-----
";

    const NOW: i64 = 1_790_000_000;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// A self-signed CA like K3s' (CN with '@', so UTF8String), valid `days` from a year
    /// before NOW; returns (cert PEM, key PEM as given).
    fn ca_with_key(cn: &str, key_pem: &str, days: u64) -> String {
        let key = load_key(key_pem, "test").unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let start = u64::try_from(NOW).unwrap() - 365 * 86_400;
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(start);
        params.not_after =
            rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(start + days * 86_400);
        params.self_signed(&key).unwrap().pem()
    }

    fn ca(cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap().serialize_pem();
        (ca_with_key(cn, &key, 3650), key)
    }

    fn entry(pem: &str) -> Value {
        json!({"Timestamp": "2026-09-21T12:00:00Z", "Content": pem})
    }

    fn bootstrap_json(server: &(String, String), client: &(String, String)) -> Value {
        json!({
            "serverCA": entry(&server.0), "serverCAKey": entry(&server.1),
            "clientCA": entry(&client.0), "clientCAKey": entry(&client.1),
            "etcdServerCA": entry(&server.0), "etcdServerCAKey": entry(&server.1),
        })
    }

    fn bootstrap() -> Bootstrap {
        let json = bootstrap_json(&ca("k3s-server-ca@1"), &ca("k3s-client-ca@1"));
        parse_bootstrap(json.to_string().as_bytes()).unwrap()
    }

    fn der_of(pem: &str) -> Vec<u8> {
        first_certificate_der(pem, "test").unwrap()
    }

    /// What a TLS server does with a client certificate: chain to the CA, validity at
    /// `at`, EKU clientAuth, signature (webpki via rustls, as a real API server would).
    fn client_verifies(cert_pem: &str, ca_pem: &str, at: i64) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(der_of(ca_pem))).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap()));
        verifier
            .verify_client_cert(&CertificateDer::from(der_of(cert_pem)), &[], at)
            .map(|_| ())
    }

    fn parse_err(json: &Value) -> String {
        parse_bootstrap(json.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parse_errors_name_the_field_and_never_echo_content() {
        let server = ca("server");
        let client = ca("client");
        let good = bootstrap_json(&server, &client);

        let not_json = parse_bootstrap(b"{not json").unwrap_err().to_string();
        assert!(not_json.contains("not valid JSON"), "{not_json}");
        assert!(parse_err(&json!([1])).contains("not an object"));

        for field in ["serverCA", "clientCA", "clientCAKey"] {
            let mut missing = good.clone();
            missing.as_object_mut().unwrap().remove(field);
            assert_eq!(
                parse_err(&missing),
                format!("bootstrap data has no {field}")
            );

            let mut no_content = good.clone();
            no_content[field] = json!({"Timestamp": "x"});
            assert_eq!(
                parse_err(&no_content),
                format!("bootstrap {field} is malformed: no Content")
            );

            let mut garbage = good.clone();
            garbage[field]["Content"] = json!("!!! definitely not pem !!!");
            let message = parse_err(&garbage);
            assert!(message.starts_with(&format!("bootstrap {field} is malformed")));
            assert!(!message.contains("definitely"), "{message}");
        }

        // An entry that is a bare string (the key itself) must not be quoted back.
        let mut bare = good.clone();
        bare["clientCAKey"] = json!(client.1);
        let message = parse_err(&bare);
        assert_eq!(message, "bootstrap clientCAKey is malformed: no Content");

        let mut wrong_block = good.clone();
        wrong_block["clientCA"]["Content"] = json!(client.1);
        let message = parse_err(&wrong_block);
        assert!(message.contains("clientCA is malformed"), "{message}");
        assert!(
            !message.contains("MII") && !message.contains("BEGIN"),
            "{message}"
        );

        let mut cert_as_key = good.clone();
        cert_as_key["clientCAKey"]["Content"] = json!(client.0);
        assert_eq!(
            parse_err(&cert_as_key),
            "bootstrap clientCAKey is malformed: no private key PEM block"
        );

        let mut mismatched = good.clone();
        mismatched["clientCAKey"]["Content"] = json!(server.1);
        assert_eq!(
            parse_err(&mismatched),
            "bootstrap clientCAKey does not belong to the clientCA certificate"
        );

        // A leaf certificate is no client CA.
        let b = parse_bootstrap(good.to_string().as_bytes()).unwrap();
        let leaf = mint_client_certificate(&b, "u", &[], now(), Duration::from_secs(60)).unwrap();
        let mut leaf_ca = good.clone();
        leaf_ca["clientCA"]["Content"] = json!(leaf.cert_pem);
        leaf_ca["clientCAKey"]["Content"] = json!(leaf.key_pem);
        assert_eq!(
            parse_err(&leaf_ca),
            "bootstrap clientCA is malformed: certificate is not a CA (basicConstraints)"
        );
    }

    #[test]
    fn parse_accepts_k3k_pem_and_k3s_base64_content_and_redacts_the_key() {
        let server = ca("server");
        let client = ca("client");
        let b = parse_bootstrap(bootstrap_json(&server, &client).to_string().as_bytes()).unwrap();
        assert_eq!(b.server_ca_pem, server.0);
        assert_eq!(b.client_ca_pem, client.0);

        // K3s' own JSON encoding of Go []byte: base64 of the PEM.
        let mut encoded = bootstrap_json(&server, &client);
        for field in ["serverCA", "clientCA", "clientCAKey"] {
            let pem = encoded[field]["Content"].as_str().unwrap().to_string();
            encoded[field]["Content"] = json!(STANDARD.encode(pem));
        }
        let b2 = parse_bootstrap(encoded.to_string().as_bytes()).unwrap();
        assert_eq!(b2.client_ca_pem, client.0);

        let debug = format!("{b:?}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn minted_certificate_carries_the_identity_and_verifies_against_the_ca() {
        let b = bootstrap();
        let groups = strings(&[
            "kaas:ws:x:workspace-viewer",
            "team",
            "système",
            "system:masters",
        ]);
        let lifetime = Duration::from_secs(3600);
        let minted =
            mint_client_certificate(&b, "alice@example.com", &groups, now(), lifetime).unwrap();

        let der = der_of(&minted.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let subject = cert.subject();
        let cns: Vec<_> = subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cns, ["alice@example.com"]);
        let os: Vec<_> = subject
            .iter_organization()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(os, groups, "every group, in order, one O each");
        assert_eq!(subject.iter_rdn().count(), groups.len() + 1);
        assert!(subject.iter_rdn().all(|rdn| rdn.iter().count() == 1));

        let ca_der = der_of(&b.client_ca_pem);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());

        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth);
        assert!(!eku.server_auth && !eku.any && eku.other.is_empty());
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!cert.is_ca());

        assert_eq!(cert.validity().not_before.timestamp(), NOW - 60);
        assert_eq!(cert.validity().not_after.timestamp(), NOW + 3600);
        assert_eq!(
            minted.not_after,
            Timestamp::from_second(NOW + 3600).unwrap()
        );

        assert_eq!(cert.raw_serial().len(), 16);
        assert!(cert.raw_serial()[0] & 0x80 == 0 && cert.raw_serial()[0] != 0);
        assert_eq!(hex::encode(cert.raw_serial()), minted.serial_hex);

        // The key is a fresh P-256 key belonging to the certificate.
        let key = KeyPair::from_pem(&minted.key_pem).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            &*cert.public_key().subject_public_key.data,
            key.public_key_raw()
        );

        client_verifies(&minted.cert_pem, &b.client_ca_pem, NOW).unwrap();
        client_verifies(&minted.cert_pem, &b.client_ca_pem, NOW - 59).unwrap();
        assert!(client_verifies(&minted.cert_pem, &b.client_ca_pem, NOW + 3601).is_err());
        assert!(client_verifies(&minted.cert_pem, &b.server_ca_pem, NOW).is_err());

        let again =
            mint_client_certificate(&b, "alice@example.com", &groups, now(), lifetime).unwrap();
        assert_ne!(again.serial_hex, minted.serial_hex);
        assert_ne!(again.key_pem, minted.key_pem);

        let debug = format!("{minted:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn minting_without_groups_and_with_many() {
        let b = bootstrap();
        let none = mint_client_certificate(&b, "bob", &[], now(), Duration::from_secs(60)).unwrap();
        let der = der_of(&none.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().iter_organization().count(), 0);
        assert_eq!(cert.subject().to_string(), "CN=bob");
        client_verifies(&none.cert_pem, &b.client_ca_pem, NOW).unwrap();

        // Enough groups that the subject needs multi-byte DER lengths.
        let many: Vec<String> = (0..60)
            .map(|i| format!("group-{i:02}-{}", "x".repeat(20)))
            .collect();
        let minted =
            mint_client_certificate(&b, "carol", &many, now(), Duration::from_secs(60)).unwrap();
        let der = der_of(&minted.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let os: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(os, many);
        client_verifies(&minted.cert_pem, &b.client_ca_pem, NOW).unwrap();
    }

    #[test]
    fn go_style_sec1_ca_keys_sign() {
        for key in [SEC1_P256, SEC1_P384] {
            let client = (
                ca_with_key("k3s-client-ca@1700000000", key, 3650),
                key.to_string(),
            );
            let json = bootstrap_json(&ca("server"), &client);
            let b = parse_bootstrap(json.to_string().as_bytes()).unwrap();
            let minted = mint_client_certificate(
                &b,
                "alice",
                &strings(&["a", "b"]),
                now(),
                Duration::from_secs(60),
            )
            .unwrap();
            client_verifies(&minted.cert_pem, &b.client_ca_pem, NOW).unwrap();
        }
    }

    #[test]
    fn validity_is_bounded_by_the_ca_and_requests_are_checked() {
        // CA valid from a year ago until 400 days after that: ~35 days left at NOW.
        let key = KeyPair::generate().unwrap().serialize_pem();
        let client = (ca_with_key("short-lived-ca", &key, 400), key);
        let b = parse_bootstrap(bootstrap_json(&ca("s"), &client).to_string().as_bytes()).unwrap();
        let ca_der = der_of(&b.client_ca_pem);
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        let ca_end = ca_cert.validity().not_after.timestamp();

        let year = Duration::from_secs(365 * 86_400);
        let minted = mint_client_certificate(&b, "u", &[], now(), year).unwrap();
        assert_eq!(minted.not_after.as_second(), ca_end);

        let later = Timestamp::from_second(ca_end).unwrap();
        let err = mint_client_certificate(&b, "u", &[], later, year).unwrap_err();
        assert!(matches!(err, CredentialError::CaExpired(_)), "{err}");

        let b = bootstrap();
        let err = mint_client_certificate(&b, "", &[], now(), year).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid certificate request: user is empty"
        );
        let err = mint_client_certificate(&b, "u", &[], now(), Duration::ZERO).unwrap_err();
        assert!(matches!(err, CredentialError::InvalidRequest(_)), "{err}");
    }

    #[test]
    fn kubeconfig_is_complete_and_parses_as_a_kubeconfig() {
        let b = bootstrap();
        let (user, groups) = admin_identity();
        assert_eq!(
            (user, groups.as_slice()),
            ("kaas", &["system:masters".to_string()][..])
        );
        let minted =
            mint_client_certificate(&b, user, &groups, now(), Duration::from_secs(600)).unwrap();
        let yaml = kubeconfig_yaml(
            "ws-abc",
            "https://127.0.0.1:30443",
            &b.server_ca_pem,
            user,
            &minted,
        )
        .unwrap();

        let parsed = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(parsed.api_version.as_deref(), Some("v1"));
        assert_eq!(parsed.kind.as_deref(), Some("Config"));
        assert_eq!(parsed.current_context.as_deref(), Some("ws-abc"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(parsed.clusters[0].name, "ws-abc");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:30443"));
        let ca_data = STANDARD
            .decode(cluster.certificate_authority_data.as_deref().unwrap())
            .unwrap();
        assert_eq!(ca_data, b.server_ca_pem.as_bytes());
        let context = parsed.contexts[0].context.as_ref().unwrap();
        assert_eq!(parsed.contexts[0].name, "ws-abc");
        assert_eq!(
            (context.cluster.as_str(), context.user.as_deref()),
            ("ws-abc", Some("kaas"))
        );
        assert_eq!(parsed.auth_infos[0].name, "kaas");
        let auth = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        let cert_data = STANDARD
            .decode(auth.client_certificate_data.as_deref().unwrap())
            .unwrap();
        assert_eq!(cert_data, minted.cert_pem.as_bytes());
        assert!(auth.client_key_data.is_some());
        // Exactly the four top-level sections kubectl needs, plus apiVersion/kind.
        let raw: Value = serde_yaml::from_str(&yaml).unwrap();
        let mut keys: Vec<_> = raw.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "apiVersion",
                "clusters",
                "contexts",
                "current-context",
                "kind",
                "users"
            ]
        );
        let key_data = STANDARD
            .decode(raw["users"][0]["user"]["client-key-data"].as_str().unwrap())
            .unwrap();
        assert_eq!(key_data, minted.key_pem.as_bytes());
    }

    #[test]
    fn der_lengths_are_minimal() {
        assert_eq!(tlv(0x04, &[]), [0x04, 0x00]);
        assert_eq!(tlv(0x04, &[0; 0x7f])[..2], [0x04, 0x7f]);
        assert_eq!(tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(tlv(0x04, &[0; 0x100])[..4], [0x04, 0x82, 0x01, 0x00]);
    }
}
