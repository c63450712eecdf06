//! Reconciliation: every invoice that is not final is settled through Payment Inquiry, with
//! backoff, a rate limit toward 2C2P and leases so several replicas share the work.

pub mod outcome;
pub mod policy;
mod runner;

pub use outcome::InquiryOutcome;
pub use runner::{InquiryReport, Reconciler};
