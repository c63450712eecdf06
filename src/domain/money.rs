//! Money as integer minor units plus the currency's ISO 4217 exponent. Never a float.

use std::fmt;

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

/// The largest amount accepted, in minor units (15 digits).
pub const MAX_MINOR: i64 = 999_999_999_999_999;

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
    #[error("{currency} has another exponent than {exponent}")]
    WrongExponent { currency: String, exponent: i64 },
}

/// The ISO 4217 exponent of `currency` (upper-case alpha-3).
pub fn exponent_of(currency: &str) -> Option<u32> {
    Currency::parse(currency).ok().filter(|c| c.code() == currency).map(Currency::exponent)
}

/// A currency 2C2P serves, with its ISO 4217 exponent: only the table above makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

impl Currency {
    /// The currency with this alpha-3 code (surrounding whitespace and case ignored).
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let wanted = code.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == wanted)
            .map(|(code, exponent)| Currency { code, exponent: *exponent })
            .ok_or(MoneyError::UnknownCurrency(wanted))
    }

    /// The upper-case alpha-3 code.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimals of the minor unit.
    pub fn exponent(self) -> u32 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An amount of money: integer minor units of a [`Currency`], never negative, at most
/// [`MAX_MINOR`]. The exponent is the currency's; nothing else can be stored in one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "MoneyFields", try_from = "MoneyFields")]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// The JSON form of [`Money`] in stored observations: `{"minor", "currency", "exponent"}`.
#[derive(Serialize, Deserialize)]
struct MoneyFields {
    minor: i64,
    currency: String,
    exponent: u32,
}

impl From<Money> for MoneyFields {
    fn from(m: Money) -> Self {
        MoneyFields { minor: m.minor, currency: m.currency.code.to_string(), exponent: m.currency.exponent }
    }
}

