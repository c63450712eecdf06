//! What one inquiry came to: the `result` of its report and the label of
//! `pgw_relay_inquiries_total`.

use serde::{Serialize, Serializer};

use crate::domain::observation::Observation;
use crate::protocol::resp_code::CodeClass;
use crate::reconcile::policy::NextStep;

/// The result of one inquiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InquiryOutcome {
    /// The gateway answered with a verified payment result of this class.
    Answered(CodeClass),
    /// No usable answer: unverifiable, malformed, or about another invoice.
    Indeterminate,
    /// The gateway refused the request, or the merchant is no longer configured.
    RequestError,
    /// The gateway could not be reached (or was not asked during an outage).
    TransportError,
}

impl InquiryOutcome {
    /// The label: the answer's class (`succeeded`, `pending`, `not_found`, …) or the error kind.
    pub fn as_str(self) -> &'static str {
        match self {
            InquiryOutcome::Answered(class) => class.as_str(),
            InquiryOutcome::Indeterminate => "indeterminate",
            InquiryOutcome::RequestError => "request_error",
            InquiryOutcome::TransportError => "transport_error",
        }
    }
}

impl Serialize for InquiryOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Everything an inquiry learned, to record.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// The verified answer, normalised, and the signed answer for audit.
    pub observation: Option<(Observation, String)>,
    pub step: NextStep,
    /// The gateway's `respCode` and `respDesc`, when it gave them.
    pub resp_code: Option<String>,
    pub resp_desc: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(InquiryOutcome::Answered(CodeClass::NotFound).as_str(), "not_found");
        assert_eq!(InquiryOutcome::TransportError.as_str(), "transport_error");
        assert_eq!(serde_json::to_string(&InquiryOutcome::RequestError).unwrap(), "\"request_error\"");
    }
}
