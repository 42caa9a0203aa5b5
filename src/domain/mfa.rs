//! The second factor for local accounts: TOTP (RFC 6238, 6 digits, 30-second steps, SHA-1 as
//! every authenticator app expects) and one-time recovery codes. Pure: the caller supplies
//! the secret, the time and the last step used; the result says which step matched, so the
//! caller stores it and the same code (or an older one) is refused afterwards.
//!
//! The protocol is `totp-rs`'s; this module only decides the window and the replay rule.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};
use utoipa::ToSchema;

use super::{SecretDigest, UserId};

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps either side of now that still count: a phone's clock may be this far off.
const SKEW_STEPS: u64 = 1;
/// Recovery codes handed out at enrolment (and at each regeneration).
pub const RECOVERY_CODES: usize = 10;
/// Shown in authenticator apps next to the account.
pub const ISSUER: &str = "kaas";

/// Who must have a second factor (`[mfa] require`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MfaRequirement {
    /// Nobody; each user may turn it on.
    #[default]
    None,
    /// Platform administrators.
    Admins,
    /// Every local account.
    Everyone,
}

impl MfaRequirement {
    pub fn applies_to(self, platform_admin: bool) -> bool {
        match self {
            MfaRequirement::None => false,
            MfaRequirement::Admins => platform_admin,
            MfaRequirement::Everyone => true,
        }
    }
}

/// A user's second factor as stored. The TOTP secret is kept as it is (the authenticator
/// needs it to compute codes, so it cannot be hashed); recovery codes only as digests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MfaRecord {
    pub user_id: UserId,
    /// Confirmed TOTP secret; `None` until a first code proved the authenticator has it.
    #[serde(default)]
    pub secret: Option<Vec<u8>>,
    /// The last step a code was accepted for: that code and older ones are refused.
    #[serde(default)]
    pub last_step: u64,
    #[serde(default)]
    pub enabled_at: Option<jiff::Timestamp>,
    /// A secret shown for enrolment and not yet confirmed by a code.
    #[serde(default)]
    pub pending_secret: Option<Vec<u8>>,
    /// SHA-256 digests of the unused recovery codes.
    #[serde(default)]
    pub recovery: Vec<SecretDigest>,
}

impl MfaRecord {
    pub fn new(user_id: UserId) -> MfaRecord {
        MfaRecord {
            user_id,
            secret: None,
            last_step: 0,
            enabled_at: None,
            pending_secret: None,
            recovery: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

/// A new TOTP secret: 160 random bits, the length RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP_SECS,
        secret.to_vec(),
        Some(ISSUER.to_string()),
        account.replace(':', "_"),
    )
    .ok()
}

/// The code for `step` (tests and the shell compute codes with it too).
pub fn code_at_step(secret: &[u8], step: u64) -> Option<String> {
    totp(secret, "").map(|t| t.generate(step.saturating_mul(STEP_SECS)))
}

/// The step a Unix time falls in.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Why a TOTP code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefused {
    /// Not six digits.
    Malformed,
    /// Matches no step in the window.
    Wrong,
    /// Matches a step at or before the last one used: a replay.
    Replayed,
}

