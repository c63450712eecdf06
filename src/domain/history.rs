//! What each recorded observation did, as its history row says (`history.outcome`).

use std::fmt;

use crate::domain::state::{AnomalyReason, Status};

/// The outcome of one recorded observation. Stored and shown as text: `applied:<state>`,
/// `anomaly:<reason>`, `anomaly_repeated:<reason>` or `no_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOutcome {
    /// The invoice moved to (or announced) this state.
    Applied(Status),
    /// A new anomaly was recorded.
    Anomaly(AnomalyReason),
    /// The same anomaly was recorded before: no new event.
    AnomalyRepeated(AnomalyReason),
    /// Recorded; the state and events stay as they are.
    NoChange,
}

impl fmt::Display for HistoryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryOutcome::Applied(s) => write!(f, "applied:{}", s.as_str()),
            HistoryOutcome::Anomaly(r) => write!(f, "anomaly:{}", r.as_str()),
            HistoryOutcome::AnomalyRepeated(r) => write!(f, "anomaly_repeated:{}", r.as_str()),
            HistoryOutcome::NoChange => f.write_str("no_change"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_stored() {
        assert_eq!(HistoryOutcome::Applied(Status::Succeeded).to_string(), "applied:succeeded");
        assert_eq!(HistoryOutcome::Anomaly(AnomalyReason::Conflict).to_string(), "anomaly:conflict");
        assert_eq!(
            HistoryOutcome::AnomalyRepeated(AnomalyReason::AmountMismatch).to_string(),
            "anomaly_repeated:amount_mismatch"
        );
        assert_eq!(HistoryOutcome::NoChange.to_string(), "no_change");
    }
}
