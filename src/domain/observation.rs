//! A normalised observation of an invoice's payment: what a verified backend notification or a
//! Payment Inquiry answer says, in domain types.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

use crate::domain::ids::{IdError, InvoiceNo, MerchantId};
use crate::domain::money::{Money, MoneyError};
use crate::domain::redact;
use crate::protocol::payment_result::PaymentResult;
use crate::protocol::resp_code::{self, CodeClass};

/// Where an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    BackendNotification,
    FrontendReturn,
    Inquiry,
}

impl Source {
    /// The spelling used in events and the API (`backend_notification`, `frontend_return`, `inquiry`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::BackendNotification => "backend_notification",
            Source::FrontendReturn => "frontend_return",
            Source::Inquiry => "inquiry",
        }
    }
}

/// A card number that is guaranteed masked: a value that looks like a full PAN is masked on
/// construction, keeping the first six and last four digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MaskedPan(String);

impl MaskedPan {
    /// Masks every card number in `raw` (see [`redact`]), and `raw` as a whole when it is 12 or
    /// more digits with spaces or dashes only.
    pub fn new(raw: &str) -> MaskedPan {
        let digits: Vec<char> = raw.chars().filter(|c| c.is_ascii_digit()).collect();
        let looks_full = raw.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') && digits.len() >= 12;
        if looks_full {
            let n = digits.len();
            let first: String = digits[..6].iter().collect();
            let last: String = digits[n - 4..].iter().collect();
            MaskedPan(format!("{first}{}{last}", "X".repeat(n - 10)))
        } else {
            // Redacted before cutting (a number across the cut), and after (the cut may leave a
            // number-shaped run, found by fuzzing).
            let cut: String = redact::text(raw).chars().take(32).collect();
            MaskedPan(redact::text(&cut).into_owned())
        }
    }

    /// The masked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a payment result could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("invoiceNo must be 1 to 50 printable characters")]
    BadInvoice,
    #[error("respCode `{0}` is not a 4-digit code")]
    BadRespCode(String),
    #[error("merchantID `{0}` does not match the merchant that signed it")]
    MerchantMismatch(String),
    #[error(transparent)]
    Amount(#[from] MoneyError),
    #[error(transparent)]
    Id(#[from] IdError),
}

/// A normalised payment observation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observation {
    pub source: Source,
    pub merchant_id: MerchantId,
    pub invoice_no: InvoiceNo,
    pub resp_code: String,
    pub resp_desc: Option<String>,
    pub amount: Option<Money>,
    pub tran_ref: Option<String>,
    pub reference_no: Option<String>,
    pub approval_code: Option<String>,
    pub eci: Option<String>,
    pub channel_code: Option<String>,
    pub masked_pan: Option<MaskedPan>,
    pub customer_token: Option<String>,
    /// `transactionDateTime` read in the merchant's zone, RFC 3339 with offset.
    pub transaction_time: Option<String>,
    /// `transactionDateTime` as sent.
    pub transaction_time_raw: Option<String>,
    pub user_defined: [Option<String>; 5],
    /// Unix milliseconds when pgw-relay received it.
    pub received_at_ms: i64,
    /// The W3C `traceparent` of the span that observed it (a notification's or an inquiry's), when
    /// tracing is on. It travels to the events this observation causes and is never stored in the
    /// history.
    #[serde(skip)]
    pub traceparent: Option<String>,
}

impl Observation {
    /// What the response code means.
    pub fn class(&self) -> CodeClass {
        resp_code::classify(&self.resp_code)
    }

