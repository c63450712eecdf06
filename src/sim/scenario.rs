//! Scenario controls: how the simulator misbehaves for one invoice, one merchant or everything.

use serde::{Deserialize, Deserializer, Serialize};

/// Which field names a result payload uses (4.1 or 4.3 spelling, docs/2c2p.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Spelling {
    /// `cardNo`, `cardToken` (tokens created on `/payment/4.1/…`).
    #[serde(rename = "4.1")]
    V41,
    /// `accountNo`, `customerToken`, `customerTokenExpiry`, `paymentID`.
    #[serde(rename = "4.3")]
    V43,
}

impl Spelling {
    /// Parses `"4.1"` / `"4.3"`.
    pub fn parse(text: &str) -> Option<Spelling> {
        match text.trim() {
            "4.1" | "41" => Some(Spelling::V41),
            "4.3" | "43" => Some(Spelling::V43),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Spelling::V41 => "4.1",
            Spelling::V43 => "4.3",
        }
    }
}

/// What a scenario applies to. The most specific one wins: invoice, then merchant, then global.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    #[serde(rename = "merchantID", default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(rename = "invoiceNo", default, skip_serializing_if = "Option::is_none")]
    pub invoice_no: Option<String>,
}

impl Scope {
    /// Every merchant and invoice (the default scenario).
    pub fn global() -> Scope {
        Scope { merchant_id: None, invoice_no: None }
    }

    /// Every invoice of one merchant.
    pub fn merchant(merchant_id: impl Into<String>) -> Scope {
        Scope { merchant_id: Some(merchant_id.into()), invoice_no: None }
    }

    /// One invoice.
    pub fn invoice(merchant_id: impl Into<String>, invoice_no: impl Into<String>) -> Scope {
        Scope { merchant_id: Some(merchant_id.into()), invoice_no: Some(invoice_no.into()) }
    }

    /// The scopes that apply to an invoice, most specific first.
    pub(crate) fn candidates(merchant_id: &str, invoice_no: Option<&str>) -> Vec<Scope> {
        let mut out = Vec::with_capacity(3);
        if let Some(invoice) = invoice_no {
            out.push(Scope::invoice(merchant_id, invoice));
        }
        out.push(Scope::merchant(merchant_id));
        out.push(Scope::global());
        out
    }
}

/// Misbehaviour switches. Every field defaults to "behave like a healthy gateway".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Never send the backend notification.
    pub drop: bool,
    /// Wait this long before sending the backend notification.
    pub delay_ms: u64,
    /// Send the backend notification twice (same payload).
    pub duplicate: bool,
    /// Hold the backend notification until `POST /control/release` (or `reorder_hold`), so that it
    /// arrives after the frontend return.
    pub reorder: bool,
    /// Sign notifications and signed API answers with a wrong key.
    pub wrong_signature: bool,
    /// Field spelling of notifications (and inquiry answers): `"4.1"` or `"4.3"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spelling: Option<Spelling>,
    /// Answer `0001` (pending) to the next N Payment Inquiries before telling the truth.
    pub pending_for_n: u32,
    /// Wait this long before answering each Payment Inquiry (a slow gateway).
    pub inquiry_delay_ms: u64,
    /// Answer HTTP 503 to the next N gateway API calls (token, inquiry, transaction status).
    pub fail_5xx_for_n: u32,
    /// Answer Payment Inquiries with this unsigned error code (`true` means `"9042"`).
    #[serde(deserialize_with = "unsigned_error", skip_serializing_if = "Option::is_none")]
    pub unsigned_error: Option<String>,
}

fn unsigned_error<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Code(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::Flag(false)) => None,
        Some(Raw::Flag(true)) => Some("9042".to_string()),
        Some(Raw::Code(code)) => {
            let code = code.trim().to_string();
            if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(serde::de::Error::custom("unsigned_error must be true or a 4-digit code"));
            }
            Some(code)
        }
    })
}

impl Scenario {
    /// A healthy gateway.
    pub fn is_default(&self) -> bool {
        *self == Scenario::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_scenario_parses_leniently_and_rejects_typos() {
        let s: Scenario = serde_json::from_str(r#"{"drop":true,"spelling":"4.1","unsigned_error":true}"#).unwrap();
        assert!(s.drop);
        assert_eq!(s.spelling, Some(Spelling::V41));
        assert_eq!(s.unsigned_error.as_deref(), Some("9042"));
        let s: Scenario = serde_json::from_str(r#"{"unsigned_error":"6103"}"#).unwrap();
        assert_eq!(s.unsigned_error.as_deref(), Some("6103"));
        assert!(serde_json::from_str::<Scenario>(r#"{"dorp":true}"#).is_err());
        assert!(serde_json::from_str::<Scenario>(r#"{"unsigned_error":"x"}"#).is_err());
        assert!(serde_json::from_str::<Scenario>(r#"{"spelling":"4.2"}"#).is_err());
        assert!(serde_json::from_str::<Scenario>("{}").unwrap().is_default());
    }

    #[test]
    fn sim_scope_candidates_go_from_specific_to_global() {
        let c = Scope::candidates("M", Some("I"));
        assert_eq!(c, vec![Scope::invoice("M", "I"), Scope::merchant("M"), Scope::global()]);
        assert_eq!(Scope::candidates("M", None).len(), 2);
    }
}
