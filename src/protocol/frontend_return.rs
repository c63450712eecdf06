//! The browser's return to `frontendReturnUrl` (docs/2c2p.md, "Browser return"): one form field
//! `paymentResponse` holding base64 JSON. Unsigned, so it is decoded leniently and never trusted as
//! a result; its text is redacted (`domain::redact`) before it is read.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::domain::redact;

/// The decoded `paymentResponse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FrontendReturn {
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    #[serde(rename = "channelCode", default)]
    pub channel_code: Option<String>,
    /// A payment-flow code (2000 = "flow ended, inquire"), not a payment result.
    #[serde(rename = "respCode", default)]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc", default)]
    pub resp_desc: Option<String>,
}

/// Why a `paymentResponse` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("paymentResponse is missing")]
    Missing,
    #[error("paymentResponse is not base64")]
    NotBase64,
    #[error("paymentResponse is not the expected JSON object: {0}")]
    NotJson(String),
    #[error("invoiceNo is missing or not acceptable")]
    BadInvoice,
}

/// Decodes a `paymentResponse` value after form decoding: standard or URL alphabet, padded or not,
/// spaces turned back into `+`.
pub fn decode(value: &str) -> Result<FrontendReturn, DecodeError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DecodeError::Missing);
    }
    if trimmed.len() > 8192 {
        return Err(DecodeError::NotBase64);
    }
    let normalized: String = trimmed
        .chars()
        .map(|c| match c {
            ' ' => '+',
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .filter(|c| *c != '=' && !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(normalized.as_bytes())
        .map_err(|_| DecodeError::NotBase64)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let redacted = redact::json(text);
    // serde's message can quote the offending value (an invoice number sent as a JSON number, say),
    // and this error is logged: keep only where and what kind of error it was.
    let decoded: FrontendReturn = serde_json::from_str(&redacted).map_err(|e| {
        DecodeError::NotJson(format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
    })?;
    let ok = crate::domain::ids::InvoiceNo::parse(&decoded.invoice_no).is_ok();
    if !ok {
        return Err(DecodeError::BadInvoice);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFICIAL: &str = "eyJsb2NhbGUiOm51bGwsImludm9pY2VObyI6IjA4MDIyMzE1MjMyMiIsImNoYW5uZWxDb2RlIjoiQ0MiLCJyZXNwQ29kZSI6IjIwMDAiLCJyZXNwRGVzYyI6IlRyYW5zYWN0aW9uIGlzIGNvbXBsZXRlZCwgcGxlYXNlIGRvIHBheW1lbnQgaW5xdWlyeSByZXF1ZXN0IGZvciBmdWxsIHBheW1lbnQgaW5mb3JtYXRpb24uIn0=";

    #[test]
    fn decodes_the_official_sample_in_every_alphabet_and_padding() {
        let variants = [
            OFFICIAL.to_string(),
            OFFICIAL.trim_end_matches('=').to_string(),
            OFFICIAL.replace('+', "-").replace('/', "_"),
            OFFICIAL.replace('+', " "),
        ];
        for v in variants {
            let r = decode(&v).unwrap();
            assert_eq!(r.invoice_no, "080223152322");
            assert_eq!(r.resp_code.as_deref(), Some("2000"));
            assert_eq!(r.channel_code.as_deref(), Some("CC"));
        }
    }

    #[test]
    fn rejects_what_is_not_a_payment_response() {
        assert_eq!(decode("").unwrap_err(), DecodeError::Missing);
        assert_eq!(decode("%%%").unwrap_err(), DecodeError::NotBase64);
        assert!(matches!(decode("aGVsbG8").unwrap_err(), DecodeError::NotJson(_)));
        let numeric = base64::engine::general_purpose::STANDARD.encode(r#"{"invoiceNo":4111111111111111}"#);
        let err = decode(&numeric).unwrap_err().to_string();
        assert!(!err.contains("4111111111111111"), "the error quotes the input: {err}");
        let no_invoice = base64::engine::general_purpose::STANDARD.encode(r#"{"invoiceNo":""}"#);
        assert_eq!(decode(&no_invoice).unwrap_err(), DecodeError::BadInvoice);
    }
}
