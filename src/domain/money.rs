//! Money as integer minor units plus the currency's ISO 4217 exponent. Never a float.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// ISO 4217 exponents of the currencies 2C2P serves (docs/2c2p.md, "Currencies"). IDR follows ISO (2); 2C2P
/// may require integral IDR amounts, which an integral amount satisfies either way.
const CURRENCIES: &[(&str, u32)] = &[
    ("AUD", 2),
    ("BDT", 2),
    ("BND", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("IDR", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KHR", 2),
    ("KRW", 0),
    ("LAK", 2),
    ("LKR", 2),
    ("MMK", 2),
    ("MOP", 2),
    ("MYR", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
];

/// Why an amount was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency `{0}` is not supported")]
    UnknownCurrency(String),
    #[error("amount `{0}` is not a decimal number")]
    NotANumber(String),
    #[error("amount `{amount}` has more decimals than {currency} allows ({exponent})")]
    TooPrecise { amount: String, currency: String, exponent: u32 },
    #[error("amount `{0}` must not be negative")]
    Negative(String),
    #[error("amount `{0}` is too large")]
    TooLarge(String),
}

/// The ISO 4217 exponent of `currency` (upper-case alpha-3).
pub fn exponent_of(currency: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _)| *c == currency).map(|(_, e)| *e)
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: String,
    pub exponent: u32,
}

impl Money {
    /// Parses a major-unit decimal as 2C2P sends it (`"230.87"`, `1000.0`, `000000002500.90000`).
    /// Trailing zeros beyond the currency's exponent are fine; significant digits are not.
    pub fn parse_major(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let currency = currency.trim().to_ascii_uppercase();
        let exponent = exponent_of(&currency).ok_or_else(|| MoneyError::UnknownCurrency(currency.clone()))?;
        let text = amount.trim();
        let parsed = if text.contains(['e', 'E']) { Decimal::from_scientific(text) } else { Decimal::from_str(text) }
            .map_err(|_| MoneyError::NotANumber(text.to_string()))?;
        if parsed.is_sign_negative() && !parsed.is_zero() {
            return Err(MoneyError::Negative(text.to_string()));
        }
        let normalized = parsed.normalize();
        if normalized.scale() > exponent {
            return Err(MoneyError::TooPrecise { amount: text.to_string(), currency, exponent });
        }
        let scaled = normalized
            .checked_mul(Decimal::from(10i64.pow(exponent)))
            .ok_or_else(|| MoneyError::TooLarge(text.to_string()))?
            .normalize();
        let minor = i64::try_from(scaled.mantissa()).map_err(|_| MoneyError::TooLarge(text.to_string()))?;
        if scaled.scale() != 0 || minor > 999_999_999_999_999 {
            return Err(MoneyError::TooLarge(text.to_string()));
        }
        Ok(Money { minor, currency, exponent })
    }

    /// The amount in major units as a decimal string with exactly `exponent` decimals.
    pub fn major_string(&self) -> String {
        let d = Decimal::new(self.minor, self.exponent);
        format!("{d:.prec$}", prec = self.exponent as usize)
    }

    /// The JSON form used in events and the API (docs/events.md): `{"minor", "currency", "exponent", "value"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "minor": self.minor,
            "currency": self.currency,
            "exponent": self.exponent,
            "value": self.major_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_format_the_gateway_uses() {
        let cases = [
            ("230.87", "THB", 23087),
            ("1000.0", "SGD", 100000),
            ("1000", "SGD", 100000),
            ("000000002500.90000", "THB", 250090),
            ("6420", "THB", 642000),
            ("70.0", "sgd", 7000),
            ("1e3", "USD", 100000),
            ("150000", "VND", 150000),
            ("150000.000", "JPY", 150000),
            ("0", "THB", 0),
        ];
        for (text, cur, minor) in cases {
            let m = Money::parse_major(text, cur).unwrap_or_else(|e| panic!("{text} {cur}: {e}"));
            assert_eq!(m.minor, minor, "{text} {cur}");
        }
    }

    #[test]
    fn rejects_what_is_not_money() {
        assert!(matches!(Money::parse_major("1.005", "THB"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::parse_major("1.5", "JPY"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::parse_major("abc", "THB"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse_major("-1", "THB"), Err(MoneyError::Negative(_))));
        assert!(matches!(Money::parse_major("1", "XXX"), Err(MoneyError::UnknownCurrency(_))));
        assert!(matches!(Money::parse_major("1e20", "THB"), Err(MoneyError::TooLarge(_))));
        assert!(matches!(Money::parse_major("NaN", "THB"), Err(MoneyError::NotANumber(_))));
    }

    #[test]
    fn formats_major_units_with_the_exponent() {
        assert_eq!(Money::parse_major("230.87", "THB").unwrap().major_string(), "230.87");
        assert_eq!(Money::parse_major("1000.0", "SGD").unwrap().major_string(), "1000.00");
        assert_eq!(Money::parse_major("5", "JPY").unwrap().major_string(), "5");
        assert_eq!(
            Money::parse_major("0.5", "THB").unwrap().to_json(),
            serde_json::json!({"minor": 50, "currency": "THB", "exponent": 2, "value": "0.50"})
        );
    }
}
