//! Typed request and response bodies of the HTTP API: what handlers read and answer, and what the
//! OpenAPI document (`src/http/openapi.rs`) describes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The JSON error of every caller-caused failure.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code to branch on, e.g. `invalid_request`, `bad_signature`, `gateway_rejected`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// Human text; never carries a secret, a token or a card number.
    pub message: String,
    /// 2C2P's response code, when 2C2P refused the request.
    #[serde(rename = "respCode", skip_serializing_if = "Option::is_none")]
    #[schema(example = "9015")]
    pub resp_code: Option<String>,
    /// 2C2P's description of `respCode`.
    #[serde(rename = "respDesc", skip_serializing_if = "Option::is_none")]
    pub resp_desc: Option<String>,
}

/// An amount of money: integer minor units plus the same amount as a decimal string.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MoneyBody {
    /// The exact amount in minor units (cents): 100000 with exponent 2 is 1000.00.
    #[schema(example = 100000)]
    pub minor: i64,
    /// ISO 4217 code.
    #[schema(example = "SGD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Decimals of the currency.
    #[schema(example = 2)]
    pub exponent: u32,
    /// The amount in major units, for display.
    #[schema(example = "1000.00")]
    pub value: String,
}

impl From<&crate::domain::money::Money> for MoneyBody {
    fn from(m: &crate::domain::money::Money) -> Self {
        MoneyBody { minor: m.minor, currency: m.currency.clone(), exponent: m.exponent, value: m.major_string() }
    }
}

/// An invoice state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusBody {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl From<crate::domain::state::Status> for StatusBody {
    fn from(s: crate::domain::state::Status) -> Self {
        use crate::domain::state::Status as S;
        match s {
            S::Pending => StatusBody::Pending,
            S::Succeeded => StatusBody::Succeeded,
            S::Failed => StatusBody::Failed,
            S::Cancelled => StatusBody::Cancelled,
            S::Expired => StatusBody::Expired,
        }
    }
}

/// A major-unit amount as 2C2P takes it: a JSON number or a decimal string.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AmountInput {
    #[schema(value_type = f64)]
    Number(serde_json::Number),
    Text(String),
}

/// `POST /2c2p/backend-notification` body, as 2C2P sends it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationRequest {
    /// A compact JWT (HS256, signed with the merchant's secret key) whose claims are the payment
    /// result.
    pub payload: String,
}

/// The answer to a stored (or already stored) notification.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationAck {
    /// `accepted`: stored now; `duplicate`: stored before, nothing new; `quarantined`: the store
    /// refused it permanently, so it is kept for an operator and the gateway need not retry.
    #[schema(pattern = "^(accepted|duplicate|quarantined)$", example = "accepted")]
    pub status: String,
}

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

/// `POST /2c2p/frontend-return` form (also accepted as query parameters on `GET`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FrontendReturnForm {
    /// Base64 (standard or URL-safe, padded or not) of 2C2P's JSON `{invoiceNo, channelCode,
    /// respCode, respDesc}`.
    #[serde(rename = "paymentResponse")]
    pub payment_response: String,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `store_unavailable` or `draining`.
    #[schema(pattern = "^(ready|store_unavailable|draining)$")]
    pub status: String,
    pub store: ReadinessStore,
    pub broker: ReadinessBroker,
    /// Null when the store could not be asked.
    pub outbox: Option<ReadinessOutbox>,
}

/// The store part of [`Readiness`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadinessStore {
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub ok: bool,
}

/// The broker part of [`Readiness`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadinessBroker {
    pub connected: bool,
}

/// The outbox part of [`Readiness`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadinessOutbox {
    /// Events not yet published.
    pub backlog: i64,
    /// Age of the oldest unpublished event, if any.
    #[serde(rename = "oldestAgeSeconds")]
    pub oldest_age_seconds: Option<i64>,
}

/// `POST /v1/payment-tokens`: 2C2P's Payment Token request. The fields below are validated;
/// every other field (any 2C2P Payment Token field) is passed to 2C2P as is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentTokenRequest {
    /// Required when several merchants are configured.
    #[serde(rename = "merchantID", skip_serializing_if = "Option::is_none")]
    #[schema(example = "JT01")]
    pub merchant_id: Option<String>,
    /// 1 to 50 of letters, digits, `-` and `_`.
    #[serde(rename = "invoiceNo")]
    #[schema(example = "1523953661", pattern = "^[A-Za-z0-9_-]{1,50}$")]
    pub invoice_no: String,
    /// 1 to 250 characters.
    #[schema(example = "item 1", min_length = 1, max_length = 250)]
    pub description: String,
    /// Major units, greater than zero, at most the currency's decimals.
    #[schema(example = 1000.00)]
    pub amount: AmountInput,
    /// ISO 4217 code of a currency 2C2P serves.
    #[serde(rename = "currencyCode")]
    #[schema(example = "SGD")]
    pub currency_code: String,
    /// Stored-card tokens offered on the payment page.
    #[serde(rename = "customerToken", skip_serializing_if = "Option::is_none")]
    pub customer_token: Option<Vec<String>>,
    /// The 4.1 spelling of `customerToken`.
    #[serde(rename = "cardTokens", skip_serializing_if = "Option::is_none")]
    #[schema(deprecated)]
    pub card_tokens: Option<Vec<String>>,
    /// `yyyy-MM-dd HH:mm:ss` in the merchant's time zone, in the future: the payment window.
    #[serde(rename = "paymentExpiry", skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-12-31 23:59:59")]
    pub payment_expiry: Option<String>,
    /// When set, a transport error is retried once.
    #[serde(rename = "idempotencyID", skip_serializing_if = "Option::is_none")]
    pub idempotency_id: Option<String>,
    /// Filled from the merchant's configuration when absent.
    #[serde(rename = "backendReturnUrl", skip_serializing_if = "Option::is_none")]
    pub backend_return_url: Option<String>,
    /// Filled from the merchant's configuration when absent.
    #[serde(rename = "frontendReturnUrl", skip_serializing_if = "Option::is_none")]
    pub frontend_return_url: Option<String>,
    /// Any other 2C2P Payment Token field, passed to 2C2P as is.
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: serde_json::Map<String, Value>,
}

