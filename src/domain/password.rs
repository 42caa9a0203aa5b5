//! Password policy: which new passwords are refused, with a message fit to show next to the
//! form field. Pure: no I/O, no hashing (that is the caller's job).
//!
//! Rules, in the order they are checked (the first that applies is reported):
//! length (counted in characters, not bytes; at most 256), one character repeated, a simple
//! sequence (abcdef, 987654, 1234567890, keyboard rows, or such a run repeated), a short
//! pattern repeated, the email address or its local part inside the password, and finally the
//! embedded list of commonly leaked passwords (`common_passwords.txt`, lowercase, one per
//! line), compared case-insensitively, also after stripping trailing digits and punctuation
//! ("Password123!" is "password") and after undoing common letter substitutions ("p@ssw0rd").

use std::collections::HashSet;
use std::sync::OnceLock;

/// Longest password accepted; longer ones only make hashing slower.
pub const MAX_PASSWORD_CHARS: usize = 256;

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// A stripped form shorter than this is not looked up: "ab" + digits is not a known password.
const MIN_STRIPPED_LEN: usize = 4;

/// Keyboard walks, each also checked reversed.
const KEYBOARD_ROWS: &[&str] = &[
    "`1234567890-=",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "qazwsxedcrfvtgbyhnujmikolp",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qwertzuiop",
    "azertyuiop",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("Password must be at least {min} characters (it has {actual})")]
    TooShort { min: usize, actual: usize },
    #[error("Password must be at most {max} characters")]
    TooLong { max: usize },
    #[error("Password must not be one character repeated")]
    OneCharacter,
    #[error("Password must not be a simple sequence such as \"abcdef\", \"123456\" or \"qwerty\"")]
    Sequence,
    #[error("Password must not be a short pattern repeated")]
    Repeated,
    #[error("Password must not contain your email address or the part before the @")]
    ContainsEmail,
    #[error("This password is one of the most commonly used; choose a less predictable one")]
    Common,
}

/// Checks a new password for the account with `email`, requiring at least `min_len` characters.
pub fn check_password(password: &str, email: &str, min_len: usize) -> Result<(), PasswordProblem> {
    let actual = password.chars().count();
    if actual < min_len {
        return Err(PasswordProblem::TooShort {
            min: min_len,
            actual,
        });
    }
    if actual > MAX_PASSWORD_CHARS {
        return Err(PasswordProblem::TooLong {
            max: MAX_PASSWORD_CHARS,
        });
    }
    let lower = password.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();

    if chars.iter().zip(chars.iter().skip(1)).all(|(a, b)| a == b) {
        return Err(PasswordProblem::OneCharacter);
    }
    if is_sequence(&chars) {
        return Err(PasswordProblem::Sequence);
    }
    if let Some(unit) = smallest_period(&chars) {
        if is_sequence(unit) {
            return Err(PasswordProblem::Sequence);
        }
        if unit.len() <= 3 {
            return Err(PasswordProblem::Repeated);
        }
    }
    if contains_email(&lower, email) {
        return Err(PasswordProblem::ContainsEmail);
    }
    if is_common(&lower) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

fn common_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

fn is_common(lower: &str) -> bool {
    let set = common_set();
    let stripped = lower.trim_end_matches(|c: char| {
        c.is_ascii_digit() || c.is_ascii_punctuation() || c.is_whitespace()
    });
    let unleeted = unleet(stripped);
    let unleeted_stripped =
        unleeted.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    set.contains(lower)
        || [stripped, unleeted.as_str(), unleeted_stripped]
            .iter()
            .any(|c| c.chars().count() >= MIN_STRIPPED_LEN && set.contains(c))
}

/// Undoes the usual character substitutions ("p@ssw0rd" → "password").
fn unleet(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '@' | '4' => 'a',
            '0' => 'o',
            '1' | '!' => 'i',
            '3' => 'e',
            '$' | '5' => 's',
            '7' => 't',
            c => c,
        })
        .collect()
}

fn contains_email(lower: &str, email: &str) -> bool {
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return false;
    }
    if lower.contains(&email) {
        return true;
    }
    let local = email.split('@').next().unwrap_or_default();
    // A very short local part ("jo") appears inside many unrelated passwords; only equality
    // counts for those.
    if local.chars().count() >= 4 {
        lower.contains(local)
    } else {
        !local.is_empty() && lower == local
    }
}

/// Whole string is one run of consecutive characters up or down (digits wrap 9→0), or a
/// stretch of a keyboard row.
fn is_sequence(chars: &[char]) -> bool {
    if chars.len() < 3 {
        return false;
    }
    let step = |a: char, b: char| -> Option<i32> {
        match (a, b) {
            ('9', '0') => Some(1),
            ('0', '9') => Some(-1),
            _ => Some(b as i32 - a as i32),
        }
    };
    let steps: Vec<Option<i32>> = chars
        .iter()
        .zip(chars.iter().skip(1))
        .map(|(a, b)| step(*a, *b))
        .collect();
    if steps.iter().all(|s| *s == Some(1)) || steps.iter().all(|s| *s == Some(-1)) {
        return true;
    }
    let text: String = chars.iter().collect();
    let reversed: String = chars.iter().rev().collect();
    KEYBOARD_ROWS
        .iter()
        .any(|row| row.contains(&text) || row.contains(&reversed))
}

