//! What the store's operations take and give back (besides the rows of `rows.rs`).

use std::time::Duration;

use crate::domain::ids::{InvoiceNo, MerchantId};
use crate::domain::money::Money;
use crate::domain::observation::Observation;
use crate::domain::plan::{Plan, Settled};
use crate::domain::state::{AnomalyReason, Decision, Status};

/// Scheduling parameters the store needs when it records something.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Wait before the first inquiry of an invoice with no backend notification.
    pub grace: Duration,
    /// Payment window assumed when none is given.
    pub payment_window: Duration,
}

impl From<&crate::config::ReconcileSettings> for Timing {
    fn from(r: &crate::config::ReconcileSettings) -> Timing {
        Timing { grace: r.grace, payment_window: r.default_payment_window }
    }
}

/// What recording an observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordResult {
    /// The same notification was already stored: nothing changed.
    pub duplicate: bool,
    pub decision: Decision,
    /// The invoice's state afterwards.
    pub status: Status,
    /// Events written to the outbox by this call (0 or 1).
    pub events: usize,
    /// The anomaly recorded, if a new one was.
    pub anomaly: Option<AnomalyReason>,
}

impl RecordResult {
    /// The observation was stored before; the invoice stays as it is.
    pub(crate) fn duplicate(status: Status) -> Self {
        RecordResult { duplicate: true, decision: Decision::NoChange, status, events: 0, anomaly: None }
    }

    /// The observation was applied as `plan` said, with the outcome `settled`.
    pub(crate) fn applied(plan: &Plan, settled: &Settled) -> Self {
        RecordResult {
            duplicate: false,
            decision: plan.decision,
            status: settled.status,
            events: settled.events,
            anomaly: settled.anomaly,
        }
    }
}

/// An invoice to register (from a payment token or the internal API).
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub merchant_id: MerchantId,
    pub invoice_no: InvoiceNo,
    pub amount: Money,
    /// End of the payment window, Unix ms.
    pub expires_at_ms: Option<i64>,
    /// How the relay learned of it ([`PaymentToken`](crate::domain::origin::Origin::PaymentToken), [`Registered`](crate::domain::origin::Origin::Registered)).
    pub origin: crate::domain::origin::Origin,
}

/// Outbox backlog figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub backlog: i64,
    pub oldest_created_at_ms: Option<i64>,
}

/// Which events to publish again.
#[derive(Debug, Clone)]
pub enum ReplaySelector {
    Invoice { merchant_id: String, invoice_no: String },
    Range { from_ms: i64, to_ms: i64, merchant_id: Option<String> },
}

/// A browser return to record.
#[derive(Debug, Clone)]
pub struct FrontendReturnRecord {
    pub merchant_id: MerchantId,
    pub invoice_no: InvoiceNo,
    /// The flow code the browser carried (never a payment result).
    pub resp_code: Option<String>,
    pub resp_desc: Option<String>,
    /// The decoded `paymentResponse` JSON, for history.
    pub raw: String,
    /// Identical returns of one invoice share this key and are recorded once.
    pub dedupe_key: String,
    /// How soon the next inquiry should run.
    pub after_return: Duration,
    /// Whether an unknown invoice may be created (as untrusted) for this return.
    pub may_create: bool,
    /// Invoices learned only from browser returns that a merchant may have at once.
    pub max_untrusted: i64,
    /// How long such invoices are kept (older ones do not count against `max_untrusted`).
    pub untrusted_ttl: Duration,
    /// Returns recorded per invoice at most.
    pub max_returns: i64,
}

/// What recording a browser return did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendReturnResult {
    /// The invoice's state (`None` when it is not stored).
    pub status: Option<Status>,
    /// The invoice is trusted (registered, or a verified payment fact arrived).
    pub trusted: bool,
    /// The invoice is under review (no inquiries).
    pub needs_review: bool,
    /// The invoice was unknown and is now stored as untrusted.
    pub created: bool,
    /// The return was new for this invoice and within its cap, so it was recorded.
    pub recorded: bool,
    /// Unknown invoice not stored: the merchant's untrusted-invoice cap is reached.
    pub limited: bool,
}

/// The outcome of one inquiry, to record.
#[derive(Debug, Clone)]
pub struct InquiryDone {
    pub merchant_id: MerchantId,
    pub invoice_no: InvoiceNo,
    /// The verified answer, normalised (`None` when the gateway gave no payment result).
    pub observation: Option<Observation>,
    /// The signed answer, for audit.
    pub raw: Option<String>,
    /// When to inquire again if the invoice is still pending (`None` = not again).
    pub next_at: Option<i64>,
    /// Expire the invoice if it is still pending after applying the answer.
    pub expire: bool,
}

/// What recording an inquiry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InquiryRecorded {
    pub status: Status,
    pub expired: bool,
    pub applied: Option<RecordResult>,
}

/// A verified notification the store refused permanently, to keep in quarantine.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// `backend_notification`.
    pub kind: &'static str,
    pub merchant_id: String,
    pub invoice_no: Option<String>,
    pub dedupe_key: Option<String>,
    /// The verified token as received (its redacted copy when redaction changed anything).
    pub raw: String,
    /// The store's error with its source chain.
    pub error: String,
    pub received_at_ms: i64,
    /// The normalised notification, for the anomaly event.
    pub observation: Option<Observation>,
}

/// What quarantining did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineOutcome {
    /// A new quarantine entry (not the same notification again).
    pub new: bool,
    /// A `payment.anomaly` (`unprocessable`) event was written.
    pub anomaly: bool,
}

/// Reconciliation figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Invoices due now.
    pub due: i64,
    /// Creation time of the oldest invoice still scheduled.
    pub oldest_created_at_ms: Option<i64>,
    /// Scheduled invoices older than `give_up_after`.
    pub unresolved: i64,
}
