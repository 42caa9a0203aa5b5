//! jwt: the JWT authenticator of a virtual cluster's K3s server, played as kube-apiserver
//! (1.33 to 1.35, structured `--authentication-config`) runs it for an
//! `AuthenticationConfiguration` such as the one kaas mounts: per `jwt[]` entry, discovery
//! and JWKS fetched over HTTPS with the entry's `certificateAuthority`, the signature checked
//! against the JWKS (a key that does not verify makes it fetch the JWKS again and retry
//! once, as go-oidc's `RemoteKeySet` does), then `iss`, `aud`, `exp` (no leeway), `nbf`
//! (five minutes' leeway), `email_verified` when the username comes from `email`, the claim
//! validation rules and the username and groups mappings with their prefixes. The kaas
//! integration test `jwt_referee` holds it to the real authenticator's verdicts.
//!
//! What it cannot evaluate it refuses to start with (as kube-apiserver refuses a
//! configuration it cannot read): CEL beyond `has(claims.NAME)`, claim mapping expressions,
//! user validation rules, `discoveryURL`, and the `--oidc-*` flags. Without a
//! `certificateAuthority` no issuer is trusted (the machine's CAs are not fakehost's to use).
//! Until discovery has succeeded (tried at start, then every 10 s, as kube-apiserver does)
//! every token is refused. The JOSE work is `jsonwebtoken`'s.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};
use tokio::task::JoinHandle;

use crate::pki::ClientIdentity;

/// Leeway kube-apiserver's verifier (go-oidc) allows on `nbf`; `exp` has none.
const NBF_LEEWAY_SECS: i64 = 300;
/// How often kube-apiserver retries an issuer's discovery until it succeeds.
const DISCOVERY_RETRY: Duration = Duration::from_secs(10);
/// The algorithms kube-apiserver accepts from a JWKS (asymmetric ones only).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// One claim mapping: the claim read and the prefix put before its value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    claim: String,
    prefix: String,
}

/// A claim validation rule fakehost can evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// `expression: has(claims.NAME)`.
    Has { claim: String, message: String },
    /// `claim: NAME, requiredValue: VALUE`.
    Equals { claim: String, value: String },
}

/// One `jwt[]` entry of an `AuthenticationConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIssuer {
    url: String,
    audiences: Vec<String>,
    ca_pem: Option<String>,
    rules: Vec<Rule>,
    username: Mapping,
    groups: Option<Mapping>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The `jwt[]` entries of an `AuthenticationConfiguration` (YAML or JSON).
pub fn parse_authentication_config(doc: &str) -> anyhow::Result<Vec<JwtIssuer>> {
    let doc: Value = serde_yaml::from_str(doc).context("authentication-config is not YAML")?;
    if text(&doc, "/kind") != Some("AuthenticationConfiguration") {
        bail!("authentication-config: kind is not AuthenticationConfiguration");
    }
    let mut issuers = Vec::new();
    for jwt in doc
        .get("jwt")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        issuers.push(parse_jwt(jwt)?);
    }
    Ok(issuers)
}

