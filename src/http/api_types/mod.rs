//! Typed request and response bodies of the HTTP API: what handlers read and answer, and what the
//! OpenAPI document (`src/http/openapi.rs`) describes.
//!
//! Grouped by who calls: [`public`] (2C2P and browsers), [`health`] (probes), [`invoices`]
//! (payment tokens, registration, the invoice read model), [`operator`] (lists, replays, the
//! quarantine). Every type is re-exported here.

pub mod health;
pub mod invoices;
pub mod operator;
pub mod public;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use health::*;
pub use invoices::*;
pub use operator::*;
pub use public::*;

/// The JSON error of every caller-caused failure.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code to branch on, e.g. `invalid_request`, `bad_signature`, `gateway_rejected`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// Human text; never carries a secret, a token or a card number.
    pub message: String,
    /// 2C2P's response code, when 2C2P refused the request.
    #[serde(rename = "respCode", skip_serializing_if = "Option::is_none")]
    #[schema(example = "9015")]
    pub resp_code: Option<String>,
    /// 2C2P's description of `respCode`.
    #[serde(rename = "respDesc", skip_serializing_if = "Option::is_none")]
    pub resp_desc: Option<String>,
}

/// An amount of money: integer minor units plus the same amount as a decimal string.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MoneyBody {
    /// The exact amount in minor units (cents): 100000 with exponent 2 is 1000.00.
    #[schema(example = 100000)]
    pub minor: i64,
    /// ISO 4217 code.
    #[schema(example = "SGD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Decimals of the currency.
    #[schema(example = 2)]
    pub exponent: u32,
    /// The amount in major units, for display.
    #[schema(example = "1000.00")]
    pub value: String,
}

impl From<&crate::domain::money::Money> for MoneyBody {
    fn from(m: &crate::domain::money::Money) -> Self {
        MoneyBody {
            minor: m.minor(),
            currency: m.currency().code().to_string(),
            exponent: m.exponent(),
            value: m.major_string(),
        }
    }
}

/// An invoice state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusBody {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl From<crate::domain::state::Status> for StatusBody {
    fn from(s: crate::domain::state::Status) -> Self {
        use crate::domain::state::Status as S;
        match s {
            S::Pending => StatusBody::Pending,
            S::Succeeded => StatusBody::Succeeded,
            S::Failed => StatusBody::Failed,
            S::Cancelled => StatusBody::Cancelled,
            S::Expired => StatusBody::Expired,
        }
    }
}

/// A major-unit amount as 2C2P takes it: a JSON number or a decimal string.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AmountInput {
    #[schema(value_type = f64)]
    Number(serde_json::Number),
    Text(String),
}