/// The answer of `POST /v1/payment-tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentTokenCreated {
    /// Send the customer's browser here.
    #[serde(rename = "webPaymentUrl")]
    pub web_payment_url: String,
    #[serde(rename = "paymentToken")]
    pub payment_token: String,
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
}

/// `POST /v1/invoices`: an invoice whose payment token was created elsewhere.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterInvoiceRequest {
    /// Required when several merchants are configured.
    #[serde(rename = "merchantID", skip_serializing_if = "Option::is_none")]
    #[schema(example = "JT01")]
    pub merchant_id: Option<String>,
    #[serde(rename = "invoiceNo")]
    #[schema(example = "INV-1001", pattern = "^[A-Za-z0-9_-]{1,50}$")]
    pub invoice_no: String,
    /// Major units, greater than zero, at most the currency's decimals.
    #[schema(example = "230.87")]
    pub amount: AmountInput,
    #[serde(rename = "currencyCode")]
    #[schema(example = "THB")]
    pub currency_code: String,
    /// End of the payment window (RFC 3339).
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A registered invoice.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoiceSummary {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    pub status: StatusBody,
    pub amount: Option<MoneyBody>,
}

/// `GET /v1/invoices/{merchantID}/{invoiceNo}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InvoiceDetail {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    pub status: StatusBody,
    /// Null for an invoice known only from a browser return.
    pub amount: Option<MoneyBody>,
    /// The last gateway result applied.
    #[serde(rename = "respCode")]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc")]
    pub resp_desc: Option<String>,
    #[serde(rename = "tranRef")]
    pub tran_ref: Option<String>,
    /// How pgw-relay learned of it (`payment_token`, `register`, `notification`, `frontend_return`, …).
    pub origin: String,
    /// False while known only from a browser return.
    pub trusted: bool,
    /// True after an anomaly that stopped reconciliation.
    #[serde(rename = "needsReview")]
    pub needs_review: bool,
    /// Events emitted so far (the last event's `data.sequence`).
    pub sequence: i64,
    #[serde(rename = "notifiedAt")]
    #[schema(format = DateTime)]
    pub notified_at: Option<String>,
    #[serde(rename = "customerReturnedAt")]
    #[schema(format = DateTime)]
    pub customer_returned_at: Option<String>,
    #[serde(rename = "expiresAt")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[serde(rename = "nextInquiryAt")]
    #[schema(format = DateTime)]
    pub next_inquiry_at: Option<String>,
    #[serde(rename = "inquiryAttempts")]
    pub inquiry_attempts: i64,
    #[serde(rename = "createdAt")]
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The first entries of the history (notifications, browser returns, inquiries), oldest first.
    pub history: Vec<HistoryEntry>,
    /// Where the rest of the history is (`/v1/invoices/{merchantID}/{invoiceNo}/history?cursor=…`),
    /// null when `history` is all of it.
    #[serde(rename = "historyNext")]
    pub history_next: Option<String>,
    /// The invoice's events, by sequence.
    pub events: Vec<EventEntry>,
}

/// One observation in an invoice's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// Position in the history; a page's last `id` is the next page's cursor.
    pub id: i64,
    /// `backend_notification`, `frontend_return` or `inquiry`.
    pub kind: String,
    #[serde(rename = "respCode")]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc")]
    pub resp_desc: Option<String>,
    /// What it did (e.g. `applied`, `no_change`, `duplicate`, `anomaly:conflict`).
    pub outcome: Option<String>,
    #[serde(rename = "receivedAt")]
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The message as received (card numbers masked).
    pub raw: Option<String>,
    /// The normalised observation, if it could be normalised.
    #[schema(value_type = Option<Object>)]
    pub observation: Option<Value>,
}

/// `GET /v1/invoices/{merchantID}/{invoiceNo}/history`: one page of the history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    /// Oldest first.
    pub items: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
}

/// One event of an invoice.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventEntry {
    /// The CloudEvent id (= AMQP `message_id`).
    pub id: String,
    /// `payment.<kind>`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub sequence: i64,
    #[serde(rename = "createdAt")]
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Null until the broker confirmed it.
    #[serde(rename = "publishedAt")]
    #[schema(format = DateTime)]
    pub published_at: Option<String>,
}

/// `POST /v1/invoices/{merchantID}/{invoiceNo}/reconcile`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InquiryReportBody {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    /// The invoice's state afterwards.
    pub status: StatusBody,
    /// The answer's response-code class (`succeeded`, `pending`, `not_found`, …) or the error kind.
    pub result: String,
    #[serde(rename = "respCode")]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc")]
    pub resp_desc: Option<String>,
    /// Whether this inquiry expired the invoice.
    pub expired: bool,
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
    /// How the relay learned of it.
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
