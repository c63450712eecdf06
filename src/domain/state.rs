//! The invoice state machine (docs/states.md): `pending` → one final state; a final state never goes
//! back; a second, different final state is a `conflict` anomaly, never an overwrite.

use serde::{Deserialize, Serialize};

use crate::domain::money::Money;
use crate::protocol::resp_code::CodeClass;

/// An invoice's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl Status {
    /// Every state, for metrics.
    pub const ALL: [Status; 5] =
        [Status::Pending, Status::Succeeded, Status::Failed, Status::Cancelled, Status::Expired];

    /// The spelling used in events and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    /// Parses the spelling used in events and the API.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether no further transition is allowed.
    pub fn is_final(self) -> bool {
        self != Status::Pending
    }

    /// The event type announcing a change into this state.
    pub fn event_type(self) -> EventType {
        match self {
            Status::Pending => EventType::Pending,
            Status::Succeeded => EventType::Succeeded,
            Status::Failed => EventType::Failed,
            Status::Cancelled => EventType::Cancelled,
            Status::Expired => EventType::Expired,
        }
    }
}

impl TryFrom<String> for Status {
    type Error = crate::domain::origin::UnknownValue;
    /// Reads a stored spelling.
    fn try_from(value: String) -> Result<Status, Self::Error> {
        Status::parse(&value).ok_or(crate::domain::origin::UnknownValue { what: "status", value })
    }
}

/// The event types on the wire (also the routing keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "payment.pending")]
    Pending,
    #[serde(rename = "payment.succeeded")]
    Succeeded,
    #[serde(rename = "payment.failed")]
    Failed,
    #[serde(rename = "payment.cancelled")]
    Cancelled,
    #[serde(rename = "payment.expired")]
    Expired,
    #[serde(rename = "payment.anomaly")]
    Anomaly,
}

impl EventType {
    /// `payment.<kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Pending => "payment.pending",
            EventType::Succeeded => "payment.succeeded",
            EventType::Failed => "payment.failed",
            EventType::Cancelled => "payment.cancelled",
            EventType::Expired => "payment.expired",
            EventType::Anomaly => "payment.anomaly",
        }
    }
}

/// Why an observation was not applied and needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyReason {
    Conflict,
    AmountMismatch,
    CurrencyMismatch,
    NeedsReview,
    /// A verified notification the store refused permanently: it is in quarantine.
    Unprocessable,
}

impl AnomalyReason {
    /// The `reason` field of a `payment.anomaly` event and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyReason::Conflict => "conflict",
            AnomalyReason::AmountMismatch => "amount_mismatch",
            AnomalyReason::CurrencyMismatch => "currency_mismatch",
            AnomalyReason::NeedsReview => "needs_review",
            AnomalyReason::Unprocessable => "unprocessable",
        }
    }

    /// Whether automatic reconciliation of the invoice stops.
    pub fn stops_reconciliation(self) -> bool {
        !matches!(self, AnomalyReason::Conflict | AnomalyReason::Unprocessable)
    }
}

/// What the store knows of an invoice before applying an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub status: Status,
    /// The registered amount, if the invoice was registered with one.
    pub amount: Option<Money>,
    /// Events emitted so far (0 = none).
    pub sequence: i64,
}

/// What applying an observation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Record the observation; the state and events stay as they are.
    NoChange,
    /// Move to `to` (or confirm `pending`) and emit its event.
    Transition { to: Status },
    /// Leave the state, emit `payment.anomaly` with this reason.
    Anomaly(AnomalyReason),
}