fn parse_jwt(jwt: &Value) -> anyhow::Result<JwtIssuer> {
    let url = text(jwt, "/issuer/url")
        .filter(|u| u.starts_with("https://"))
        .context("jwt.issuer.url must be an https URL")?
        .to_string();
    if jwt.pointer("/issuer/discoveryURL").is_some() {
        bail!("jwt.issuer.discoveryURL is not played by fakehost");
    }
    if jwt.get("userValidationRules").is_some() {
        bail!("jwt.userValidationRules are not played by fakehost");
    }
    let audiences: Vec<String> = jwt
        .pointer("/issuer/audiences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if audiences.is_empty() {
        bail!("jwt.issuer.audiences: at least one is required");
    }
    let mut rules = Vec::new();
    for rule in jwt
        .get("claimValidationRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(expression) = text(rule, "/expression") {
            let claim = expression
                .trim()
                .strip_prefix("has(claims.")
                .and_then(|r| r.strip_suffix(')'))
                .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_alphanumeric() || ch == '_'))
                .with_context(|| {
                    format!("CEL expression {expression:?} is not played by fakehost")
                })?;
            rules.push(Rule::Has {
                claim: claim.to_string(),
                message: text(rule, "/message").unwrap_or_default().to_string(),
            });
        } else if let Some(claim) = text(rule, "/claim") {
            rules.push(Rule::Equals {
                claim: claim.to_string(),
                value: text(rule, "/requiredValue").unwrap_or_default().to_string(),
            });
        } else {
            bail!("jwt.claimValidationRules: a rule needs claim or expression");
        }
    }
    let mapping = |name: &str| -> anyhow::Result<Option<Mapping>> {
        let Some(m) = jwt.pointer(&format!("/claimMappings/{name}")) else {
            return Ok(None);
        };
        if m.get("expression").is_some() {
            bail!("claimMappings.{name}.expression is not played by fakehost");
        }
        let Some(claim) = text(m, "/claim") else {
            return Ok(None);
        };
        Ok(Some(Mapping {
            claim: claim.to_string(),
            prefix: text(m, "/prefix").unwrap_or_default().to_string(),
        }))
    };
    let username = mapping("username")?.context("claimMappings.username.claim is required")?;
    Ok(JwtIssuer {
        url,
        audiences,
        ca_pem: text(jwt, "/issuer/certificateAuthority").map(str::to_string),
        rules,
        username,
        groups: mapping("groups")?,
    })
}

