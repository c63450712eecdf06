//! Bodies of the operator's API: lists, replays and the quarantine.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::api_types::{MoneyBody, StatusBody};

/// A verified notification the store refused, kept for an operator.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuarantineEntry {
    pub id: i64,
    /// What was refused (`backend_notification`).
    pub kind: String,
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: Option<String>,
    /// The store's error, with its causes.
    pub error: String,
    /// RFC 3339.
    #[serde(rename = "receivedAt")]
    pub received_at: Option<String>,
    /// RFC 3339; absent while held.
    #[serde(rename = "releasedAt")]
    pub released_at: Option<String>,
    /// What the release did (`applied:<status>`, `duplicate`).
    #[serde(rename = "releaseOutcome")]
    pub release_outcome: Option<String>,
    /// The JWT as received (card numbers masked; the signature replaced if a claim was masked).
    pub token: String,
}

/// `GET /v1/quarantine`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuarantineList {
    pub quarantined: Vec<QuarantineEntry>,
}

/// `POST /v1/quarantine/{id}/release`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuarantineRelease {
    pub id: i64,
    /// `applied:<status>` or `duplicate`.
    pub outcome: String,
    /// The invoice's state afterwards.
    pub status: String,
}

/// `POST /v1/events/replay`: one invoice, or a time range of event creation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayRequestBody {
    /// With `invoiceNo`: that invoice; with `from`/`to`: only this merchant.
    #[serde(rename = "merchantID", skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(rename = "invoiceNo", skip_serializing_if = "Option::is_none")]
    pub invoice_no: Option<String>,
    /// RFC 3339, inclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive; after `from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// Range replays only: count the events that would be marked, change nothing.
    #[serde(rename = "dryRun", default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The answer of `POST /v1/events/replay`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayAccepted {
    /// Events marked for publishing again.
    pub requeued: u64,
}

/// `POST /v1/events/replay` with `dryRun`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayDryRun {
    #[serde(rename = "dryRun")]
    pub dry_run: bool,
    /// Events the replay would mark for publishing again.
    #[serde(rename = "wouldRequeue")]
    pub would_requeue: u64,
}

/// One item of `GET /v1/invoices`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoiceListItem {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    pub status: StatusBody,
    /// Null for an invoice known only from a browser return.
    pub amount: Option<MoneyBody>,
    #[serde(rename = "respCode")]
    pub resp_code: Option<String>,
    /// How pgw-relay first learned of it: `payment_token`, `registered`, `backend_notification`,
    /// `inquiry` or `frontend_return`.
    pub origin: String,
    pub trusted: bool,
    #[serde(rename = "needsReview")]
    pub needs_review: bool,
    pub sequence: i64,
    /// RFC 3339; null when no inquiry is scheduled.
    #[serde(rename = "nextInquiryAt")]
    pub next_inquiry_at: Option<String>,
    #[serde(rename = "inquiryAttempts")]
    pub inquiry_attempts: i64,
    /// RFC 3339.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// RFC 3339.
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    /// The full invoice document.
    pub href: String,
}

/// `GET /v1/invoices`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoicePage {
    /// Newest first.
    pub items: Vec<InvoiceListItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
}

/// One outbox row of `GET /v1/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxEvent {
    /// The CloudEvent id (= AMQP `message_id`).
    pub id: String,
    #[serde(rename = "outboxSeq")]
    pub outbox_seq: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    /// `data.sequence` of the event.
    pub sequence: i64,
    /// RFC 3339.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// RFC 3339; null while not confirmed by the broker.
    #[serde(rename = "publishedAt")]
    pub published_at: Option<String>,
    /// Publish attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed (returned, nacked, timed out, broker error).
    #[serde(rename = "lastError")]
    pub last_error: Option<String>,
    /// Unpublished with a failed attempt behind it.
    pub parked: bool,
    /// RFC 3339; null once published.
    #[serde(rename = "nextAttemptAt")]
    pub next_attempt_at: Option<String>,
}

/// `GET /v1/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// Newest first.
    pub items: Vec<OutboxEvent>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
}