/// Decides what an observation of class `class` (with `amount` if it carried one) does to an
/// invoice in state `current` (`None` when the invoice is not known yet).
pub fn decide(current: Option<&Current>, class: CodeClass, amount: Option<&Money>) -> Decision {
    use CodeClass as C;
    let is_payment_fact = !matches!(class, C::Indeterminate | C::RequestError | C::NotFound);
    if is_payment_fact {
        if let (Some(registered), Some(seen)) = (current.and_then(|c| c.amount.as_ref()), amount) {
            if registered.currency() != seen.currency() {
                return Decision::Anomaly(AnomalyReason::CurrencyMismatch);
            }
            if registered.minor() != seen.minor() {
                return Decision::Anomaly(AnomalyReason::AmountMismatch);
            }
        }
    }
    let status = current.map(|c| c.status);
    match class {
        C::Indeterminate | C::RequestError | C::NotFound => Decision::NoChange,
        C::NeedsReview => Decision::Anomaly(AnomalyReason::NeedsReview),
        C::Pending => match current {
            None => Decision::Transition { to: Status::Pending },
            Some(c) if c.status == Status::Pending && c.sequence == 0 => Decision::Transition { to: Status::Pending },
            Some(_) => Decision::NoChange,
        },
        C::PostPayment => match status {
            Some(Status::Succeeded) => Decision::NoChange,
            None | Some(Status::Pending) => Decision::Anomaly(AnomalyReason::NeedsReview),
            Some(_) => Decision::Anomaly(AnomalyReason::Conflict),
        },
        C::Succeeded | C::Failed | C::Cancelled => {
            let target = match class {
                C::Succeeded => Status::Succeeded,
                C::Failed => Status::Failed,
                _ => Status::Cancelled,
            };
            match status {
                None | Some(Status::Pending) => Decision::Transition { to: target },
                Some(s) if s == target => Decision::NoChange,
                Some(_) => Decision::Anomaly(AnomalyReason::Conflict),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(status: Status, sequence: i64) -> Current {
        Current { status, amount: None, sequence }
    }

    #[test]
    fn pending_moves_to_each_final_state_once() {
        for (class, to) in [
            (CodeClass::Succeeded, Status::Succeeded),
            (CodeClass::Failed, Status::Failed),
            (CodeClass::Cancelled, Status::Cancelled),
        ] {
            assert_eq!(decide(Some(&at(Status::Pending, 0)), class, None), Decision::Transition { to });
            assert_eq!(decide(Some(&at(Status::Pending, 1)), class, None), Decision::Transition { to });
            assert_eq!(decide(None, class, None), Decision::Transition { to });
            assert_eq!(decide(Some(&at(to, 1)), class, None), Decision::NoChange, "same final state again");
        }
    }

    #[test]
    fn a_final_state_never_goes_back_and_a_different_one_is_a_conflict() {
        let finals = [Status::Succeeded, Status::Failed, Status::Cancelled, Status::Expired];
        for from in finals {
            assert_eq!(decide(Some(&at(from, 1)), CodeClass::Pending, None), Decision::NoChange);
            assert_eq!(decide(Some(&at(from, 1)), CodeClass::NotFound, None), Decision::NoChange);
            assert_eq!(decide(Some(&at(from, 1)), CodeClass::Indeterminate, None), Decision::NoChange);
            for class in [CodeClass::Succeeded, CodeClass::Failed, CodeClass::Cancelled] {
                let d = decide(Some(&at(from, 1)), class, None);
                let same = matches!(
                    (from, class),
                    (Status::Succeeded, CodeClass::Succeeded)
                        | (Status::Failed, CodeClass::Failed)
                        | (Status::Cancelled, CodeClass::Cancelled)
                );
                let want = if same { Decision::NoChange } else { Decision::Anomaly(AnomalyReason::Conflict) };
                assert_eq!(d, want, "{from:?} + {class:?}");
            }
        }
    }

    #[test]
    fn pending_is_announced_once() {
        assert_eq!(decide(None, CodeClass::Pending, None), Decision::Transition { to: Status::Pending });
        assert_eq!(
            decide(Some(&at(Status::Pending, 0)), CodeClass::Pending, None),
            Decision::Transition { to: Status::Pending }
        );
        assert_eq!(decide(Some(&at(Status::Pending, 1)), CodeClass::Pending, None), Decision::NoChange);
    }

    #[test]
    fn post_payment_codes_never_unpay() {
        assert_eq!(decide(Some(&at(Status::Succeeded, 1)), CodeClass::PostPayment, None), Decision::NoChange);
        assert_eq!(
            decide(Some(&at(Status::Pending, 0)), CodeClass::PostPayment, None),
            Decision::Anomaly(AnomalyReason::NeedsReview)
        );
        assert_eq!(
            decide(Some(&at(Status::Failed, 1)), CodeClass::PostPayment, None),
            Decision::Anomaly(AnomalyReason::Conflict)
        );
    }

    #[test]
    fn review_codes_and_mismatches_are_anomalies() {
        assert_eq!(
            decide(Some(&at(Status::Pending, 0)), CodeClass::NeedsReview, None),
            Decision::Anomaly(AnomalyReason::NeedsReview)
        );
        let thb = |minor| Money::from_stored(minor, "THB", 2).unwrap();
        let registered = Current { status: Status::Pending, amount: Some(thb(1000)), sequence: 0 };
        assert_eq!(
            decide(Some(&registered), CodeClass::Succeeded, Some(&thb(999))),
            Decision::Anomaly(AnomalyReason::AmountMismatch)
        );
        let sgd = Money::from_stored(1000, "SGD", 2).unwrap();
        assert_eq!(
            decide(Some(&registered), CodeClass::Succeeded, Some(&sgd)),
            Decision::Anomaly(AnomalyReason::CurrencyMismatch)
        );
        assert_eq!(
            decide(Some(&registered), CodeClass::Succeeded, Some(&thb(1000))),
            Decision::Transition { to: Status::Succeeded }
        );
        assert_eq!(decide(Some(&registered), CodeClass::NotFound, Some(&thb(1))), Decision::NoChange);
    }
}
