//! What recording one observation does to an invoice, decided without the store: the store loads
//! the invoice ([`Loaded`]), asks for a [`Plan`], writes the history row and the planned event,
//! then writes back what [`Plan::settle`] says for whether the event was new.

use crate::domain::event::{self, EventFacts, NewEvent};
use crate::domain::history::HistoryOutcome;
use crate::domain::money::Money;
use crate::domain::observation::{Observation, Source};
use crate::domain::state::{self, AnomalyReason, Current, Decision, EventType, Status};

/// The invoice as stored before the observation (created from it if it was the first news).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub status: Status,
    pub trusted: bool,
    /// The registered amount, if any.
    pub amount: Option<Money>,
    /// Events emitted so far.
    pub sequence: i64,
    pub needs_review: bool,
    pub next_inquiry_at: Option<i64>,
    pub notified_at: Option<i64>,
}

/// What applying an observation will do, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the state machine decided (always `NoChange` for an untrusted invoice).
    pub decision: Decision,
    /// Whether the invoice is trusted afterwards.
    pub trusted: bool,
    /// What the history row records.
    pub outcome: HistoryOutcome,
    /// The event to write, if the decision emits one (it may exist already: same fact twice).
    pub event: Option<NewEvent>,
    /// The state if the event is written.
    next_status: Status,
    reason: Option<AnomalyReason>,
    loaded: Loaded,
    /// The amount the invoice keeps: the registered one, else the observation's.
    pub amount: Option<Money>,
    grace_ms: i64,
    source: Source,
    now: i64,
}

/// The invoice after the observation, to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub status: Status,
    pub sequence: i64,
    /// Events written (0 or 1).
    pub events: usize,
    /// The anomaly recorded, if a new one was.
    pub anomaly: Option<AnomalyReason>,
    pub needs_review: bool,
    pub next_inquiry_at: Option<i64>,
    pub notified_at: Option<i64>,
    /// The history outcome, when it differs from the planned one (an anomaly seen before).
    pub corrected_outcome: Option<HistoryOutcome>,
}

/// Plans `obs` against `loaded`, at `now`; `grace_ms` is the wait before the first inquiry.
pub fn plan(loaded: Loaded, obs: &Observation, grace_ms: i64, now: i64) -> Plan {
    // Trust comes only from a verified payment fact: a signed notification, or a signed inquiry
    // answer that reports a payment. An invoice known only from a browser return stays untrusted
    // otherwise, and an untrusted invoice changes no state and publishes nothing.
    let trusted = loaded.trusted
        || match obs.source {
            Source::BackendNotification => true,
            Source::Inquiry => obs.class().reports_payment(),
            Source::FrontendReturn => false,
        };
    let observed = obs.amount.as_ref();
    let current = Current { status: loaded.status, amount: loaded.amount.clone(), sequence: loaded.sequence };
    let decision = if trusted { state::decide(Some(&current), obs.class(), observed) } else { Decision::NoChange };
    let outcome = match decision {
        Decision::Transition { to } => HistoryOutcome::Applied(to),
        Decision::Anomaly(r) => HistoryOutcome::Anomaly(r),
        Decision::NoChange => HistoryOutcome::NoChange,
    };
    let (event_type, reason, next_status) = match decision {
        Decision::NoChange => (None, None, loaded.status),
        Decision::Transition { to } => (Some(to.event_type()), None, to),
        Decision::Anomaly(r) => (Some(EventType::Anomaly), Some(r), loaded.status),
    };
    let amount = loaded.amount.clone().or_else(|| observed.cloned());
    let event = event_type.map(|event_type| {
        event::build(&EventFacts {
            merchant_id: &obs.merchant_id,
            invoice_no: &obs.invoice_no,
            event_type,
            status: next_status,
            previous_status: Some(loaded.status),
            sequence: loaded.sequence + 1,
            amount: observed.or(loaded.amount.as_ref()),
            observation: Some(obs),
            reason,
            source: obs.source.as_str(),
            now_ms: now,
        })
    });
    Plan { decision, trusted, outcome, event, next_status, reason, loaded, amount, grace_ms, source: obs.source, now }
}

