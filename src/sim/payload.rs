//! JSON objects built field by field, in order, with numbers written as exact decimal text (an
//! amount never goes through a float), and the result payload 2C2P signs for a backend
//! notification or a Payment Inquiry answer.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::ledger::{LedgerEntry, PaymentRecord};
use super::scenario::Spelling;

/// An ordered JSON object whose values are raw JSON text.
#[derive(Debug, Default)]
pub(crate) struct RawObject(Vec<(String, Box<RawValue>)>);

impl RawObject {
    pub fn new() -> Self {
        RawObject(Vec::new())
    }

    fn push(&mut self, key: &str, raw: Box<RawValue>) -> &mut Self {
        self.0.push((key.to_string(), raw));
        self
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_string());
        self.raw_or_null(key, text)
    }

    /// A string, or `null` when absent.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.raw_or_null(key, "null".to_string())
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw_or_null(key, value.to_string())
    }

    /// A JSON number given as decimal text (`"230.87"`); `null` if the text is not a JSON number.
    pub fn number_text(&mut self, key: &str, text: &str) -> &mut Self {
        let valid = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
            && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
        if valid {
            self.raw_or_null(key, text.to_string())
        } else {
            self.null(key)
        }
    }

    fn raw_or_null(&mut self, key: &str, text: String) -> &mut Self {
        let raw = RawValue::from_string(text)
            .or_else(|_| RawValue::from_string("null".to_string()))
            .expect("`null` is valid JSON");
        self.push(key, raw)
    }

    /// The object as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

const USER_DEFINED: [&str; 5] = ["userDefined1", "userDefined2", "userDefined3", "userDefined4", "userDefined5"];

/// The transaction result as 2C2P sends it in a backend notification and answers to a Payment
/// Inquiry (docs/2c2p.md, "Payment result fields"): `amount` as a JSON number, `""` for optional text that does not apply,
/// `null` for `approvalCode` on anything but a success. 4.1 spelling: `cardNo`/`cardToken`.
pub(crate) fn result_claims(entry: &LedgerEntry, record: &PaymentRecord, spelling: Spelling) -> RawObject {
    let mut o = RawObject::new();
    o.str("merchantID", &entry.merchant_id);
    o.str("invoiceNo", &entry.invoice_no);
    match spelling {
        Spelling::V43 => o.str("accountNo", &record.account_no),
        Spelling::V41 => o.str("cardNo", &record.account_no),
    };
    o.number_text("amount", &entry.amount.major_string());
    o.str("currencyCode", &entry.amount.currency);
    let token = record.customer_token.as_deref().unwrap_or("");
    match spelling {
        Spelling::V43 => {
            o.str("customerToken", token);
            o.opt_str("customerTokenExpiry", record.customer_token_expiry.as_deref());
        }
        Spelling::V41 => {
            o.str("cardToken", token);
        }
    }
    o.null("loyaltyPoints");
    o.str("tranRef", &record.tran_ref);
    o.str("referenceNo", &record.reference_no);
    o.opt_str("approvalCode", record.approval_code.as_deref());
    o.str("eci", &record.eci);
    o.str("transactionDateTime", &record.transaction_date_time);
    o.str("agentCode", &record.agent_code);
    o.str("channelCode", &record.channel_code);
    o.str("issuerCountry", &record.issuer_country);
    o.str("issuerBank", "PGW-SIM TEST BANK");
    o.null("installmentMerchantAbsorbRate");
    o.str("cardType", "CREDIT");
    o.str("idempotencyID", entry.idempotency_id.as_deref().unwrap_or(""));
    o.str("paymentScheme", &record.channel_code);
    match spelling {
        Spelling::V43 => o.str("paymentID", &record.payment_id),
        Spelling::V41 => o.bool("displayProcessingAmount", false),
    };
    for (key, value) in USER_DEFINED.iter().zip(entry.user_defined.iter()) {
        o.str(key, value.as_deref().unwrap_or(""));
    }
    o.str("respCode", &record.resp_code);
    o.str("respDesc", &record.resp_desc);
    o
}

/// The inquiry answer when no result is known: a signed `2002`.
pub(crate) fn not_found_claims(merchant_id: &str, invoice_no: &str) -> RawObject {
    let mut o = RawObject::new();
    o.str("merchantID", merchant_id)
        .str("invoiceNo", invoice_no)
        .str("respCode", "2002")
        .str("respDesc", "Transaction not found");
    o
}

/// The inquiry answer while `pending_for_n` is counting down: a signed `0001` with the invoice's
/// amount and currency.
pub(crate) fn pending_claims(merchant_id: &str, invoice_no: &str, entry: Option<&LedgerEntry>) -> RawObject {
    let mut o = RawObject::new();
    o.str("merchantID", merchant_id).str("invoiceNo", invoice_no);
    if let Some(entry) = entry {
        o.number_text("amount", &entry.amount.major_string());
        o.str("currencyCode", &entry.amount.currency);
    }
    o.str("respCode", "0001").str("respDesc", "Transaction is pending");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_raw_object_keeps_order_and_exact_numbers() {
        let mut o = RawObject::new();
        o.str("a", "x\"y")
            .number_text("amount", "1000.00")
            .number_text("bad", "1e999x")
            .opt_str("n", None)
            .bool("b", false);
        assert_eq!(o.to_json(), r#"{"a":"x\"y","amount":1000.00,"bad":null,"n":null,"b":false}"#);
    }
}
