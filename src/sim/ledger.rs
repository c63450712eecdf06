//! The simulator's in-memory ledger: one entry per (merchant, invoice) created through the Payment
//! Token API, the results chosen on the payment page and every notification attempt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::scenario::Spelling;
use crate::domain::money::Money;

/// What the customer (or a test) chose on the payment page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// `0000` Success.
    #[serde(rename = "success")]
    Success,
    /// `4005` Do not honor.
    #[serde(rename = "decline")]
    Decline,
    /// `0003` Transaction is cancelled.
    #[serde(rename = "cancel")]
    Cancel,
    /// `0001` Transaction is pending (a later outcome may follow).
    #[serde(rename = "pending")]
    Pending,
    /// `4081` Unable to Authenticate Card Holder (3-D Secure failed).
    #[serde(rename = "3ds_fail")]
    ThreeDsFail,
}

impl Outcome {
    /// Every outcome, in the order the payment page shows them.
    pub const ALL: [Outcome; 5] =
        [Outcome::Success, Outcome::Decline, Outcome::Cancel, Outcome::Pending, Outcome::ThreeDsFail];

    /// Parses a name (`success`, `decline`, `cancel`, `pending`, `3ds_fail`) or a code (`0000`, …).
    pub fn parse(text: &str) -> Option<Outcome> {
        let t = text.trim().to_ascii_lowercase();
        Outcome::ALL.into_iter().find(|o| o.name() == t || o.resp_code() == t).or(match t.as_str() {
            "3ds" | "3dsfail" | "3ds-fail" | "threeds_fail" => Some(Outcome::ThreeDsFail),
            "cancelled" | "canceled" => Some(Outcome::Cancel),
            "declined" => Some(Outcome::Decline),
            _ => None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Decline => "decline",
            Outcome::Cancel => "cancel",
            Outcome::Pending => "pending",
            Outcome::ThreeDsFail => "3ds_fail",
        }
    }

    /// The Payment Response Code sent in the notification and inquiry answers.
    pub fn resp_code(self) -> &'static str {
        match self {
            Outcome::Success => "0000",
            Outcome::Decline => "4005",
            Outcome::Cancel => "0003",
            Outcome::Pending => "0001",
            Outcome::ThreeDsFail => "4081",
        }
    }

    pub fn resp_desc(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::Decline => "Do not honor",
            Outcome::Cancel => "Transaction is cancelled",
            Outcome::Pending => "Transaction is pending",
            Outcome::ThreeDsFail => "Unable to Authenticate Card Holder",
        }
    }

    /// Whether another outcome may follow (only `pending` is not final).
    pub fn is_final(self) -> bool {
        self != Outcome::Pending
    }
}

/// One invoice as the simulator knows it.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerEntry {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    pub description: String,
    /// Minor units, currency and exponent (`{"minor", "currency", "exponent", "value"}` in JSON).
    #[serde(serialize_with = "money_json")]
    pub amount: SimAmount,
    #[serde(rename = "customerToken")]
    pub customer_tokens: Vec<String>,
    #[serde(rename = "backendReturnUrl")]
    pub backend_return_url: Option<String>,
    #[serde(rename = "frontendReturnUrl")]
    pub frontend_return_url: Option<String>,
    /// `userDefined1` … `userDefined5`.
    #[serde(rename = "userDefined")]
    pub user_defined: [Option<String>; 5],
    #[serde(rename = "idempotencyID")]
    pub idempotency_id: Option<String>,
    pub locale: Option<String>,
    pub tokenize: bool,
    /// `paymentExpiry` as sent (`yyyy-MM-dd HH:mm:ss`, merchant local time); stored, not enforced.
    #[serde(rename = "paymentExpiry")]
    pub payment_expiry: Option<String>,
    #[serde(rename = "paymentToken")]
    pub payment_token: String,
    #[serde(rename = "webPaymentUrl")]
    pub web_payment_url: String,
    #[serde(rename = "tokenExpiresAt", serialize_with = "rfc3339")]
    pub token_expires_at: DateTime<Utc>,
    /// The API version the token was created on; the default notification spelling.
    #[serde(rename = "apiVersion")]
    pub api_version: Spelling,
    #[serde(rename = "createdAt", serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// `awaiting_payment`, then the name of the latest outcome.
    pub status: String,
    /// The latest result.
    pub result: Option<PaymentRecord>,
    /// Every result recorded, oldest first (a `pending` may precede the final one).
    pub results: Vec<PaymentRecord>,
    /// Every backend notification, with its delivery attempts.
    pub notifications: Vec<NotificationRecord>,
}

