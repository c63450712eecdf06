//! Payment domain: identifiers, money, the invoice state machine, normalised observations of the
//! gateway, the plan of what one observation does, and the events they cause. Pure code: no I/O.

pub mod dedupe;
pub mod event;
pub mod history;
pub mod ids;
pub mod money;
pub mod observation;
pub mod origin;
pub mod plan;
pub mod redact;
pub mod state;