/// The shortest unit that, repeated (the last copy may be partial), makes up the whole string,
/// if it occurs at least twice.
fn smallest_period(chars: &[char]) -> Option<&[char]> {
    let n = chars.len();
    (1..=n / 2)
        .find(|&p| (p..n).all(|i| chars.get(i) == chars.get(i - p)))
        .and_then(|p| chars.get(..p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const EMAIL: &str = "Jane.Doe@example.com";

    fn check(p: &str) -> Result<(), PasswordProblem> {
        check_password(p, EMAIL, 12)
    }

    #[test]
    fn the_list_is_large_lowercase_and_loaded() {
        let set = common_set();
        assert!(set.len() >= 1000, "{}", set.len());
        assert!(COMMON_PASSWORDS.lines().all(|l| l == l.to_lowercase()));
        assert!(set.contains("password") && set.contains("123456") && set.contains("qwerty"));
    }

    #[test]
    fn good_passwords_pass() {
        for p in [
            "correct horse battery",
            "Tr0ub4dor&3-xylophone",
            "blue-otter-harbour-91",
            "ünïcödé-päss-wörd",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(
            check("short"),
            Err(PasswordProblem::TooShort { min: 12, actual: 5 })
        );
        // 11 characters, 22 bytes
        assert_eq!(
            check("ééééééééééx"),
            Err(PasswordProblem::TooShort {
                min: 12,
                actual: 11
            })
        );
        assert_eq!(check("éèêëēėęàáâ-x"), Ok(()), "12 characters, 22 bytes");
        assert_eq!(
            check(&"ab1-".repeat(65)[..257]).unwrap_err(),
            PasswordProblem::TooLong { max: 256 }
        );
        assert_eq!(
            check("short").unwrap_err().to_string(),
            "Password must be at least 12 characters (it has 5)"
        );
    }

    #[test]
    fn one_character_and_sequences_are_refused() {
        assert_eq!(check("aaaaaaaaaaaa"), Err(PasswordProblem::OneCharacter));
        assert_eq!(check("abcdefghijklm"), Err(PasswordProblem::Sequence));
        assert_eq!(check("ZYXWVUTSRQPO"), Err(PasswordProblem::Sequence));
        assert_eq!(check("123456789012"), Err(PasswordProblem::Sequence));
        assert_eq!(check("987654321098"), Err(PasswordProblem::Sequence));
        assert_eq!(check("qwertyuiop[]"), Err(PasswordProblem::Sequence));
        assert_eq!(check("1qaz2wsx3edc"), Err(PasswordProblem::Sequence));
        assert_eq!(check("qwertyqwerty"), Err(PasswordProblem::Sequence));
        assert_eq!(check("123412341234"), Err(PasswordProblem::Sequence));
        assert_eq!(check("abababababab"), Err(PasswordProblem::Repeated));
        assert_eq!(check("xq7xq7xq7xq7"), Err(PasswordProblem::Repeated));
    }

    #[test]
    fn email_and_local_part_are_refused() {
        assert_eq!(
            check("jane.doe@example.com"),
            Err(PasswordProblem::ContainsEmail)
        );
        assert_eq!(
            check("my-JANE.DOE-secret"),
            Err(PasswordProblem::ContainsEmail)
        );
        // A short local part only counts when it is the whole password.
        assert_eq!(
            check_password("bo-river-lantern", "bo@example.com", 12),
            Ok(())
        );
        assert_eq!(
            check_password("xylophonebox", "xylophonebox@example.com", 12),
            Err(PasswordProblem::ContainsEmail)
        );
        assert_eq!(check_password("unrelated-words-here", "", 12), Ok(()));
    }

    #[test]
    fn common_passwords_are_refused_in_their_usual_disguises() {
        for p in [
            "password1234",
            "Password123!",
            "PASSWORD2024!!",
            "qwerty123456",
            "iloveyou2024",
            "Sunshine1234",
            "P@ssw0rd2024",
            "Dr4g0n123456",
            "football!!!!",
        ] {
            assert_eq!(check(p), Err(PasswordProblem::Common), "{p}");
        }
        assert_eq!(
            check("Password123!").unwrap_err().to_string(),
            "This password is one of the most commonly used; choose a less predictable one"
        );
    }

    #[test]
    fn min_length_comes_from_the_caller() {
        assert_eq!(check_password("river-otter", "a@b.c", 8), Ok(()));
        assert!(check_password("river-otter", "a@b.c", 12).is_err());
    }
}