impl Plan {
    /// The invoice afterwards, given whether the planned event was written (`false` also when
    /// there was none to write).
    pub fn settle(&self, event_written: bool) -> Settled {
        let loaded = &self.loaded;
        let written = event_written && self.event.is_some();
        let (status, sequence, events) =
            if written { (self.next_status, loaded.sequence + 1, 1) } else { (loaded.status, loaded.sequence, 0) };
        let anomaly = if written { self.reason } else { None };
        let needs_review = loaded.needs_review || anomaly.is_some_and(AnomalyReason::stops_reconciliation);
        let next_inquiry_at = if status.is_final() || needs_review {
            None
        } else {
            loaded.next_inquiry_at.or(Some(self.now + self.grace_ms))
        };
        let notified_at = match self.source {
            Source::BackendNotification => loaded.notified_at.or(Some(self.now)),
            _ => loaded.notified_at,
        };
        let corrected_outcome = match (self.decision, written) {
            // The same anomaly was recorded before: say so in this observation's history.
            (Decision::Anomaly(r), false) => Some(HistoryOutcome::AnomalyRepeated(r)),
            _ => None,
        };
        Settled { status, sequence, events, anomaly, needs_review, next_inquiry_at, notified_at, corrected_outcome }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::payment_result::PaymentResult;

    fn obs(source: Source, code: &str, amount: Option<&str>) -> Observation {
        let amount = amount.map(|a| format!(r#","amount":"{a}","currencyCode":"THB""#)).unwrap_or_default();
        let json = format!(r#"{{"invoiceNo":"INV1","respCode":"{code}","tranRef":"T1"{amount}}}"#);
        let result: PaymentResult = serde_json::from_str(&json).unwrap();
        Observation::from_payment_result(&result, source, "JT01", "+07:00".parse().unwrap(), 5).unwrap()
    }

    fn pending(trusted: bool) -> Loaded {
        Loaded {
            status: Status::Pending,
            trusted,
            amount: None,
            sequence: 0,
            needs_review: false,
            next_inquiry_at: None,
            notified_at: None,
        }
    }

    #[test]
    fn a_verified_success_moves_a_pending_invoice_and_stops_its_inquiries() {
        let p = plan(pending(false), &obs(Source::BackendNotification, "0000", Some("10.00")), 300, 1_000);
        assert!(p.trusted, "a signed notification makes the invoice trusted");
        assert_eq!(p.outcome, HistoryOutcome::Applied(Status::Succeeded));
        assert_eq!(p.event.as_ref().map(|e| e.event_type), Some(EventType::Succeeded));
        assert_eq!(p.amount.as_ref().map(Money::minor), Some(1000), "first news: the observation's amount");
        let s = p.settle(true);
        assert_eq!((s.status, s.sequence, s.events), (Status::Succeeded, 1, 1));
        assert_eq!((s.next_inquiry_at, s.notified_at), (None, Some(1_000)));
        assert_eq!(s.corrected_outcome, None);
        let again = p.settle(false);
        assert_eq!((again.status, again.sequence, again.events), (Status::Pending, 0, 0), "the event existed");
    }

    #[test]
    fn an_untrusted_invoice_changes_nothing_and_stays_scheduled() {
        let p = plan(pending(false), &obs(Source::FrontendReturn, "0000", None), 300, 1_000);
        assert!(!p.trusted);
        assert_eq!((p.decision, p.event.is_none()), (Decision::NoChange, true));
        let s = p.settle(false);
        assert_eq!((s.status, s.next_inquiry_at, s.notified_at), (Status::Pending, Some(1_300), None));
        // An inquiry answer that reports no payment does not make it trusted either.
        assert!(!plan(pending(false), &obs(Source::Inquiry, "2002", None), 300, 1_000).trusted);
        assert!(plan(pending(false), &obs(Source::Inquiry, "0001", None), 300, 1_000).trusted);
    }

    #[test]
    fn an_amount_mismatch_is_an_anomaly_that_stops_reconciliation_once() {
        let mut loaded = pending(true);
        loaded.amount = Some(Money::parse_major("10.00", "THB").unwrap());
        loaded.next_inquiry_at = Some(50);
        let p = plan(loaded, &obs(Source::Inquiry, "0000", Some("9.99")), 300, 1_000);
        assert_eq!(p.outcome, HistoryOutcome::Anomaly(AnomalyReason::AmountMismatch));
        assert_eq!(p.amount.as_ref().map(Money::minor), Some(1000), "the registered amount is kept");
        let s = p.settle(true);
        assert_eq!(
            (s.status, s.anomaly, s.needs_review, s.next_inquiry_at),
            (Status::Pending, Some(AnomalyReason::AmountMismatch), true, None)
        );
        let repeated = p.settle(false);
        assert_eq!((repeated.anomaly, repeated.needs_review, repeated.next_inquiry_at), (None, false, Some(50)));
        assert_eq!(repeated.corrected_outcome, Some(HistoryOutcome::AnomalyRepeated(AnomalyReason::AmountMismatch)));
    }
}
