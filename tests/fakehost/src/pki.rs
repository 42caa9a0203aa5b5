//! pki: certificate authorities and X.509 certificates as K3s/K3K mint them, and the
//! kube-apiserver's client-certificate authentication (Subject CN → user, each O → group).
//!
//! K3s CAs are self-signed ECDSA P-256 certificates valid ten years; client certificates
//! carry EKU clientAuth and serving certificates EKU serverAuth. The identity mapping mirrors
//! `k8s.io/apiserver/pkg/authentication/request/x509.CommonNameUserConversion`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber, SigningKey,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Ten years, as K3s uses for its CAs (`time.Hour * 24 * 365 * 10`).
const CA_VALIDITY: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 10);
/// One year, as K3s (dynamiclistener) uses for serving certificates.
const SERVER_VALIDITY: Duration = Duration::from_secs(60 * 60 * 24 * 365);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("invalid certificate or key: {0}")]
    Invalid(String),
    #[error("system clock is before 1970")]
    Clock,
}

pub type Result<T> = std::result::Result<T, PkiError>;

/// A certificate authority that can sign serving and client certificates.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A freshly issued client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// Lower-case hex of the serial number's bytes.
    pub serial_hex: String,
    /// Whole seconds: X.509 validity has second precision.
    pub not_after: jiff::Timestamp,
}

/// The user a client certificate authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256, ten years), like K3s' `*-ca` certificates.
    pub fn new(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?; // rcgen's default: ECDSA P-256 / SHA-256
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let now = now_secs()?;
        set_validity(&mut params, now, now + CA_VALIDITY.as_secs());
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Load an existing CA (e.g. K3K's `clientCA`/`clientCAKey` from the bootstrap secret).
    /// The key must belong to the certificate and the certificate must be a CA.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = pem_to_der(cert_pem)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(PkiError::Invalid(
                "certificate is not a CA (basicConstraints)".into(),
            ));
        }
        if *cert.public_key().subject_public_key.data != *key.public_key_raw() {
            return Err(PkiError::Invalid(
                "private key does not match the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate (EKU serverAuth) for the given SANs; entries that parse as IP
    /// addresses become IP SANs, the rest DNS SANs. Returns (cert_pem, key_pem).
    pub fn issue_server_cert(&self, sans: &[String]) -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let now = now_secs()?;
        set_validity(&mut params, now, now + SERVER_VALIDITY.as_secs());
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A client certificate as kube-apiserver expects: Subject CN = user, one O per group,
    /// EKU clientAuth, a random positive 128-bit serial, valid from now for `validity`.
    pub fn issue_client_cert(
        &self,
        cn: &str,
        groups: &[String],
        validity: Duration,
    ) -> Result<IssuedCert> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let now = now_secs()?;
        let not_after = now.saturating_add(validity.as_secs());
        set_validity(&mut params, now, not_after);
        let cert = params.signed_by(&key, &self.issuer)?;
        let mut der = cert.der().to_vec();
        if !groups.is_empty() {
            // rcgen's DistinguishedName holds one value per attribute type, but Kubernetes
            // needs one O attribute per group (Go's pkix.Name.Organization is a list). So the
            // subject is re-encoded by hand and the TBSCertificate re-signed with the CA key.
            der = replace_subject_and_resign(&der, &subject_der(cn, groups), self.issuer.key())?;
        }
        let not_after = jiff::Timestamp::from_second(i64::try_from(not_after).unwrap_or(i64::MAX))
            .map_err(|e| PkiError::Invalid(format!("not_after: {e}")))?;
        Ok(IssuedCert {
            cert_pem: der_to_pem(&der),
            key_pem: key.serialize_pem(),
            serial_hex: serial.iter().map(|b| format!("{b:02x}")).collect(),
            not_after,
        })
    }
}

/// The identity kube-apiserver derives from a (chain-verified) client certificate: CN is the
/// user name, every O attribute a group. `None` when the CN is empty, as upstream refuses it.
pub fn client_identity(der: &[u8]) -> Option<ClientIdentity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    // Go's pkix.Name.FillFromRDNSequence keeps the last CN it meets.
    let user = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()?
        .to_string();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(ClientIdentity { user, groups })
}

