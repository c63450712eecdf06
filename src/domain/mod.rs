//! Payment domain: money, the invoice state machine, normalised observations of the gateway and
//! the events they cause. Pure code: no I/O.

pub mod dedupe;
pub mod event;
pub mod history;
pub mod money;
pub mod observation;
pub mod origin;
pub mod plan;
pub mod redact;
pub mod state;