impl LedgerEntry {
    /// The latest outcome is final (not `pending`).
    pub fn is_final(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r.outcome.is_final())
    }
}

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn money_json<S: Serializer>(amount: &SimAmount, s: S) -> Result<S::Ok, S::Error> {
    amount.to_json().serialize(s)
}

/// An amount as the simulated gateway recorded it: minor units, currency code and exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAmount {
    pub minor: i64,
    pub currency: String,
    pub exponent: u32,
    /// The same amount in major units, at the currency's precision.
    major: String,
}

impl SimAmount {
    /// The amount in major units, with exactly `exponent` decimals.
    pub fn major_string(&self) -> String {
        self.major.clone()
    }

    /// `{"minor", "currency", "exponent", "value"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"minor": self.minor, "currency": self.currency, "exponent": self.exponent, "value": self.major})
    }
}

impl From<&Money> for SimAmount {
    fn from(m: &Money) -> SimAmount {
        SimAmount {
            minor: m.minor(),
            currency: m.currency().code().to_string(),
            exponent: m.exponent(),
            major: m.major_string(),
        }
    }
}

/// The result of one payment attempt.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentRecord {
    pub outcome: Outcome,
    #[serde(rename = "respCode")]
    pub resp_code: String,
    #[serde(rename = "respDesc")]
    pub resp_desc: String,
    #[serde(rename = "tranRef")]
    pub tran_ref: String,
    #[serde(rename = "referenceNo")]
    pub reference_no: String,
    #[serde(rename = "approvalCode")]
    pub approval_code: Option<String>,
    /// `yyyyMMddHHmmss` in the merchant's local time.
    #[serde(rename = "transactionDateTime")]
    pub transaction_date_time: String,
    /// Masked PAN.
    #[serde(rename = "accountNo")]
    pub account_no: String,
    #[serde(rename = "customerToken")]
    pub customer_token: Option<String>,
    #[serde(rename = "customerTokenExpiry")]
    pub customer_token_expiry: Option<String>,
    #[serde(rename = "channelCode")]
    pub channel_code: String,
    pub eci: String,
    #[serde(rename = "agentCode")]
    pub agent_code: String,
    #[serde(rename = "issuerCountry")]
    pub issuer_country: String,
    #[serde(rename = "paymentID")]
    pub payment_id: String,
    #[serde(rename = "recordedAt", serialize_with = "rfc3339")]
    pub recorded_at: DateTime<Utc>,
}

/// How a notification was scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Sent right away.
    Immediate,
    /// Sent after `delay_ms`.
    Delayed,
    /// Held by `reorder` until released.
    Held,
    /// Never sent (`drop`).
    Dropped,
    /// No `backendReturnUrl` for this invoice.
    NoUrl,
}

/// One backend notification (a `duplicate` scenario produces two).
#[derive(Debug, Clone, Serialize)]
pub struct NotificationRecord {
    pub id: u64,
    #[serde(rename = "respCode")]
    pub resp_code: String,
    pub spelling: Spelling,
    #[serde(rename = "wrongSignature")]
    pub wrong_signature: bool,
    pub delivery: Delivery,
    pub url: Option<String>,
    /// The signed JWT sent as `{"payload": …}`.
    pub payload: String,
    pub attempts: Vec<DeliveryAttempt>,
    /// A 2xx answer was received.
    pub delivered: bool,
    /// No further attempt will be made.
    pub finished: bool,
}

/// One HTTP attempt to deliver a notification.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// HTTP status, or `null` on a transport error.
    pub status: Option<u16>,
    pub error: Option<String>,
    #[serde(rename = "elapsedMs")]
    pub elapsed_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_outcomes_parse_by_name_and_code() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.name()), Some(o));
            assert_eq!(Outcome::parse(o.resp_code()), Some(o));
        }
        assert_eq!(Outcome::parse(" Success "), Some(Outcome::Success));
        assert_eq!(Outcome::parse("3DS"), Some(Outcome::ThreeDsFail));
        assert_eq!(Outcome::parse("refund"), None);
        assert!(!Outcome::Pending.is_final());
        assert!(Outcome::Decline.is_final());
    }
}
