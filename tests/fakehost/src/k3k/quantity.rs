//! Kubernetes resource quantities (`500m`, `2`, `1Gi`, `1.5G`), just enough to sum pod
//! requests/limits into a ResourceQuota's `status.used` the way the quota controller does,
//! and to write a quantity back in the canonical form a Go `resource.Quantity` takes.

/// A quantity in thousandths of its base unit (millicores, millibytes), so CPU and memory
/// sums are exact for the forms Kubernetes users write.
pub fn parse_milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor_milli: i128 = match suffix {
        "" => 1000,
        "m" => 1,
        "k" => 1000 * 1000,
        "M" => 1000 * 1_000_000,
        "G" => 1000 * 1_000_000_000,
        "T" => 1000 * 1_000_000_000_000,
        "Ki" => 1000 * 1024,
        "Mi" => 1000 * 1024 * 1024,
        "Gi" => 1000 * 1024 * 1024 * 1024,
        "Ti" => 1000 * 1024 * 1024 * 1024 * 1024,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: i128 = if whole.is_empty() || whole == "+" {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(factor_milli)?;
    if !fraction.is_empty() {
        let digits = fraction.len().min(12) as u32;
        let fraction: i128 = fraction[..digits as usize].parse().ok()?;
        value = value.checked_add(fraction.checked_mul(factor_milli)? / 10_i128.pow(digits))?;
    }
    Some(value)
}

/// Renders a milli-quantity the way kube prints quota usage: whole numbers plainly, CPU-like
/// fractions as `NNNm`, and byte counts that are exact multiples of Ki/Mi/Gi with that suffix.
pub fn format_milli(milli: i128, binary: bool) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let whole = milli / 1000;
    if binary && whole != 0 {
        for (suffix, size) in [
            ("Ti", 1_i128 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if whole % size == 0 {
                return format!("{}{suffix}", whole / size);
            }
        }
    }
    whole.to_string()
}

/// The canonical form Go's `resource.Quantity` gives a quantity it parsed (`1000m` → `1`,
/// `1024Mi` → `1Gi`, `1.5Gi` → `1536Mi`, `0.5` → `500m`); text that is no quantity is kept.
pub fn canonical(text: &str) -> String {
    let Some(milli) = parse_milli(text) else {
        return text.to_string();
    };
    let binary = text.trim().ends_with('i');
    if milli % 1000 != 0 || milli == 0 {
        return format_milli(milli, false);
    }
    if binary {
        return format_milli(milli, true);
    }
    let whole = milli / 1000;
    for (suffix, size) in [
        ("E", 1_000_000_000_000_000_000_i128),
        ("P", 1_000_000_000_000_000),
        ("T", 1_000_000_000_000),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
        ("k", 1_000),
    ] {
        if whole % size == 0 {
            return format!("{}{suffix}", whole / size);
        }
    }
    whole.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_milli("500m"), Some(500));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("1Gi"), Some(1000 * (1 << 30)));
        assert_eq!(parse_milli("bogus"), None);
        assert_eq!(format_milli(1500, false), "1500m");
        assert_eq!(format_milli(2000, false), "2");
        assert_eq!(format_milli(1000 * 3 * (1 << 20), true), "3Mi");
        for (written, stored) in [
            ("1000m", "1"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5", "500m"),
            ("2G", "2G"),
            ("2000M", "2G"),
            ("1500000", "1500k"),
            ("512Mi", "512Mi"),
        ] {
            assert_eq!(canonical(written), stored, "{written}");
        }
    }
}
