//! Money as integers: amounts in a currency's minor units (cents), unit prices in millionths
//! of the major unit, and the one rounding rule every amount goes through.
//!
//! **Rounding rule.** Each invoice line's amount is computed exactly (as a fraction of
//! integers, never a float) from its quantity and unit price and rounded once, to the
//! nearest minor unit, halves away from zero. The subtotal is the sum of the rounded lines;
//! tax is the subtotal times the tax rate, rounded by the same rule; total = subtotal + tax.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An ISO 4217 code such as `EUR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    /// The currency of new plans and accounts when nothing else is set.
    // DEFAULT_CURRENCY is a constant ISO 4217 code that `parse` accepts (a unit test says so).
    #[allow(clippy::expect_used)]
    pub fn platform_default() -> Currency {
        Currency::parse(super::prices::DEFAULT_CURRENCY).expect("DEFAULT_CURRENCY is a valid code")
    }

    pub fn parse(code: &str) -> Result<Currency, String> {
        let code = code.trim();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code.to_string()))
        } else {
            Err(format!(
                "{code:?} is not a currency code; use three capital letters such as EUR or USD"
            ))
        }
    }

    pub fn code(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point of the minor unit (ISO 4217). Most currencies have 2.
    pub fn minor_digits(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// Formats minor units as a decimal amount, e.g. `1234` EUR → `12.34`.
    pub fn format(&self, minor: i64) -> String {
        format_scaled(minor as i128, self.minor_digits())
    }

    /// Formats a unit price given in millionths of the major unit, without trailing zeros
    /// beyond the currency's own digits, e.g. `12500` EUR → `0.0125`.
    pub fn format_unit_price(&self, micros: i64) -> String {
        let full = format_scaled(micros as i128, 6);
        let digits = self.minor_digits() as usize;
        let Some((int, frac)) = full.split_once('.') else {
            return full;
        };
        let trimmed = frac.trim_end_matches('0');
        let frac = if trimmed.len() < digits {
            &frac[..digits]
        } else {
            trimmed
        };
        if frac.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        }
    }

    /// Parses a decimal amount in the major unit (`"49.90"`) into minor units.
    pub fn parse_amount(&self, text: &str) -> Result<i64, String> {
        parse_scaled(text, self.minor_digits())
    }

    /// Parses a decimal unit price in the major unit (`"0.0125"`) into millionths.
    pub fn parse_unit_price(text: &str) -> Result<i64, String> {
        parse_scaled(text, 6)
    }

    /// 10^(6 − minor digits): millionths of the major unit per minor unit.
    pub fn micros_per_minor(&self) -> i128 {
        10i128.pow(6 - self.minor_digits())
    }
}

fn format_scaled(v: i128, digits: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let v = v.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{v}");
    }
    let scale = 10u128.pow(digits);
    format!(
        "{sign}{}.{:0width$}",
        v / scale,
        v % scale,
        width = digits as usize
    )
}

/// A non-negative decimal with at most `digits` places, scaled to an integer.
fn parse_scaled(text: &str, digits: u32) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("{t:?} is not an amount like 12.50 (at most {digits} decimal places)");
    if t.is_empty() || t.starts_with('-') || t.starts_with('+') {
        return Err(bad());
    }
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > digits as usize
        || (t.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let int: i64 = int.parse().map_err(|_| bad())?;
    let frac_v: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(digits - frac.len() as u32)
    };
    int.checked_mul(10i64.pow(digits))
        .and_then(|v| v.checked_add(frac_v))
        .filter(|v| *v <= MAX_AMOUNT)
        .ok_or_else(|| format!("{t:?} is too large"))
}

/// Amounts above this are refused on input, so that every product in an invoice computation
/// fits comfortably in an i128.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// `num / den` rounded to the nearest integer, halves away from zero. `den` must be > 0.
pub fn round_div(num: i128, den: i128) -> i128 {
    assert!(den > 0, "rounding by a non-positive denominator");
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den {
        q + num.signum()
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_default_currency_is_a_valid_code() {
        assert_eq!(
            Currency::platform_default().code(),
            super::super::prices::DEFAULT_CURRENCY
        );
    }

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert_eq!(Currency::parse("JPY").unwrap().minor_digits(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_digits(), 3);
        assert_eq!(eur().minor_digits(), 2);
    }

    #[test]
    fn amounts_parse_and_format() {
        let e = eur();
        assert_eq!(e.parse_amount("49.90"), Ok(4990));
        assert_eq!(e.parse_amount("49.9"), Ok(4990));
        assert_eq!(e.parse_amount("49"), Ok(4900));
        assert_eq!(e.parse_amount("0.05"), Ok(5));
        for bad in ["", "-1", "1.234", "1.", ".5", "1,5", "abc", "1e3"] {
            assert!(e.parse_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(e.format(4990), "49.90");
        assert_eq!(e.format(5), "0.05");
        assert_eq!(e.format(-5), "-0.05");
        assert_eq!(Currency::parse("JPY").unwrap().format(500), "500");
        assert_eq!(Currency::parse_unit_price("0.0125"), Ok(12_500));
        assert_eq!(e.format_unit_price(12_500), "0.0125");
        assert_eq!(e.format_unit_price(500_000), "0.50");
        assert_eq!(e.format_unit_price(3_000_000), "3.00");
        assert!(Currency::parse_unit_price("0.0000001").is_err());
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_div(5, 2), 3);
        assert_eq!(round_div(-5, 2), -3);
        assert_eq!(round_div(4, 3), 1);
        assert_eq!(round_div(5, 3), 2);
        assert_eq!(round_div(149, 100), 1);
        assert_eq!(round_div(150, 100), 2);
        assert_eq!(round_div(0, 7), 0);
    }
}
