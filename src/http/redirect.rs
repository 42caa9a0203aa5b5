//! Where the console may send a browser back to after sign-in: only a path on this site.

/// A path on this site (`/x`, not `//host` or `/\host`, no scheme, no control characters),
/// safe to redirect to after sign-in.
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && !p.chars().any(|c| c.is_control() || c == '\\')
        && p.len() <= 2000
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert!(is_local_path("/orgs/org_x?tab=1"));
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/a\nb",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
