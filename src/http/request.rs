//! Reading and validating the JSON bodies of the internal API's write requests.

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::config::Merchant;
use crate::domain::ids::InvoiceNo;
use crate::domain::money::{Money, MoneyError};
use crate::http::api_types::AmountInput;
use crate::http::error::ApiError;
use crate::http::AppState;

/// Reads the body as the typed request `T`: anything but a JSON object is `400 malformed`; a
/// missing required field or a field of the wrong type is `422 invalid_request` naming the field.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(ApiError::bad_request("malformed", "the body must be a JSON object")),
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let why = e.into_inner().to_string();
        let message = if path == "." { why } else { format!("`{path}` {why}") };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    })
}

pub(crate) fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", format!("`{field}` {why}"))
}

/// The merchant named by `merchantID`, or the only configured one when absent.
pub(crate) fn merchant<'a>(state: &'a AppState, id: Option<&str>) -> Result<&'a Merchant, ApiError> {
    match id {
        Some(id) => state.config.merchant(id).ok_or_else(|| invalid("merchantID", "is not a configured merchant")),
        None if state.config.merchants.len() == 1 => Ok(&state.config.merchants[0]),
        None => Err(invalid("merchantID", "is required when several merchants are configured")),
    }
}

/// `invoiceNo`: 1 to 50 characters of letters, digits, `-` and `_`.
pub(crate) fn invoice_no(no: &str) -> Result<InvoiceNo, ApiError> {
    InvoiceNo::parse(no)
        .ok()
        .filter(InvoiceNo::is_plain)
        .ok_or_else(|| invalid("invoiceNo", "must be 1 to 50 letters, digits, '-' or '_'"))
}

/// `amount` (number or decimal string, major units) in `currencyCode`, at the currency's precision.
pub(crate) fn amount(amount: &AmountInput, currency: &str) -> Result<Money, ApiError> {
    let text = match amount {
        AmountInput::Text(s) => s.clone(),
        AmountInput::Number(n) => n.to_string(),
    };
    let money = Money::parse_major(&text, currency).map_err(|e| match e {
        MoneyError::UnknownCurrency(_) => invalid("currencyCode", "is not a supported ISO 4217 currency"),
        other => invalid("amount", &other.to_string()),
    })?;
    if money.minor() == 0 {
        return Err(invalid("amount", "must be greater than zero"));
    }
    Ok(money)
}
