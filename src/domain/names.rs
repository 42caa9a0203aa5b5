//! Validation of names people choose: Kubernetes object names (DNS-1123 labels), display
//! names and e-mail addresses. Every name that ends up in a Kubernetes object is checked
//! here before it is stored, so the reconciler never meets a name the API server refuses.

/// A name that broke a rule, with the rule in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameProblem(pub String);

/// A DNS-1123 label: 1–`max` characters of `a-z`, `0-9` and `-`, starting with a letter
/// (Kubernetes allows a leading digit, but names starting with a letter are safer in the
/// prefixes kaas builds around them) and ending with a letter or digit.
pub fn check_dns_label(name: &str, max: usize) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem("must not be empty".into()));
    }
    if name.len() > max {
        return Err(NameProblem(format!(
            "must be at most {max} characters (got {})",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameProblem(format!(
            "may contain only lower-case letters, digits and '-' (found {c:?})"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(NameProblem("must start with a lower-case letter".into()));
    }
    if name.ends_with('-') {
        return Err(NameProblem("must end with a letter or digit".into()));
    }
    Ok(())
}

/// Names kaas reserves inside a virtual cluster: projects must not collide with system
/// namespaces.
pub fn check_project_name(name: &str) -> Result<(), NameProblem> {
    check_dns_label(name, 63)?;
    const RESERVED: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
    if RESERVED.contains(&name) || name.starts_with("kube-") || name.starts_with("kaas-") {
        return Err(NameProblem(format!(
            "{name:?} is reserved for the system; choose another name"
        )));
    }
    Ok(())
}

/// Organization and workspace names: DNS labels of at most 40 characters, so
/// `kaas-ws-…` style names built from them stay within Kubernetes limits.
pub fn check_resource_name(name: &str) -> Result<(), NameProblem> {
    check_dns_label(name, 40)
}

/// A human display name: 1–100 characters, no control, invisible or bidi-override
/// characters ([`check_text`]).
pub fn check_display_name(name: &str) -> Result<(), NameProblem> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(NameProblem("must not be empty".into()));
    }
    if trimmed.chars().count() > 100 {
        return Err(NameProblem("must be at most 100 characters".into()));
    }
    // NB: `trim` drops U+2028/U+2029 at the ends as white space; they are refused there too.
    check_text(trimmed, false)?;
    match name.chars().find(|c| is_invisible(*c)) {
        Some(c) => Err(invisible(c)),
        None => Ok(()),
    }
}

fn invisible(c: char) -> NameProblem {
    NameProblem(format!(
        "must not contain invisible or text-direction characters (found U+{:04X})",
        c as u32
    ))
}

/// Whether `c` is in Unicode general category Cf (format: zero-width characters, bidi
/// embeddings, overrides and isolates, the byte-order mark, tags), Zl (U+2028) or Zp
/// (U+2029). Such characters are invisible or reorder what is shown around them, so a name
/// holding them can pose as another. The Cf list is Unicode 16's, in full.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Free text people type (names, descriptions, billing details): no control characters
/// (general category Cc) and nothing [`is_invisible`]. `multi_line` lets line breaks
/// (`\n`, and `\r` before it) through, for an address.
pub fn check_text(text: &str, multi_line: bool) -> Result<(), NameProblem> {
    for c in text.chars() {
        if multi_line && (c == '\n' || c == '\r') {
            continue;
        }
        if c.is_control() {
            return Err(NameProblem(format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            )));
        }
        if is_invisible(c) {
            return Err(invisible(c));
        }
    }
    Ok(())
}

/// Normalises an e-mail address (trim, lower-case) and checks its shape. kaas does not send
/// mail, so the check is about catching typos, not proving deliverability.
/// The longest e-mail address there is (RFC 5321's path limit less its angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

pub fn normalize_email(email: &str) -> Result<String, NameProblem> {
    let e = email.trim().to_ascii_lowercase();
    let bad = || NameProblem(format!("{email:?} is not an e-mail address"));
    if e.len() > MAX_EMAIL_BYTES || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(bad());
    }
    if !domain.contains('.') && domain != "localhost" {
        return Err(bad());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(bad());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_kubernetes_rules() {
        assert!(check_dns_label("web-1", 63).is_ok());
        for bad in ["", "Web", "web_1", "-web", "web-", "1web", "wéb"] {
            assert!(check_dns_label(bad, 63).is_err(), "{bad} accepted");
        }
        let long = "a".repeat(64);
        let err = check_dns_label(&long, 63).unwrap_err();
        assert!(err.0.contains("at most 63"), "{err}");
    }

    #[test]
    fn reserved_project_names_are_refused() {
        assert!(check_project_name("kube-system").is_err());
        assert!(check_project_name("default").is_err());
        assert!(check_project_name("kaas-anything").is_err());
        assert!(check_project_name("payments").is_ok());
    }

    #[test]
    fn invisible_and_bidi_characters_are_refused_in_names() {
        for bad in [
            "ada\u{202E}evil",
            "a\u{200B}da",
            "ada\u{2028}",
            "\u{FEFF}ada",
            "ad\u{2029}a",
            "a\u{E0041}",
            "a\u{00AD}b",
            "a\nb",
            "a\u{7}b",
        ] {
            assert!(check_display_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["Ada Lovelace", "Zoë d'Arc", "東京チーム", "مرحبا"] {
            assert!(check_display_name(good).is_ok(), "{good:?} refused");
        }
        assert!(check_text("Main St 1\r\n10115 Berlin", true).is_ok());
        assert!(check_text("Main St 1\n\u{202E}", true).is_err());
        assert!(check_text("Main St 1\n10115 Berlin", false).is_err());
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "ada", "ada@", "@x.io", "a b@x.io", "a@b@c.io", "a@x..io", "a@nodot",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} accepted");
        }
    }
}
