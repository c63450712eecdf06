//! The 2C2P PGW wire format: JWT envelopes, payload types, response codes and the frontend return
//! encoding. Nothing here knows about storage or HTTP frameworks.

pub mod frontend_return;
pub mod jwt;
pub mod payment_result;
pub mod payment_token;
pub mod resp_code;