/// The claims of a JWT without checking anything (to pick the authenticator by `iss`).
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Claims checks after the signature, as go-oidc's verifier and kube-apiserver make them,
/// at `now_ms` (milliseconds since the epoch).
fn check_claims(
    issuer: &JwtIssuer,
    claims: &Map<String, Value>,
    now_ms: i64,
) -> Result<ClientIdentity, String> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.url.as_str()) {
        return Err("oidc: id token issued by a different provider".into());
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or("oidc: malformed claim exp")?;
    // go-oidc: expired when exp is before now (second precision against a finer clock).
    if (exp * 1000.0) < now_ms as f64 {
        return Err("oidc: token is expired".into());
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
        && ((now_ms + NBF_LEEWAY_SECS * 1000) as f64) < nbf * 1000.0
    {
        return Err("oidc: current time before the nbf (not before) time".into());
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences
        .iter()
        .any(|a| issuer.audiences.iter().any(|b| b == a))
    {
        return Err("oidc: expected audience not found in the token".into());
    }
    for rule in &issuer.rules {
        match rule {
            Rule::Has { claim, message } if !claims.contains_key(claim) => {
                return Err(format!(
                    "oidc: error evaluating claim validation: {message}"
                ));
            }
            Rule::Equals { claim, value }
                if claims.get(claim).and_then(Value::as_str) != Some(value.as_str()) =>
            {
                return Err(format!("oidc: required claim {claim} not equal to {value}"));
            }
            _ => {}
        }
    }
    let username = claims
        .get(&issuer.username.claim)
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("oidc: claim {} not present", issuer.username.claim))?;
    if issuer.username.claim == "email"
        && let Some(verified) = claims.get("email_verified")
        && verified != &Value::Bool(true)
    {
        return Err("oidc: email not verified".into());
    }
    let mut groups = Vec::new();
    if let Some(mapping) = &issuer.groups {
        match claims.get(&mapping.claim) {
            None | Some(Value::Null) => {}
            Some(Value::String(g)) => groups.push(format!("{}{g}", mapping.prefix)),
            Some(Value::Array(list)) => {
                for g in list {
                    let g = g.as_str().ok_or_else(|| {
                        format!("oidc: claim {} is not a list of strings", mapping.claim)
                    })?;
                    groups.push(format!("{}{g}", mapping.prefix));
                }
            }
            Some(_) => {
                return Err(format!(
                    "oidc: claim {} is not a list of strings",
                    mapping.claim
                ));
            }
        }
    }
    Ok(ClientIdentity {
        user: format!("{}{username}", issuer.username.prefix),
        groups,
    })
}

/// One issuer's verifier: its discovery (once it succeeded) and the JWKS last fetched.
struct Verifier {
    issuer: JwtIssuer,
    client: Option<reqwest::Client>,
    jwks_uri: RwLock<Option<String>>,
    keys: RwLock<JwkSet>,
    /// One JWKS fetch at a time, as go-oidc's `RemoteKeySet`.
    fetching: Mutex<()>,
}

impl Verifier {
    fn new(issuer: JwtIssuer) -> anyhow::Result<Verifier> {
        let client = match &issuer.ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                    roots.add(cert.context("issuer.certificateAuthority")?)?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(
                    reqwest::Client::builder()
                        .use_preconfigured_tls(tls)
                        .timeout(Duration::from_secs(10))
                        .build()?,
                )
            }
            None => None,
        };
        Ok(Verifier {
            issuer,
            client,
            jwks_uri: RwLock::new(None),
            keys: RwLock::new(JwkSet { keys: Vec::new() }),
            fetching: Mutex::new(()),
        })
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let client = self
            .client
            .as_ref()
            .ok_or("no certificateAuthority: the issuer is not trusted")?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }

    /// Discovery: the document must name this very issuer.
    async fn discover(&self) -> Result<(), String> {
        let doc = self
            .get_json(&format!(
                "{}/.well-known/openid-configuration",
                self.issuer.url
            ))
            .await?;
        if text(&doc, "/issuer") != Some(self.issuer.url.as_str()) {
            return Err("oidc: issuer did not match the issuer returned by provider".into());
        }
        let jwks = text(&doc, "/jwks_uri").ok_or("discovery has no jwks_uri")?;
        *self.jwks_uri.write().await = Some(jwks.to_string());
        Ok(())
    }

    async fn refetch_keys(&self) -> Result<(), String> {
        let _one = self.fetching.lock().await;
        let uri = self
            .jwks_uri
            .read()
            .await
            .clone()
            .ok_or("oidc: authenticator not initialized")?;
        let set: JwkSet =
            serde_json::from_value(self.get_json(&uri).await?).map_err(|e| e.to_string())?;
        *self.keys.write().await = set;
        Ok(())
    }

    /// The verified claims, if a key of the JWKS with the token's `kid` (any key, without
    /// one) verifies its signature.
    async fn verified(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Option<Map<String, Value>> {
        let keys = self.keys.read().await;
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        keys.keys
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .filter_map(|k| DecodingKey::from_jwk(k).ok())
            .find_map(|key| {
                jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
                    .ok()
                    .map(|d| d.claims)
            })
    }

    async fn authenticate(&self, token: &str) -> Result<ClientIdentity, String> {
        if self.jwks_uri.read().await.is_none() {
            return Err("oidc: authenticator not initialized".into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("oidc: {e}"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!(
                "oidc: unsupported signing algorithm {:?}",
                header.alg
            ));
        }
        let kid = header.kid.as_deref();
        let claims = match self.verified(token, header.alg, kid).await {
            Some(claims) => claims,
            None => {
                self.refetch_keys().await?;
                self.verified(token, header.alg, kid)
                    .await
                    .ok_or("oidc: failed to verify id token signature")?
            }
        };
        check_claims(
            &self.issuer,
            &claims,
            jiff::Timestamp::now().as_millisecond(),
        )
    }
}

/// The JWT authenticators of one K3s server; discovery runs in the background from start.
pub struct JwtAuthenticator {
    verifiers: Vec<Arc<Verifier>>,
    discovery: Vec<JoinHandle<()>>,
}

impl JwtAuthenticator {
    /// Starts discovery for every issuer. Must be called inside a Tokio runtime.
    pub fn start(issuers: Vec<JwtIssuer>) -> anyhow::Result<JwtAuthenticator> {
        let mut verifiers = Vec::new();
        let mut discovery = Vec::new();
        for issuer in issuers {
            let verifier = Arc::new(Verifier::new(issuer)?);
            let v = verifier.clone();
            discovery.push(tokio::spawn(async move {
                while let Err(e) = v.discover().await {
                    tracing::debug!(issuer = %v.issuer.url, error = %e, "discovery failed");
                    tokio::time::sleep(DISCOVERY_RETRY).await;
                }
            }));
            verifiers.push(verifier);
        }
        Ok(JwtAuthenticator {
            verifiers,
            discovery,
        })
    }

    /// Who a bearer token authenticates as; the error says why not (the client only ever
    /// sees 401, as from kube-apiserver).
    pub async fn authenticate(&self, token: &str) -> Result<ClientIdentity, String> {
        let iss = unverified_claims(token)
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_string))
            .ok_or("not a JWT with an iss claim")?;
        let mut last = format!("no authenticator for issuer {iss}");
        for v in self.verifiers.iter().filter(|v| v.issuer.url == iss) {
            match v.authenticate(token).await {
                Ok(identity) => return Ok(identity),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Drop for JwtAuthenticator {
    fn drop(&mut self) {
        for task in &self.discovery {
            task.abort();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1beta1\n\
        kind: AuthenticationConfiguration\n\
        jwt:\n\
        - issuer:\n    url: https://kaas.test\n    audiences: [\"kaas:ws_1\"]\n    certificateAuthority: PEM\n\
        \x20 claimValidationRules:\n  - expression: has(claims.groups)\n    message: no groups\n\
        \x20 claimMappings:\n    username: {claim: email, prefix: \"\"}\n    groups: {claim: groups, prefix: \"oidc:\"}\n";

    fn issuer() -> JwtIssuer {
        parse_authentication_config(CONFIG).unwrap().remove(0)
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good(now: i64) -> Value {
        json!({"iss": "https://kaas.test", "aud": "kaas:ws_1", "exp": now + 60, "nbf": now,
               "email": "a@example.com", "email_verified": true, "groups": ["g"]})
    }

    #[test]
    fn the_configuration_kaas_writes_is_read() {
        let i = issuer();
        assert_eq!(i.url, "https://kaas.test");
        assert_eq!(i.audiences, ["kaas:ws_1"]);
        assert_eq!(i.ca_pem.as_deref(), Some("PEM"));
        assert_eq!(i.rules.len(), 1);
        assert_eq!(i.groups.unwrap().prefix, "oidc:");
        let cel = CONFIG.replace("has(claims.groups)", "claims.groups.size() > 0");
        assert!(parse_authentication_config(&cel).is_err());
        assert!(parse_authentication_config(&CONFIG.replace("https://", "http://")).is_err());
    }

    #[test]
    fn claims_are_checked_as_kube_apiserver_does() {
        let i = issuer();
        let now = 1_000_000;
        let ms = now * 1000;
        let id = check_claims(&i, &claims(good(now)), ms).unwrap();
        assert_eq!(id.user, "a@example.com");
        assert_eq!(id.groups, ["oidc:g"]);
        let with = |k: &str, v: Value| {
            let mut c = good(now);
            c[k] = v;
            check_claims(&i, &claims(c), ms)
        };
        assert!(with("exp", json!(now - 1)).is_err());
        assert!(with("exp", json!(now)).is_ok());
        assert!(with("nbf", json!(now + 299)).is_ok());
        assert!(with("nbf", json!(now + 301)).is_err());
        assert!(with("aud", json!("kaas:ws_2")).is_err());
        assert!(with("aud", json!(["x", "kaas:ws_1"])).is_ok());
        assert!(with("iss", json!("https://other")).is_err());
        assert!(with("email_verified", json!(false)).is_err());
        assert!(with("groups", json!("one")).unwrap().groups == ["oidc:one"]);
        assert!(with("groups", json!([1])).is_err());
        let mut bare = good(now);
        bare.as_object_mut().unwrap().remove("groups");
        assert!(check_claims(&i, &claims(bare), ms).is_err());
    }
}
