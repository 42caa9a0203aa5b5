//! Kubernetes resource quantities as a real API server stores them. A server keeps a built-in
//! object's quantities in canonical form ("2000m" → "2", "4096Mi" → "4Gi"), so kaas writes
//! them canonically — otherwise every comparison with the stored object sees a change and
//! every pass writes again — and compares quantities by value where a server may have
//! rewritten them (see [`same_quantity`]).

/// CPU from millicores, canonical: "125m", "2" (not "2000m"), "1k".
pub fn cpu(millis: u64) -> String {
    if !millis.is_multiple_of(1000) {
        return format!("{millis}m");
    }
    decimal(millis / 1000)
}

/// Bytes from mebibytes, canonical: "512Mi", "4Gi" (not "4096Mi").
pub fn mebibytes(mib: u64) -> String {
    binary(mib, 2)
}

/// Bytes from gibibytes, canonical: "10Gi", "1Ti".
pub fn gibibytes(gib: u64) -> String {
    binary(gib, 3)
}

/// A count, canonical: "50", "2k" for 2000.
pub fn count(n: u64) -> String {
    decimal(n)
}

fn decimal(mut n: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut i = 0;
    while n != 0 && n.is_multiple_of(1000) && i + 1 < SUFFIXES.len() {
        n /= 1000;
        i += 1;
    }
    format!("{n}{}", SUFFIXES.get(i).copied().unwrap_or_default())
}

/// `n` units of 1024^`power` bytes, with the largest binary suffix that keeps it whole.
fn binary(mut n: u64, mut power: usize) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if n == 0 {
        return "0".into();
    }
    while n.is_multiple_of(1024) && power + 1 < SUFFIXES.len() {
        n /= 1024;
        power += 1;
    }
    format!("{n}{}", SUFFIXES.get(power).copied().unwrap_or_default())
}

/// The value of a quantity in thousandths of its unit (exact for what kaas writes and for
/// a server's canonical forms), or `None` if `text` is no quantity this understands.
pub fn milli_value(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 3 || fraction.contains(['+', '-']) {
        return None;
    }
    let negative = whole.starts_with('-');
    let whole: i128 = match whole.trim_start_matches(['+', '-']) {
        "" => 0,
        digits => digits.parse().ok()?,
    };
    let fraction: i128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}").parse().ok()?
    };
    let milli = whole.checked_mul(1000)?.checked_add(fraction)?;
    let value = match suffix {
        // Thousandths already; a fraction of a thousandth is no quantity a server keeps.
        "m" if milli % 1000 == 0 => milli / 1000,
        "m" => return None,
        _ => milli.checked_mul(scale(suffix)?)?,
    };
    Some(if negative { -value } else { value })
}

fn scale(suffix: &str) -> Option<i128> {
    Some(match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    })
}

/// Whether two texts are the same quantity ("2000m" and "2", "4096Mi" and "4Gi"); texts that
/// are not both quantities are the same only if equal.
pub fn same_quantity(a: &str, b: &str) -> bool {
    a == b || matches!((milli_value(a), milli_value(b)), (Some(x), Some(y)) if x == y)
}

/// A Kubernetes quantity (`1500m`, `2`, `512Mi`, `1G`, `1e3`) as a plain number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in suffixes {
        if let Some(num) = s.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|v| v * factor);
        }
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_are_what_a_server_stores() {
        // Each pair: what kaas computes, what kube-apiserver v1.35 returns for it.
        assert_eq!(cpu(2000), "2");
        assert_eq!(cpu(1500), "1500m");
        assert_eq!(cpu(125), "125m");
        assert_eq!(cpu(0), "0");
        assert_eq!(cpu(1_000_000), "1k");
        assert_eq!(mebibytes(4096), "4Gi");
        assert_eq!(mebibytes(1536), "1536Mi");
        assert_eq!(mebibytes(512), "512Mi");
        assert_eq!(mebibytes(1024 * 1024), "1Ti");
        assert_eq!(gibibytes(10), "10Gi");
        assert_eq!(gibibytes(2048), "2Ti");
        assert_eq!(count(50), "50");
        assert_eq!(count(2000), "2k");
    }

    #[test]
    fn quantities_parse_as_plain_numbers() {
        assert_eq!(parse_quantity("1500m"), Some(1.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("512Mi"), Some(536_870_912.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn quantities_compare_by_value() {
        for (a, b) in [
            ("2000m", "2"),
            ("4096Mi", "4Gi"),
            ("1024Ki", "1Mi"),
            ("0.5", "500m"),
            ("1k", "1000"),
        ] {
            assert!(same_quantity(a, b), "{a} = {b}");
        }
        for (a, b) in [
            ("2", "3"),
            ("1Gi", "1G"),
            ("100m", "1"),
            ("web", "2"),
            ("", "0"),
        ] {
            assert!(!same_quantity(a, b), "{a} != {b}");
        }
        assert_eq!(milli_value("1.5"), Some(1500));
        assert_eq!(milli_value("ten"), None);
        assert_eq!(milli_value("10GB"), None);
    }
}