/// What the kube-apiserver's x509 authenticator checks before mapping the identity: the
/// certificate chains to `ca_pem`, `now` is inside its validity window, and its EKU (if any)
/// allows clientAuth (Go's `x509.VerifyOptions{KeyUsages: [ExtKeyUsageClientAuth]}`).
pub fn authenticate_client_cert(
    der: &[u8],
    ca_pem: &str,
    now: jiff::Timestamp,
) -> std::result::Result<ClientIdentity, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let ca_der = pem_to_der(ca_pem).map_err(|e| e.to_string())?;
    if !signed_by_der(der, &ca_der) {
        return Err("x509: certificate signed by unknown authority".into());
    }
    let t = now.as_second();
    let validity = cert.validity();
    if t < validity.not_before.timestamp() || t > validity.not_after.timestamp() {
        return Err("x509: certificate has expired or is not yet valid".into());
    }
    match cert.extended_key_usage() {
        Ok(None) => {} // no EKU extension: valid for any usage (Go semantics)
        Ok(Some(eku)) if eku.value.client_auth || eku.value.any => {}
        Ok(Some(_)) => {
            return Err("x509: certificate specifies an incompatible key usage".into());
        }
        Err(e) => return Err(format!("bad extended key usage: {e}")),
    }
    client_identity(der).ok_or_else(|| "certificate has an empty common name".to_string())
}

/// True when `cert_pem`'s issuer is `ca_pem`'s subject and its signature verifies with the
/// CA's public key. For tests and the fake API server's own checks.
pub fn verify_signed_by(cert_pem: &str, ca_pem: &str) -> bool {
    match (pem_to_der(cert_pem), pem_to_der(ca_pem)) {
        (Ok(cert), Ok(ca)) => signed_by_der(&cert, &ca),
        _ => false,
    }
}

fn signed_by_der(cert_der: &[u8], ca_der: &[u8]) -> bool {
    use ring::signature as sig;
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return false;
    }
    let algs: &[&'static dyn sig::VerificationAlgorithm] =
        match cert.signature_algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.10045.4.3.2" => &[&sig::ECDSA_P256_SHA256_ASN1, &sig::ECDSA_P384_SHA256_ASN1],
            "1.2.840.10045.4.3.3" => &[&sig::ECDSA_P384_SHA384_ASN1, &sig::ECDSA_P256_SHA384_ASN1],
            "1.2.840.113549.1.1.11" => &[&sig::RSA_PKCS1_2048_8192_SHA256],
            "1.2.840.113549.1.1.12" => &[&sig::RSA_PKCS1_2048_8192_SHA384],
            "1.2.840.113549.1.1.13" => &[&sig::RSA_PKCS1_2048_8192_SHA512],
            "1.3.101.112" => &[&sig::ED25519],
            _ => return false,
        };
    let public_key: &[u8] = &ca.public_key().subject_public_key.data;
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let signature: &[u8] = &cert.signature_value.data;
    algs.iter().any(|alg| {
        sig::UnparsedPublicKey::new(*alg, public_key)
            .verify(tbs, signature)
            .is_ok()
    })
}

fn now_secs() -> Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| PkiError::Clock)
}

/// Sets validity from Unix seconds without naming the `time` crate (rcgen's date type).
fn set_validity(params: &mut CertificateParams, not_before: u64, not_after: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before);
    params.not_after = epoch + Duration::from_secs(not_after);
}

/// 16 random bytes, top bit clear (serials must be positive), never starting with 0x00.
fn random_serial() -> [u8; 16] {
    let mut serial: [u8; 16] = rand::random();
    serial[0] = (serial[0] & 0x7f).max(1);
    serial
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::Invalid(format!("PEM: {e}")))?;
    if p.label != "CERTIFICATE" {
        return Err(PkiError::Invalid(format!(
            "PEM block is {:?}, want CERTIFICATE",
            p.label
        )));
    }
    Ok(p.contents)
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

// --- minimal DER, just enough to rewrite a certificate's subject -------------------------

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Splits `buf` into its top-level TLVs (single-byte tags, definite lengths: DER).
fn der_split(mut buf: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = || PkiError::Invalid("malformed DER".into());
    let mut out = Vec::new();
    while !buf.is_empty() {
        let first = *buf.get(1).ok_or_else(bad)?;
        let (header, len) = if first < 0x80 {
            (2, first as usize)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return Err(bad());
            }
            let len_bytes = buf.get(2..2 + n).ok_or_else(bad)?;
            (
                2 + n,
                len_bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | *b as usize),
            )
        };
        let end = header.checked_add(len).ok_or_else(bad)?;
        out.push(buf.get(..end).ok_or_else(bad)?);
        buf = &buf[end..];
    }
    Ok(out)
}

fn der_content(tlv: &[u8]) -> Result<&[u8]> {
    let first = *tlv
        .get(1)
        .ok_or_else(|| PkiError::Invalid("malformed DER".into()))?;
    let header = if first < 0x80 {
        2
    } else {
        2 + (first & 0x7f) as usize
    };
    tlv.get(header..)
        .ok_or_else(|| PkiError::Invalid("malformed DER".into()))
}