/// Checks `code` against the steps around `unix_secs`; the step it matched, which must be
/// after `last_step`.
pub fn check_code(
    secret: &[u8],
    code: &str,
    unix_secs: u64,
    last_step: u64,
) -> Result<u64, CodeRefused> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeRefused::Malformed);
    }
    let now = step_of(unix_secs);
    let mut matched = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now.saturating_add(SKEW_STEPS) {
        if let Some(c) = code_at_step(secret, step)
            && constant_time_eq(c.as_bytes(), code.as_bytes())
        {
            matched = Some(step);
        }
    }
    match matched {
        None => Err(CodeRefused::Wrong),
        Some(s) if s <= last_step => Err(CodeRefused::Replayed),
        Some(s) => Ok(s),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `otpauth://` URI authenticator apps read (from the QR code or typed in).
pub fn otpauth_uri(secret: &[u8], account: &str) -> String {
    totp(secret, account).map_or_else(String::new, |t| t.get_url())
}

/// The secret as people type it: base32, in groups of four.
pub fn secret_for_typing(secret: &[u8]) -> String {
    let b32 = totp(secret, "").map_or_else(String::new, |t| t.get_secret_base32());
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The secret from its typed form (base32; spaces and case do not matter).
pub fn secret_from_typed(typed: &str) -> Option<Vec<u8>> {
    let b32: String = typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    totp_rs::Secret::Encoded(b32).to_bytes().ok()
}

/// The QR code of `uri` as an SVG document, drawn here: the page needs no external service.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// Alphabet of recovery codes: lower-case letters and digits without look-alikes.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// New recovery codes (`xxxxx-xxxxx`, about 49 random bits each, guarded by the sign-in
/// throttle) and the digests to store.
pub fn new_recovery_codes() -> (Vec<String>, Vec<SecretDigest>) {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut s = String::with_capacity(11);
        for i in 0..10 {
            if i == 5 {
                s.push('-');
            }
            let k = rng.random_range(0..RECOVERY_ALPHABET.len());
            s.push(RECOVERY_ALPHABET.get(k).map_or('a', |b| char::from(*b)));
        }
        codes.push(s);
    }
    let digests = codes.iter().map(|c| recovery_digest(c)).collect();
    (codes, digests)
}

/// The digest a recovery code is stored and looked up by; case, spaces and dashes do not
/// matter.
pub fn recovery_digest(code: &str) -> SecretDigest {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(norm.as_bytes()).into()
}

/// Whether `code` looks like a recovery code rather than a TOTP code.
pub fn is_recovery_code(code: &str) -> bool {
    code.chars().filter(char::is_ascii_alphanumeric).count() == 10
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_are_those_of_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, truncated to six digits.
        assert_eq!(code_at_step(RFC_SECRET, step_of(59)).unwrap(), "287082");
        assert_eq!(
            code_at_step(RFC_SECRET, step_of(1_111_111_109)).unwrap(),
            "081804"
        );
        assert_eq!(
            code_at_step(RFC_SECRET, step_of(2_000_000_000)).unwrap(),
            "279037"
        );
    }

    #[test]
    fn a_code_counts_one_step_either_side_and_never_twice() {
        let now = 1_790_000_000;
        let step = step_of(now);
        let code = code_at_step(RFC_SECRET, step).unwrap();
        assert_eq!(check_code(RFC_SECRET, &code, now, 0), Ok(step));
        assert_eq!(
            check_code(RFC_SECRET, &code, now, step),
            Err(CodeRefused::Replayed)
        );
        let before = code_at_step(RFC_SECRET, step - 1).unwrap();
        assert_eq!(
            check_code(RFC_SECRET, &before, now, step),
            Err(CodeRefused::Replayed)
        );
        assert_eq!(check_code(RFC_SECRET, &before, now, 0), Ok(step - 1));
        let old = code_at_step(RFC_SECRET, step - 3).unwrap();
        assert_eq!(
            check_code(RFC_SECRET, &old, now, 0),
            Err(CodeRefused::Wrong)
        );
        assert_eq!(
            check_code(RFC_SECRET, "12345", now, 0),
            Err(CodeRefused::Malformed)
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check_code(RFC_SECRET, &spaced, now, 0), Ok(step));
    }

    #[test]
    fn recovery_codes_are_distinct_and_found_by_their_digest() {
        let (codes, digests) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| is_recovery_code(c)));
        assert_eq!(recovery_digest(&codes[0].to_uppercase()), digests[0]);
        assert!(!is_recovery_code("123456"));
    }

    #[test]
    fn the_qr_code_and_uri_name_the_account() {
        let uri = otpauth_uri(RFC_SECRET, "ada@example.com");
        assert!(uri.starts_with("otpauth://totp/kaas:ada%40example.com?secret="));
        assert!(qr_svg(&uri).unwrap().contains("<svg"));
        assert_eq!(secret_for_typing(RFC_SECRET).split(' ').count(), 8);
        assert_eq!(
            secret_from_typed(&secret_for_typing(RFC_SECRET).to_lowercase()).unwrap(),
            RFC_SECRET
        );
    }

    #[test]
    fn the_requirement_names_who_must_enrol() {
        assert!(!MfaRequirement::None.applies_to(true));
        assert!(MfaRequirement::Admins.applies_to(true));
        assert!(!MfaRequirement::Admins.applies_to(false));
        assert!(MfaRequirement::Everyone.applies_to(false));
    }
}
