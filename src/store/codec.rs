//! How records become bytes: one format-version byte, then JSON. JSON keeps additive changes
//! painless (new fields take `#[serde(default)]`); the version byte lets a future layout be
//! told apart. Decoding never panics: bad bytes become [`StoreError::Corrupt`] naming the
//! table and key, so one damaged record cannot take the server down.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The record format this binary writes.
pub const FORMAT_V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_V1);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::Internal(format!("encoding a record: {e}")))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    table: &str,
    key: &dyn std::fmt::Display,
) -> Result<T, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt {
        table: table.to_string(),
        key: key.to_string(),
        why,
    };
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
        }
        Some((v, _)) => Err(corrupt(format!("unknown record format {v}"))),
        None => Err(corrupt("empty value".into())),
    }
}