/// Subject Name with one RDN per O (in order) then the CN, as Go's pkix.Name.ToRDNSequence
/// lays them out.
fn subject_der(cn: &str, groups: &[String]) -> Vec<u8> {
    const OID_O: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x0a];
    const OID_CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let rdn = |oid: &[u8], value: &str| {
        let mut atv = oid.to_vec();
        atv.extend(der_tlv(0x0c, value.as_bytes())); // UTF8String
        der_tlv(0x31, &der_tlv(0x30, &atv))
    };
    let mut rdns = Vec::new();
    for g in groups {
        rdns.extend(rdn(&OID_O, g));
    }
    rdns.extend(rdn(&OID_CN, cn));
    der_tlv(0x30, &rdns)
}

fn replace_subject_and_resign(der: &[u8], subject: &[u8], key: &KeyPair) -> Result<Vec<u8>> {
    let outer = der_split(der)?;
    let cert_parts = der_split(der_content(outer.first().copied().unwrap_or_default())?)?;
    let [tbs, sig_alg, _sig] = cert_parts.as_slice() else {
        return Err(PkiError::Invalid("certificate is not 3 elements".into()));
    };
    let mut tbs_parts = der_split(der_content(tbs)?)?;
    // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
    let subject_idx = if tbs_parts.first().map(|p| p[0]) == Some(0xa0) {
        5
    } else {
        4
    };
    let slot = tbs_parts
        .get_mut(subject_idx)
        .ok_or_else(|| PkiError::Invalid("TBSCertificate too short".into()))?;
    *slot = subject;
    let new_tbs = der_tlv(0x30, &tbs_parts.concat());
    let signature = key.sign(&new_tbs)?;
    let mut bits = vec![0u8]; // no unused bits
    bits.extend(signature);
    let mut body = new_tbs;
    body.extend_from_slice(sig_alg);
    body.extend(der_tlv(0x03, &bits));
    Ok(der_tlv(0x30, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn der(pem: &str) -> Vec<u8> {
        pem_to_der(pem).unwrap()
    }

    #[test]
    fn client_cert_verifies_only_against_its_ca() {
        let a = Ca::new("k3s-client-ca").unwrap();
        let b = Ca::new("k3s-client-ca").unwrap(); // same name, different key
        let c = a
            .issue_client_cert("alice", &s(&["dev"]), Duration::from_secs(3600))
            .unwrap();
        assert!(verify_signed_by(&c.cert_pem, a.cert_pem()));
        assert!(!verify_signed_by(&c.cert_pem, b.cert_pem()));
        assert!(
            verify_signed_by(a.cert_pem(), a.cert_pem()),
            "CA is self-signed"
        );
        assert!(!verify_signed_by("garbage", a.cert_pem()));
    }

    #[test]
    fn identity_round_trips_with_many_groups() {
        let ca = Ca::new("ca").unwrap();
        let groups = s(&["system:masters", "team-a", "kaas:ws:01HX"]);
        let c = ca
            .issue_client_cert("alice@example.com", &groups, Duration::from_secs(600))
            .unwrap();
        let id = client_identity(&der(&c.cert_pem)).unwrap();
        assert_eq!(id.user, "alice@example.com");
        assert_eq!(id.groups, groups);
        let cert_der = der(&c.cert_pem);
        let (_, parsed) = X509Certificate::from_der(&cert_der).unwrap();
        assert_eq!(parsed.subject().iter_organization().count(), 3);
        let eku = parsed.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.client_auth && !eku.value.server_auth);
        assert_eq!(hex_of(parsed.raw_serial()), c.serial_hex);
        // Re-signed certificate still verifies and keys still belong together.
        assert!(verify_signed_by(&c.cert_pem, ca.cert_pem()));
        let key = KeyPair::from_pem(&c.key_pem).unwrap();
        assert_eq!(
            &*parsed.public_key().subject_public_key.data,
            key.public_key_raw()
        );
    }

    #[test]
    fn identity_without_groups_and_empty_cn() {
        let ca = Ca::new("ca").unwrap();
        let c = ca
            .issue_client_cert("bob", &[], Duration::from_secs(60))
            .unwrap();
        let id = client_identity(&der(&c.cert_pem)).unwrap();
        assert_eq!(
            id,
            ClientIdentity {
                user: "bob".into(),
                groups: vec![]
            }
        );
        let anon = ca
            .issue_client_cert("", &s(&["g"]), Duration::from_secs(60))
            .unwrap();
        assert_eq!(client_identity(&der(&anon.cert_pem)), None);
        assert_eq!(client_identity(b"not der"), None);
    }

    #[test]
    fn serials_are_random_and_positive() {
        let ca = Ca::new("ca").unwrap();
        let a = ca
            .issue_client_cert("u", &[], Duration::from_secs(60))
            .unwrap();
        let b = ca
            .issue_client_cert("u", &[], Duration::from_secs(60))
            .unwrap();
        assert_ne!(a.serial_hex, b.serial_hex);
        assert_eq!(a.serial_hex.len(), 32);
        assert!(u8::from_str_radix(&a.serial_hex[..2], 16).unwrap() < 0x80);
    }

    #[test]
    fn expiry_is_honoured() {
        let ca = Ca::new("ca").unwrap();
        let c = ca
            .issue_client_cert("alice", &s(&["g"]), Duration::from_secs(3600))
            .unwrap();
        let now = jiff::Timestamp::now();
        let delta = c.not_after.as_second() - now.as_second();
        assert!(
            (3598..=3600).contains(&delta),
            "not_after {delta}s from now"
        );
        let cert_der = der(&c.cert_pem);
        let (_, parsed) = X509Certificate::from_der(&cert_der).unwrap();
        assert_eq!(
            parsed.validity().not_after.timestamp(),
            c.not_after.as_second()
        );

        let d = der(&c.cert_pem);
        let id = authenticate_client_cert(&d, ca.cert_pem(), now).unwrap();
        assert_eq!(id.user, "alice");
        let later = c
            .not_after
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap();
        assert!(authenticate_client_cert(&d, ca.cert_pem(), later).is_err());
        let before = now
            .checked_sub(jiff::SignedDuration::from_secs(120))
            .unwrap();
        assert!(authenticate_client_cert(&d, ca.cert_pem(), before).is_err());
        let other = Ca::new("ca").unwrap();
        assert!(authenticate_client_cert(&d, other.cert_pem(), now).is_err());
    }

    #[test]
    fn server_cert_has_dns_and_ip_sans_and_is_not_a_client_cert() {
        let ca = Ca::new("k3s-server-ca").unwrap();
        let sans = s(&["localhost", "k3k-ws-service.kaas-ws-1", "127.0.0.1", "::1"]);
        let (cert_pem, key_pem) = ca.issue_server_cert(&sans).unwrap();
        assert!(verify_signed_by(&cert_pem, ca.cert_pem()));
        assert!(KeyPair::from_pem(&key_pem).is_ok());
        let d = der(&cert_pem);
        let (_, parsed) = X509Certificate::from_der(&d).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = san.general_names.iter().map(|n| n.to_string()).collect();
        assert!(names.iter().any(|n| n.contains("localhost")), "{names:?}");
        assert!(
            names.iter().any(|n| n.contains("k3k-ws-service")),
            "{names:?}"
        );
        let ips = san
            .general_names
            .iter()
            .filter(|n| matches!(n, x509_parser::extensions::GeneralName::IPAddress(_)))
            .count();
        assert_eq!(ips, 2);
        let eku = parsed.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth && !eku.value.client_auth);
        let err = authenticate_client_cert(&d, ca.cert_pem(), jiff::Timestamp::now()).unwrap_err();
        assert!(err.contains("key usage"), "{err}");
    }

    #[test]
    fn ca_loaded_from_pem_signs_like_the_original() {
        let a = Ca::new("k3s-client-ca").unwrap();
        let loaded = Ca::from_pem(a.cert_pem(), a.key_pem()).unwrap();
        let c = loaded
            .issue_client_cert("carol", &s(&["g1", "g2"]), Duration::from_secs(60))
            .unwrap();
        assert!(verify_signed_by(&c.cert_pem, a.cert_pem()));
        let ca_der = der(a.cert_pem());
        let (_, ca_parsed) = X509Certificate::from_der(&ca_der).unwrap();
        assert!(ca_parsed.is_ca());
        let days = (ca_parsed.validity().not_after.timestamp()
            - ca_parsed.validity().not_before.timestamp())
            / 86400;
        assert_eq!(days, 3650);

        let b = Ca::new("other").unwrap();
        assert!(
            Ca::from_pem(a.cert_pem(), b.key_pem()).is_err(),
            "mismatched key"
        );
        let (leaf, leaf_key) = a.issue_server_cert(&s(&["x"])).unwrap();
        assert!(Ca::from_pem(&leaf, &leaf_key).is_err(), "not a CA");
        assert!(Ca::from_pem("nope", a.key_pem()).is_err());
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