    /// Builds an observation from verified claims of `merchant_id`, reading times in `zone`.
    pub fn from_payment_result(
        result: &PaymentResult,
        source: Source,
        merchant_id: &str,
        zone: FixedOffset,
        received_at_ms: i64,
    ) -> Result<Observation, NormalizeError> {
        if let Some(claimed) = &result.merchant_id {
            if claimed != merchant_id {
                return Err(NormalizeError::MerchantMismatch(claimed.clone()));
            }
        }
        let invoice_no = result.invoice_no.as_deref().ok_or(NormalizeError::Missing("invoiceNo"))?;
        let invoice_no = InvoiceNo::parse(invoice_no).map_err(|_| NormalizeError::BadInvoice)?;
        let merchant_id = MerchantId::parse(merchant_id)?;
        let raw_code = result.resp_code.clone().ok_or(NormalizeError::Missing("respCode"))?;
        let resp_code = resp_code::normalize(&raw_code).ok_or(NormalizeError::BadRespCode(raw_code))?;
        // An amount is only ever read with its currency: one without the other is an error.
        let amount = match (&result.amount, &result.currency_code) {
            (Some(a), Some(c)) => Some(Money::parse_major(a, c)?),
            (Some(_), None) => return Err(NormalizeError::Missing("currencyCode (the amount has none)")),
            (None, Some(_)) => return Err(NormalizeError::Missing("amount (a currencyCode is given)")),
            (None, None) => None,
        };
        let transaction_time =
            result.transaction_date_time.as_deref().and_then(|raw| parse_local_time(raw, zone)).map(|t| t.to_rfc3339());
        Ok(Observation {
            source,
            merchant_id,
            invoice_no,
            resp_code,
            resp_desc: result.resp_desc.clone(),
            amount,
            tran_ref: result.tran_ref.clone(),
            reference_no: result.reference_no.clone(),
            approval_code: result.approval_code.clone(),
            eci: result.eci.clone(),
            channel_code: result.channel_code.clone(),
            masked_pan: result.account_no.as_deref().map(MaskedPan::new),
            customer_token: result.customer_token.clone(),
            transaction_time,
            transaction_time_raw: result.transaction_date_time.clone(),
            user_defined: result.user_defined().map(Clone::clone),
            received_at_ms,
            traceparent: None,
        })
    }
}

/// Reads `yyyyMMddHHmmss` as local time in `zone`.
pub fn parse_local_time(raw: &str, zone: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let naive = NaiveDateTime::parse_from_str(raw.trim(), "%Y%m%d%H%M%S").ok()?;
    zone.from_local_datetime(&naive).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> PaymentResult {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn normalises_a_real_4_1_notification() {
        let r = result(
            r#"{"cardNo":"411111XXXXXX1111","cardToken":"","merchantID":"702702000001875","invoiceNo":"pay1","amount":1000.0,
            "currencyCode":"SGD","tranRef":"4790185","transactionDateTime":"20220401135359","respCode":"0000","respDesc":"Success",
            "userDefined1":"a","approvalCode":null}"#,
        );
        let zone = "+08:00".parse().unwrap();
        let o = Observation::from_payment_result(&r, Source::BackendNotification, "702702000001875", zone, 0).unwrap();
        assert_eq!(o.amount.as_ref().unwrap().minor(), 100000);
        assert_eq!(o.amount.as_ref().unwrap().exponent(), 2);
        assert_eq!(o.resp_code, "0000");
        assert_eq!(o.class(), CodeClass::Succeeded);
        assert_eq!(o.transaction_time.as_deref(), Some("2022-04-01T13:53:59+08:00"));
        assert_eq!(o.transaction_time_raw.as_deref(), Some("20220401135359"));
        assert_eq!(o.masked_pan.unwrap().as_str(), "411111XXXXXX1111");
        assert_eq!(o.customer_token, None);
        assert_eq!(o.approval_code, None);
        assert_eq!(o.user_defined[0].as_deref(), Some("a"));
    }

    #[test]
    fn a_full_card_number_is_masked() {
        assert_eq!(MaskedPan::new("4111111111111111").as_str(), "411111XXXXXX1111");
        assert_eq!(MaskedPan::new("5129 7200 0000 0223").as_str(), "512972XXXXXX0223");
        assert_eq!(MaskedPan::new("512972XXXXXX0223").as_str(), "512972XXXXXX0223");
        // Cut to 32 characters, a 38-digit run would end in a Luhn-valid 17-digit one.
        let cut = MaskedPan::new(&format!("4invoiceNo4444t{}KK21", "4".repeat(38)));
        assert!(!redact::contains_card_number(cut.as_str()), "{}", cut.as_str());
    }

    #[test]
    fn rejects_missing_or_bad_fields() {
        let zone = "+07:00".parse().unwrap();
        let cases = [
            (r#"{"respCode":"0000"}"#, "invoiceNo"),
            (r#"{"invoiceNo":"1"}"#, "respCode"),
            (r#"{"invoiceNo":"1","respCode":"00x0"}"#, "respCode"),
            (r#"{"invoiceNo":"1","respCode":"0000","amount":"1.001","currencyCode":"THB"}"#, "decimals"),
            (r#"{"invoiceNo":"1","respCode":"0000","merchantID":"OTHER"}"#, "does not match"),
            (r#"{"invoiceNo":"1","respCode":"0000","amount":"100.00"}"#, "currencyCode"),
            (r#"{"invoiceNo":"1","respCode":"0000","currencyCode":"SGD"}"#, "amount"),
            (r#"{"invoiceNo":"1","respCode":"0000","amount":[1],"currencyCode":"SGD"}"#, "not a decimal"),
            (r#"{"invoiceNo":"1","respCode":"0000","amount":{"v":1},"currencyCode":"SGD"}"#, "not a decimal"),
            (r#"{"invoiceNo":"1","respCode":"0000","amount":true,"currencyCode":"SGD"}"#, "not a decimal"),
            (r#"{"invoiceNo":"1","respCode":"0000","amount":"1_000","currencyCode":"SGD"}"#, "not a decimal"),
        ];
        for (json, needle) in cases {
            let err = Observation::from_payment_result(&result(json), Source::Inquiry, "JT01", zone, 0).unwrap_err();
            assert!(err.to_string().contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn an_impossible_time_is_kept_raw_only() {
        let zone = "+07:00".parse().unwrap();
        let r = result(r#"{"invoiceNo":"1","respCode":"0000","transactionDateTime":"311220235959"}"#);
        let o = Observation::from_payment_result(&r, Source::Inquiry, "JT01", zone, 0).unwrap();
        assert_eq!(o.transaction_time, None);
        assert_eq!(o.transaction_time_raw.as_deref(), Some("311220235959"));
    }
}
