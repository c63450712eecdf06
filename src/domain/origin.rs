//! How pgw-relay first learned of an invoice (`invoices.origin`).

use std::fmt;

use crate::domain::observation::Source;

/// How an invoice came to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Registered after 2C2P created its payment token (`POST /v1/payment-tokens`).
    PaymentToken,
    /// Registered through `POST /v1/invoices`.
    Registered,
    /// First seen in a verified backend notification.
    BackendNotification,
    /// First seen in an inquiry answer.
    Inquiry,
    /// First seen in a browser return (untrusted until a verified fact arrives).
    FrontendReturn,
}

impl Origin {
    /// Every origin.
    pub const ALL: [Origin; 5] = [
        Origin::PaymentToken,
        Origin::Registered,
        Origin::BackendNotification,
        Origin::Inquiry,
        Origin::FrontendReturn,
    ];

    /// The stored and shown spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::PaymentToken => "payment_token",
            Origin::Registered => "registered",
            Origin::BackendNotification => "backend_notification",
            Origin::Inquiry => "inquiry",
            Origin::FrontendReturn => "frontend_return",
        }
    }
}

impl From<Source> for Origin {
    fn from(source: Source) -> Origin {
        match source {
            Source::BackendNotification => Origin::BackendNotification,
            Source::FrontendReturn => Origin::FrontendReturn,
            Source::Inquiry => Origin::Inquiry,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored spelling that names no known value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl TryFrom<String> for Origin {
    type Error = UnknownValue;
    fn try_from(value: String) -> Result<Origin, UnknownValue> {
        Origin::ALL.into_iter().find(|o| o.as_str() == value).ok_or(UnknownValue { what: "origin", value })
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_origin_reads_back() {
        for o in Origin::ALL {
            assert_eq!(Origin::try_from(o.as_str().to_string()), Ok(o));
        }
        assert!(Origin::try_from("notification".to_string()).is_err());
        assert_eq!(Origin::from(Source::FrontendReturn).as_str(), Source::FrontendReturn.as_str());
    }
}
