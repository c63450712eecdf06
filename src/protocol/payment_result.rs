//! The transaction result 2C2P sends in a backend notification and answers to a Payment Inquiry
//! (docs/2c2p.md, "Payment result fields"). Lenient by design: both the 4.1 and 4.3 spellings, `amount` as a JSON number or a
//! string, nulls and unknown fields. Values stay as the gateway sent them; `domain` normalises.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Claims of a backend notification or of a Payment Inquiry response.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PaymentResult {
    #[serde(rename = "merchantID", default, deserialize_with = "lenient")]
    pub merchant_id: Option<String>,
    #[serde(rename = "invoiceNo", default, deserialize_with = "lenient")]
    pub invoice_no: Option<String>,
    /// The amount exactly as sent: a JSON number's text or a string's content.
    #[serde(default, deserialize_with = "raw_amount")]
    pub amount: Option<String>,
    #[serde(rename = "currencyCode", default, deserialize_with = "lenient")]
    pub currency_code: Option<String>,
    #[serde(rename = "transactionDateTime", default, deserialize_with = "lenient")]
    pub transaction_date_time: Option<String>,
    #[serde(rename = "respCode", default, deserialize_with = "lenient")]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc", default, deserialize_with = "lenient")]
    pub resp_desc: Option<String>,
    #[serde(rename = "tranRef", default, deserialize_with = "lenient")]
    pub tran_ref: Option<String>,
    #[serde(rename = "referenceNo", default, deserialize_with = "lenient")]
    pub reference_no: Option<String>,
    #[serde(rename = "approvalCode", default, deserialize_with = "lenient")]
    pub approval_code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub eci: Option<String>,
    #[serde(rename = "channelCode", default, deserialize_with = "lenient")]
    pub channel_code: Option<String>,
    #[serde(rename = "agentCode", default, deserialize_with = "lenient")]
    pub agent_code: Option<String>,
    /// Masked card number: `accountNo` (4.3), `cardNo` (4.1) or `pan` (older).
    #[serde(rename = "accountNo", alias = "cardNo", alias = "pan", default, deserialize_with = "lenient")]
    pub account_no: Option<String>,
    /// Stored-card token: `customerToken` (4.3) or `cardToken` (4.1).
    #[serde(rename = "customerToken", alias = "cardToken", default, deserialize_with = "lenient")]
    pub customer_token: Option<String>,
    #[serde(rename = "customerTokenExpiry", default, deserialize_with = "lenient")]
    pub customer_token_expiry: Option<String>,
    #[serde(rename = "idempotencyID", default, deserialize_with = "lenient")]
    pub idempotency_id: Option<String>,
    #[serde(rename = "paymentID", default, deserialize_with = "lenient")]
    pub payment_id: Option<String>,
    #[serde(rename = "userDefined1", default, deserialize_with = "lenient")]
    pub user_defined1: Option<String>,
    #[serde(rename = "userDefined2", default, deserialize_with = "lenient")]
    pub user_defined2: Option<String>,
    #[serde(rename = "userDefined3", default, deserialize_with = "lenient")]
    pub user_defined3: Option<String>,
    #[serde(rename = "userDefined4", default, deserialize_with = "lenient")]
    pub user_defined4: Option<String>,
    #[serde(rename = "userDefined5", default, deserialize_with = "lenient")]
    pub user_defined5: Option<String>,
}

impl PaymentResult {
    /// `userDefined1..5` in order.
    pub fn user_defined(&self) -> [&Option<String>; 5] {
        [&self.user_defined1, &self.user_defined2, &self.user_defined3, &self.user_defined4, &self.user_defined5]
    }
}

/// A string field that may arrive as a string, a number, a boolean or null. Empty strings become
/// `None` (2C2P sends `""` for fields that do not apply).
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<Box<RawValue>> = Option::deserialize(d)?;
    Ok(raw.and_then(|r| scalar_text(r.get())).filter(|s| !s.is_empty()))
}

/// Like [`lenient`], but an array or object is kept as its JSON text (which is then refused as
/// an amount) rather than read as absent.
fn raw_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<Box<RawValue>> = Option::deserialize(d)?;
    Ok(raw
        .and_then(|r| {
            let json = r.get().trim();
            if json.starts_with('{') || json.starts_with('[') {
                Some(json.to_string())
            } else {
                scalar_text(json)
            }
        })
        .filter(|s| !s.is_empty()))
}

/// The text of a JSON scalar: a string's content or a number's literal (never through a float).
fn scalar_text(json: &str) -> Option<String> {
    let json = json.trim();
    if json == "null" {
        return None;
    }
    if json.starts_with('"') {
        return serde_json::from_str::<String>(json).ok().map(|s| s.trim().to_string());
    }
    if json.starts_with('{') || json.starts_with('[') {
        return None;
    }
    Some(json.to_string())
}

/// The Payment Inquiry request (docs/2c2p.md, "Payment Inquiry request").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InquiryRequest {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locale: Option<String>,
}

/// An unsigned `{respCode, respDesc}` body: the gateway rejected the request itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestError {
    #[serde(rename = "respCode")]
    pub resp_code: String,
    #[serde(rename = "respDesc", default)]
    pub resp_desc: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_4_1_spelling_with_number_amount_and_nulls() {
        let json = r#"{"cardNo":"411111XXXXXX1111","cardToken":"","merchantID":"702702000001875","invoiceNo":"pay1",
            "amount":1000.0,"monthlyPayment":null,"approvalCode":null,"currencyCode":"SGD","tranRef":"4790185",
            "transactionDateTime":"20220401135359","respCode":"0000","respDesc":"Success","extra":{"a":1}}"#;
        let r: PaymentResult = serde_json::from_str(json).unwrap();
        assert_eq!(r.account_no.as_deref(), Some("411111XXXXXX1111"));
        assert_eq!(r.customer_token, None);
        assert_eq!(r.amount.as_deref(), Some("1000.0"));
        assert_eq!(r.approval_code, None);
        assert_eq!(r.resp_code.as_deref(), Some("0000"));
    }

    #[test]
    fn reads_the_4_3_spelling_with_string_amount() {
        let json = r#"{"merchantID":"JT04","invoiceNo":"280520075921","accountNo":"411111XXXXXX1111","amount":"230.87",
            "currencyCode":"THB","customerToken":"28052010234224845229","tranRef":"2868821","respCode":"0000"}"#;
        let r: PaymentResult = serde_json::from_str(json).unwrap();
        assert_eq!(r.account_no.as_deref(), Some("411111XXXXXX1111"));
        assert_eq!(r.customer_token.as_deref(), Some("28052010234224845229"));
        assert_eq!(r.amount.as_deref(), Some("230.87"));
    }

    #[test]
    fn keeps_number_text_exactly() {
        let r: PaymentResult = serde_json::from_str(r#"{"amount":0.10000000000000000555,"respCode":4005}"#).unwrap();
        assert_eq!(r.amount.as_deref(), Some("0.10000000000000000555"));
        assert_eq!(r.resp_code.as_deref(), Some("4005"));
    }
}
