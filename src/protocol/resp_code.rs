//! The one table that maps 2C2P Payment Response Codes to what they mean for an invoice
//! (docs/states.md describes it and what each class does). Codes are always compared as
//! 4-character strings.
//!
//! | class | codes |
//! |---|---|
//! | `Succeeded` | 0000, 4110 (settled) |
//! | `PostPayment` | 4120–4122 (refund states), 4130–4132 (chargeback states): the invoice was paid |
//! | `Pending` | 0001, 2001, 4009 |
//! | `NotFound` | 2002, 4071, 4140: nothing completed yet; pending while the payment window is open |
//! | `Cancelled` | 0003 |
//! | `NeedsReview` | 4010, 4011, 4016, 4032, 5015, 5016 |
//! | `Indeterminate` | 0999, 2003, 4091, 4096, 5998, 9990–9999 service failures, and every code not listed here |
//! | `RequestError` | 6101–6110, 9004–9110 (except 9035), 9202, 9900–9909: the request was wrong, not the payment |
//! | `Failed` | 0004, 4001–4099 other than the codes above (so 4080/4081), 4201–4209, 5002–5014, 5017, 5019, 9035 |
//!
//! Only the listed codes fail an invoice: another code of a failing range (a 42xx above 4209, a
//! 50xx outside 5002–5019) is indeterminate, like any code 2C2P has not documented.

/// What a response code says about the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeClass {
    Succeeded,
    PostPayment,
    Pending,
    NotFound,
    Cancelled,
    Failed,
    NeedsReview,
    Indeterminate,
    RequestError,
}

impl CodeClass {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeClass::Succeeded => "succeeded",
            CodeClass::PostPayment => "post_payment",
            CodeClass::Pending => "pending",
            CodeClass::NotFound => "not_found",
            CodeClass::Cancelled => "cancelled",
            CodeClass::Failed => "failed",
            CodeClass::NeedsReview => "needs_review",
            CodeClass::Indeterminate => "indeterminate",
            CodeClass::RequestError => "request_error",
        }
    }

    /// Whether an answer of this class says that a payment exists for the invoice (it succeeded,
    /// failed, was cancelled, is in progress, or was refunded or disputed). "Not found",
    /// indeterminate answers and request errors say nothing of the kind.
    pub fn reports_payment(self) -> bool {
        matches!(
            self,
            CodeClass::Succeeded
                | CodeClass::PostPayment
                | CodeClass::Pending
                | CodeClass::Cancelled
                | CodeClass::Failed
                | CodeClass::NeedsReview
        )
    }
}

/// Normalises a code as received (a JSON number loses leading zeros) to 4 characters.
pub fn normalize(code: &str) -> Option<String> {
    let code = code.trim();
    if code.is_empty() || code.len() > 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{code:0>4}"))
}

/// Classifies a 4-digit payment response code.
pub fn classify(code: &str) -> CodeClass {
    let Some(code) = normalize(code) else {
        return CodeClass::Indeterminate;
    };
    let n: u32 = code.parse().unwrap_or(u32::MAX);
    match n {
        0 | 4110 => CodeClass::Succeeded,
        4120..=4122 | 4130..=4132 => CodeClass::PostPayment,
        1 | 2001 | 4009 => CodeClass::Pending,
        2002 | 4071 | 4140 => CodeClass::NotFound,
        3 => CodeClass::Cancelled,
        4010 | 4011 | 4016 | 4032 | 5015 | 5016 => CodeClass::NeedsReview,
        999 | 2003 | 4091 | 4096 | 5998 => CodeClass::Indeterminate,
        6101..=6110 | 9004..=9034 | 9036..=9110 | 9202 | 9900..=9909 => CodeClass::RequestError,
        9035 => CodeClass::Failed,
        9990..=9999 => CodeClass::Indeterminate,
        4 | 4001..=4099 | 4201..=4209 | 5002..=5014 | 5017 | 5019 => CodeClass::Failed,
        _ => CodeClass::Indeterminate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_about_a_payment_report_one() {
        for code in ["0000", "4110", "4120", "0001", "0003", "4005", "4010"] {
            assert!(classify(code).reports_payment(), "{code}");
        }
        for code in ["2002", "4071", "4140", "0999", "2003", "9042", "6101", "1234"] {
            assert!(!classify(code).reports_payment(), "{code}");
        }
    }

    #[test]
    fn the_documented_table() {
        let cases = [
            ("0000", CodeClass::Succeeded),
            ("4110", CodeClass::Succeeded),
            ("4120", CodeClass::PostPayment),
            ("4131", CodeClass::PostPayment),
            ("0001", CodeClass::Pending),
            ("2001", CodeClass::Pending),
            ("4009", CodeClass::Pending),
            ("2002", CodeClass::NotFound),
            ("0003", CodeClass::Cancelled),
            ("0004", CodeClass::Failed),
            ("4005", CodeClass::Failed),
            ("4080", CodeClass::Failed),
            ("4081", CodeClass::Failed),
            ("4201", CodeClass::Failed),
            ("5009", CodeClass::Failed),
            ("4010", CodeClass::NeedsReview),
            ("4011", CodeClass::NeedsReview),
            ("4016", CodeClass::NeedsReview),
            ("4032", CodeClass::NeedsReview),
            ("5015", CodeClass::NeedsReview),
            ("5016", CodeClass::NeedsReview),
            ("0999", CodeClass::Indeterminate),
            ("2003", CodeClass::Indeterminate),
            ("9999", CodeClass::Indeterminate),
            ("9015", CodeClass::RequestError),
            ("9042", CodeClass::RequestError),
            ("9202", CodeClass::RequestError),
            ("6103", CodeClass::RequestError),
            ("9035", CodeClass::Failed),
            ("abcd", CodeClass::Indeterminate),
            ("", CodeClass::Indeterminate),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code), class, "{code}");
        }
    }

    #[test]
    fn leading_zeros_lost_in_a_json_number_are_restored() {
        assert_eq!(normalize("0").as_deref(), Some("0000"));
        assert_eq!(normalize("1").as_deref(), Some("0001"));
        assert_eq!(classify("3"), CodeClass::Cancelled);
        assert_eq!(normalize("12345"), None);
    }
}