impl TryFrom<MoneyFields> for Money {
    type Error = MoneyError;
    fn try_from(f: MoneyFields) -> Result<Money, MoneyError> {
        Money::from_stored(f.minor, &f.currency, i64::from(f.exponent))
    }
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative(minor.to_string()));
        }
        if minor > MAX_MINOR {
            return Err(MoneyError::TooLarge(minor.to_string()));
        }
        Ok(Money { minor, currency })
    }

    /// An amount as stored (minor units, currency code, exponent): an exponent that is not the
    /// currency's is an error, never guessed.
    pub fn from_stored(minor: i64, currency: &str, exponent: i64) -> Result<Money, MoneyError> {
        let currency = Currency::parse(currency)?;
        if exponent != i64::from(currency.exponent) {
            return Err(MoneyError::WrongExponent { currency: currency.code.to_string(), exponent });
        }
        Money::new(minor, currency)
    }

    /// Parses a major-unit amount as 2C2P sends it (`"230.87"`, `1000.0`, `000000002500.90000`).
    ///
    /// The text must be a plain decimal: ASCII digits with at most one point that has digits on
    /// both sides; no sign, exponent, separator or other character (surrounding whitespace is
    /// ignored). It is checked before any conversion and converted exactly: trailing zeros beyond
    /// the currency's exponent are fine, any other digit there is an error however small.
    pub fn parse_major(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let currency = Currency::parse(currency)?;
        let exponent = currency.exponent;
        let text = amount.trim();
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || (text.contains('.') && !digits(frac)) {
            let shown: String = text.chars().take(40).collect();
            return Err(
                if text.starts_with('-') && text.len() > 1 && digits(text[1..].split('.').next().unwrap_or("")) {
                    MoneyError::Negative(shown)
                } else {
                    MoneyError::NotANumber(shown)
                },
            );
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > exponent as usize {
            return Err(MoneyError::TooPrecise {
                amount: text.chars().take(40).collect(),
                currency: currency.code.to_string(),
                exponent,
            });
        }
        let int = int.trim_start_matches('0');
        let too_large = || MoneyError::TooLarge(text.chars().take(40).collect());
        if int.len() + exponent as usize > 15 {
            return Err(too_large());
        }
        let minor_text = format!("{int}{frac:0<width$}", width = exponent as usize);
        let minor = if minor_text.is_empty() { 0 } else { minor_text.parse::<i64>().map_err(|_| too_large())? };
        if minor > MAX_MINOR {
            return Err(too_large());
        }
        Ok(Money { minor, currency })
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Decimals of the minor unit (the currency's exponent).
    pub fn exponent(&self) -> u32 {
        self.currency.exponent
    }

    /// The amount in major units as a decimal string with exactly `exponent` decimals.
    pub fn major_string(&self) -> String {
        let d = Decimal::new(self.minor, self.exponent());
        format!("{d:.prec$}", prec = self.exponent() as usize)
    }

    /// The JSON form used in events and the API (docs/events.md): `{"minor", "currency", "exponent", "value"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "minor": self.minor,
            "currency": self.currency.code,
            "exponent": self.exponent(),
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
            ("150000", "VND", 150000),
            ("150000.000", "JPY", 150000),
            ("0", "THB", 0),
        ];
        for (text, cur, minor) in cases {
            let m = Money::parse_major(text, cur).unwrap_or_else(|e| panic!("{text} {cur}: {e}"));
            assert_eq!(m.minor(), minor, "{text} {cur}");
        }
    }

    #[test]
    fn rejects_what_is_not_money() {
        assert!(matches!(Money::parse_major("1.005", "THB"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::parse_major("1.5", "JPY"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::parse_major("abc", "THB"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse_major("-1", "THB"), Err(MoneyError::Negative(_))));
        assert!(matches!(Money::parse_major("1", "XXX"), Err(MoneyError::UnknownCurrency(_))));
        assert!(matches!(Money::parse_major("100000000000000000000", "THB"), Err(MoneyError::TooLarge(_))));
        assert!(matches!(Money::parse_major("1e20", "THB"), Err(MoneyError::NotANumber(_))), "no exponent");
        assert!(matches!(Money::parse_major("NaN", "THB"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse_major("1e3", "USD"), Err(MoneyError::NotANumber(_))));
    }

    #[test]
    fn an_amount_is_a_plain_exact_decimal() {
        // Beyond rust_decimal's 28 digits these used to round to 1000.00 and 0.00.
        for (text, cur) in [("1000.0000000000000000000000000001", "SGD"), ("0.00000000000000000000000000001", "SGD")] {
            assert!(matches!(Money::parse_major(text, cur), Err(MoneyError::TooPrecise { .. })), "{text}");
        }
        for text in
            ["1_000", "+1", "1,000", "1.", ".5", "1.2.3", "0x10", "1 000", "１０", "[1]", "", "1e-2", "Infinity"]
        {
            assert!(Money::parse_major(text, "SGD").is_err(), "{text:?} must not be money");
        }
        assert!(matches!(Money::parse_major("-0", "SGD"), Err(MoneyError::Negative(_))));
        assert_eq!(Money::parse_major("1000.000000000000000000000000000000", "SGD").unwrap().minor(), 100000);
        assert_eq!(Money::parse_major("9999999999999.99", "SGD").unwrap().minor(), 999_999_999_999_999);
        assert!(matches!(Money::parse_major("10000000000000", "SGD"), Err(MoneyError::TooLarge(_))));
        assert!(matches!(Money::parse_major("1000000000000000", "JPY"), Err(MoneyError::TooLarge(_))));
        assert_eq!(Money::parse_major("00000000000000000000001", "JPY").unwrap().minor(), 1);
    }

    #[test]
    fn a_stored_amount_must_carry_its_currencys_exponent() {
        assert_eq!(Money::from_stored(100, "SGD", 2).unwrap(), Money::parse_major("1", "SGD").unwrap());
        assert!(matches!(Money::from_stored(100, "SGD", 0), Err(MoneyError::WrongExponent { .. })));
        assert!(matches!(Money::from_stored(100, "JPY", -1), Err(MoneyError::WrongExponent { .. })));
        assert!(matches!(Money::from_stored(1, "XXX", 2), Err(MoneyError::UnknownCurrency(_))));
        assert!(matches!(Money::from_stored(-1, "SGD", 2), Err(MoneyError::Negative(_))));
        let json = serde_json::to_string(&Money::parse_major("0.5", "THB").unwrap()).unwrap();
        assert_eq!(json, r#"{"minor":50,"currency":"THB","exponent":2}"#, "the stored form is unchanged");
        assert!(serde_json::from_str::<Money>(r#"{"minor":50,"currency":"THB","exponent":0}"#).is_err());
        assert_eq!(exponent_of("JPY"), Some(0));
        assert_eq!(exponent_of("jpy"), None, "codes are upper case");
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

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn parsing_never_panics(amount in "\\PC{0,40}", currency in "[A-Za-z]{0,4}") {
                let _ = Money::parse_major(&amount, &currency);
            }

            #[test]
            fn a_normalised_amount_round_trips_to_the_same_decimal_text(
                major in 0i64..10_000_000_000_000,
                minor in 0i64..100,
                zeros in 0usize..20,
                leading in 0usize..5,
            ) {
                let exact = format!("{major}.{minor:02}");
                let sent = format!("{}{exact}{}", "0".repeat(leading), "0".repeat(zeros));
                let money = Money::parse_major(&sent, "SGD").unwrap();
                prop_assert_eq!(money.minor(), major * 100 + minor);
                prop_assert_eq!(money.major_string(), exact.clone());
                prop_assert_eq!(Money::parse_major(&money.major_string(), "SGD").unwrap(), money);
                // One more significant digit, however far out, is never rounded away.
                let beyond = format!("{exact}{}1", "0".repeat(zeros));
                prop_assert!(Money::parse_major(&beyond, "SGD").is_err(), "{}", beyond);
            }
        }
    }
}
