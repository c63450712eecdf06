//! Row types shared by both backends.

use crate::domain::ids::InvoiceKey;
use crate::domain::money::Money;
use crate::domain::origin::Origin;
use crate::domain::state::Status;
use crate::store::StoreError;

/// An invoice as stored.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct InvoiceRow {
    pub merchant_id: String,
    pub invoice_no: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub exponent: Option<i32>,
    #[sqlx(try_from = "String")]
    pub origin: Origin,
    pub trusted: bool,
    pub sequence: i64,
    pub resp_code: Option<String>,
    pub resp_desc: Option<String>,
    pub tran_ref: Option<String>,
    pub notified_at: Option<i64>,
    pub returned_at: Option<i64>,
    pub needs_review: bool,
    pub expires_at: Option<i64>,
    pub next_inquiry_at: Option<i64>,
    pub inquiry_attempts: i32,
    pub last_inquiry_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl InvoiceRow {
    /// The invoice's identifiers, checked.
    pub fn key(&self) -> Result<InvoiceKey, StoreError> {
        InvoiceKey::parse(&self.merchant_id, &self.invoice_no)
            .map_err(|e| StoreError::Corrupt(format!("invoice {}: {e}", self.invoice_no)))
    }

    /// The registered amount, if any. An amount whose exponent is not its currency's, or that
    /// is only partly stored, is corrupt.
    pub fn amount(&self) -> Result<Option<Money>, StoreError> {
        match (self.amount_minor, &self.currency, self.exponent) {
            (Some(minor), Some(currency), Some(exponent)) => Money::from_stored(minor, currency, i64::from(exponent))
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("invoice {}: {e}", self.invoice_no))),
            (None, None, None) => Ok(None),
            _ => Err(StoreError::Corrupt(format!("invoice {}: amount partly stored", self.invoice_no))),
        }
    }
}

/// One recorded observation (notification, browser return, inquiry answer).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub kind: String,
    pub resp_code: Option<String>,
    pub resp_desc: Option<String>,
    pub outcome: Option<String>,
    pub raw: Option<String>,
    pub normalized: Option<String>,
    pub received_at: i64,
}

/// One outbox event.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub event_id: String,
    pub merchant_id: String,
    pub invoice_no: String,
    pub sequence: i64,
    pub event_type: String,
    pub body: String,
    pub created_at: i64,
    pub published_at: Option<i64>,
    pub attempts: i32,
    /// Why the last attempt to publish failed, if one did.
    pub last_error: Option<String>,
    /// Held by a relay until then (it retries a parked event by this time at the latest).
    pub claimed_until: Option<i64>,
    /// The W3C trace context of the operation that caused the event (`None` when untraced).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// A notification held in quarantine.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub kind: String,
    pub merchant_id: String,
    pub invoice_no: Option<String>,
    pub dedupe_key: Option<String>,
    /// The verified token as received (redacted copy when it held a card number).
    pub raw: String,
    /// Why the store refused it, with the error's source chain.
    pub error: String,
    pub received_at: i64,
    pub released_at: Option<i64>,
    pub release_outcome: Option<String>,
}
