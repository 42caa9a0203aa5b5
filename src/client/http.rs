//! The shell client's HTTP side: one `reqwest` client per command, trusting the system's
//! roots or exactly the given CA file, and API answers turned into values or one-line
//! errors (the API's own message, unchanged; a 401 adds how to sign in again).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::output::Field;

/// A kaas server as the client talks to it.
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    token: Option<String>,
}

/// A base URL as stored and compared: scheme, host, port and path, without a trailing `/`.
pub fn normalize_base(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| {
        anyhow!(
            "{url:?} is not a URL ({e}); give the server's address, e.g. https://kaas.example.com"
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        anyhow::bail!("{url:?} is not an http:// or https:// address of a kaas server");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        anyhow::bail!("{url:?}: give the server's base address, without a query");
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// An error's chain as one line: reqwest's own message hides the reason (refused, a
/// certificate not trusted) in its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        next = s.source();
    }
    out
}

impl Api {
    pub fn new(base: &str, ca_file: Option<&Path>, token: Option<String>) -> anyhow::Result<Api> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("kaas-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow!(
                    "{} holds no usable PEM certificate: {}",
                    ca.display(),
                    chain(&e)
                )
            })?;
            if certs.is_empty() {
                anyhow::bail!("{} holds no PEM certificate", ca.display());
            }
            b = b.tls_certs_only(certs);
        }
        let http = b
            .build()
            .map_err(|e| anyhow!("cannot set up HTTPS: {}", chain(&e)))?;
        Ok(Api {
            http,
            base: base.to_string(),
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let text = chain(&e);
        let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
            "; if it uses a private CA, pass --ca-file FILE to kaas login"
        } else {
            ""
        };
        anyhow!("cannot reach {}: {text}{hint}", self.base)
    }

    async fn answer(&self, res: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| self.unreachable(e))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// The API's message of a refusal, as it is.
    pub fn message(status: StatusCode, body: &Value) -> String {
        body.f("error")
            .f("message")
            .as_str()
            .or_else(|| body.f("error_description").as_str())
            .or_else(|| body.f("error").as_str())
            .map(str::to_string)
            .unwrap_or_else(|| match body.as_str() {
                Some(text) if !text.trim().is_empty() => format!("{status}: {}", text.trim()),
                _ => format!("the server answered {status}"),
            })
    }

    /// Sends a JSON request; a non-2xx answer is an error with the API's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call_raw(method, path, body).await?;
        if status.is_success() {
            return Ok(value);
        }
        let message = Self::message(status, &value);
        if status == StatusCode::UNAUTHORIZED && self.token.is_some() {
            return Err(anyhow!(
                "{message}; run `kaas login {}` to sign in again",
                self.base
            ));
        }
        Err(anyhow!(message))
    }

    /// Sends a JSON request and hands back any answer with its status.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| self.unreachable(e))?;
        self.answer(res).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// Posts a form (the OAuth endpoints) and hands back any answer with its status.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let res = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.answer(res).await
    }

    /// Every item of a paged listing.
    pub async fn list_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit=200");
            if let Some(c) = &cursor {
                let enc: String = url::form_urlencoded::byte_serialize(c.as_bytes()).collect();
                url.push_str(&format!("&cursor={enc}"));
            }
            let page = self.get(&url).await?;
            match page.f("items").as_array() {
                Some(a) => items.extend(a.iter().cloned()),
                None => match page.as_array() {
                    Some(a) => {
                        items.extend(a.iter().cloned());
                        return Ok(items);
                    }
                    None => anyhow::bail!("the server's answer to {path} is not a listing"),
                },
            }
            cursor = page.f("next_cursor").as_str().map(str::to_string);
            if cursor.is_none() {
                return Ok(items);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_urls_are_normalized_and_checked() {
        assert_eq!(
            normalize_base("https://k.example:8443/").unwrap(),
            "https://k.example:8443"
        );
        assert_eq!(
            normalize_base("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_base("k.example").is_err());
        assert!(normalize_base("ftp://k.example").is_err());
    }

    #[test]
    fn the_apis_message_is_shown_as_it_is() {
        let m = Api::message(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": "not_found", "message": "workspace not found"}}),
        );
        assert_eq!(m, "workspace not found");
        let m = Api::message(
            StatusCode::BAD_REQUEST,
            &json!({"error": "access_denied", "error_description": "denied"}),
        );
        assert_eq!(m, "denied");
        assert_eq!(
            Api::message(StatusCode::BAD_GATEWAY, &Value::Null),
            "the server answered 502 Bad Gateway"
        );
    }
}
