//! The console's static files (CSS, JS, icon sprite), embedded in the binary and served
//! under `/static/<version>/<file>` where the version is a digest of all of them: a new
//! build gets new URLs, so browsers may cache each file for a year.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;
use sha2::{Digest, Sha256};

#[derive(Embed)]
#[folder = "static/"]
struct Assets;

/// The digest of every embedded file, 12 hex characters.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut h = Sha256::new();
        for n in names {
            h.update(n.as_bytes());
            if let Some(f) = Assets::get(&n) {
                h.update(f.metadata.sha256_hash());
            }
        }
        hex::encode(h.finalize())[..12].to_string()
    })
}

/// The response for `/static/<v>/<file>`, or `None` when there is no such file in this
/// build (the router answers that with the console's 404 page).
pub fn response(v: &str, file: &str) -> Option<Response> {
    // NB: an old version's URL is not answered with new content that would then be
    // cached for a year under the old name.
    if v != version() {
        return None;
    }
    let f = Assets::get(file)?;
    let mime = f.metadata.mimetype();
    let mut res = f.data.into_owned().into_response();
    let h = res.headers_mut();
    if let Ok(m) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, m);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Some(res)
}
