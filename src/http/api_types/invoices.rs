//! Bodies of payment tokens, invoice registration and the invoice read model.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::http::api_types::{AmountInput, MoneyBody, StatusBody};

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
    /// How pgw-relay first learned of it: `payment_token`, `registered`, `backend_notification`,
    /// `inquiry` or `frontend_return`.
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
    /// The normalised observation (a backend notification or an inquiry answer); null for a
    /// browser return.
    pub observation: Option<ObservationBody>,
}

/// A normalised observation as recorded in the history. Read from the stored form, whose keys are
/// snake_case (`masked_pan`); shown in camelCase like the rest of the API.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ObservationBody {
    /// `backend_notification` or `inquiry`.
    pub source: Option<String>,
    #[serde(rename = "merchantID", alias = "merchant_id")]
    pub merchant_id: Option<String>,
    #[serde(alias = "invoice_no")]
    pub invoice_no: Option<String>,
    #[serde(alias = "resp_code")]
    pub resp_code: Option<String>,
    #[serde(alias = "resp_desc")]
    pub resp_desc: Option<String>,
    /// The amount the gateway reported, if any.
    pub amount: Option<ObservedAmount>,
    #[serde(alias = "tran_ref")]
    pub tran_ref: Option<String>,
    #[serde(alias = "reference_no")]
    pub reference_no: Option<String>,
    #[serde(alias = "approval_code")]
    pub approval_code: Option<String>,
    pub eci: Option<String>,
    #[serde(alias = "channel_code")]
    pub channel_code: Option<String>,
    /// The card number, masked (first six and last four digits).
    #[serde(alias = "masked_pan")]
    #[schema(example = "411111XXXXXX1111")]
    pub masked_pan: Option<String>,
    #[serde(alias = "customer_token")]
    pub customer_token: Option<String>,
    /// `transactionDateTime` read in the merchant's time zone, RFC 3339 with offset.
    #[serde(alias = "transaction_time")]
    pub transaction_time: Option<String>,
    /// `transactionDateTime` as sent (`yyyyMMddHHmmss`).
    #[serde(alias = "transaction_time_raw")]
    pub transaction_time_raw: Option<String>,
    /// `userDefined1` … `userDefined5`, null where absent.
    #[serde(alias = "user_defined")]
    pub user_defined: Vec<Option<String>>,
    /// When pgw-relay received it, Unix milliseconds.
    #[serde(alias = "received_at_ms")]
    pub received_at_ms: Option<i64>,
}

/// The amount of an observation: integer minor units, currency and its exponent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ObservedAmount {
    #[schema(example = 100000)]
    pub minor: i64,
    #[schema(example = "SGD")]
    pub currency: String,
    #[schema(example = 2)]
    pub exponent: u32,
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
