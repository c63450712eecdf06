//! `POST /v1/payment-tokens` (the seed flow "Payment with Customer Token") and `POST /v1/invoices`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{NaiveDateTime, TimeZone};
use serde_json::Value;

use crate::config::Merchant;
use crate::domain::money::{Money, MoneyError};
use crate::domain::observation::valid_invoice_no;
use crate::gateway::GatewayError;
use crate::http::api_types::{AmountInput, PaymentTokenRequest, RegisterInvoiceRequest};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::{now_ms, NewInvoice};

/// Reads the body as the typed request `T`: anything but a JSON object is `400 malformed`; a
/// missing required field or a field of the wrong type is `422 invalid_request` naming the field.
fn typed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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

fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", format!("`{field}` {why}"))
}

/// The merchant named by `merchantID`, or the only configured one when absent.
fn merchant<'a>(state: &'a AppState, id: Option<&str>) -> Result<&'a Merchant, ApiError> {
    match id {
        Some(id) => state.config.merchant(id).ok_or_else(|| invalid("merchantID", "is not a configured merchant")),
        None if state.config.merchants.len() == 1 => Ok(&state.config.merchants[0]),
        None => Err(invalid("merchantID", "is required when several merchants are configured")),
    }
}

/// `invoiceNo`: 1 to 50 characters of letters, digits, `-` and `_`.
fn invoice_no(no: &str) -> Result<String, ApiError> {
    let ok = valid_invoice_no(no) && no.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(invalid("invoiceNo", "must be 1 to 50 letters, digits, '-' or '_'"));
    }
    Ok(no.to_string())
}

/// `amount` (number or decimal string, major units) in `currencyCode`, at the currency's precision.
fn amount(amount: &AmountInput, currency: &str) -> Result<Money, ApiError> {
    let text = match amount {
        AmountInput::Text(s) => s.clone(),
        AmountInput::Number(n) => n.to_string(),
    };
    let money = Money::parse_major(&text, currency).map_err(|e| match e {
        MoneyError::UnknownCurrency(_) => invalid("currencyCode", "is not a supported ISO 4217 currency"),
        other => invalid("amount", &other.to_string()),
    })?;
    if money.minor == 0 {
        return Err(invalid("amount", "must be greater than zero"));
    }
    Ok(money)
}

#[utoipa::path(post, path = "/v1/payment-tokens", tag = "internal", summary = "Create a 2C2P payment token",
    description = "Validates the fields pgw-relay depends on, fills the return URLs from the merchant's \
                   configuration, signs, calls 2C2P, and registers the invoice only after 2C2P answered `0000`.",
    security(("bearer" = [])),
    request_body(content = crate::http::api_types::PaymentTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; send the browser to `webPaymentUrl`.", body = crate::http::api_types::PaymentTokenCreated),
        (status = 400, description = "`malformed`: not a JSON object.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 422, description = "`invalid_request`: the message names the field.", body = crate::http::api_types::ErrorBody),
        (status = 502, description = "`gateway_rejected` (with 2C2P's `respCode`, `respDesc`), `gateway_bad_signature`, \
            `gateway_malformed` or `gateway_unavailable`.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
        (status = 504, description = "`gateway_timeout`.", body = crate::http::api_types::ErrorBody),
    ))]
/// `POST /v1/payment-tokens`: validate, fill return URLs, sign, call 2C2P, check `respCode`,
/// register the invoice, answer `201`.
pub async fn create_payment_token(body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let req: PaymentTokenRequest = typed(&body)?;
    let merchant = merchant(&state, req.merchant_id.as_deref())?;
    let invoice_no = invoice_no(&req.invoice_no)?;
    let money = amount(&req.amount, &req.currency_code)?;
    if req.description.trim().is_empty() || req.description.chars().count() > 250 {
        return Err(invalid("description", "is required (1 to 250 characters)"));
    }
    for (legacy, tokens) in [("customerToken", &req.customer_token), ("cardTokens", &req.card_tokens)] {
        if tokens.iter().flatten().any(|t| t.is_empty() || t.len() > 255) {
            return Err(invalid(legacy, "must be an array of token strings"));
        }
    }
    let expires_at = match &req.payment_expiry {
        None => None,
        Some(s) => Some(
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .and_then(|naive| merchant.timezone.from_local_datetime(&naive).single())
                .map(|t| t.timestamp_millis())
                .filter(|t| *t > now_ms())
                .ok_or_else(|| {
                    invalid("paymentExpiry", "must be a future time as yyyy-MM-dd HH:mm:ss (merchant time zone)")
                })?,
        ),
    };
    // The 2C2P request: the caller's fields (unknown ones passed through), normalised.
    let Ok(Value::Object(mut fields)) = serde_json::to_value(&req) else {
        return Err(ApiError::bad_request("malformed", "the body must be a JSON object"));
    };
    fields.insert("merchantID".into(), Value::String(merchant.id.clone()));
    fields.insert("invoiceNo".into(), Value::String(invoice_no.clone()));
    fields.insert("amount".into(), Value::String(money.major_string()));
    fields.insert("currencyCode".into(), Value::String(money.currency.clone()));
    for (field, configured) in
        [("backendReturnUrl", &merchant.backend_return_url), ("frontendReturnUrl", &merchant.frontend_return_url)]
    {
        if !fields.contains_key(field) {
            if let Some(url) = configured {
                fields.insert(field.into(), Value::String(url.clone()));
            }
        }
    }
    let retry_allowed = req.idempotency_id.as_deref().is_some_and(|s| !s.is_empty());
    let request = Value::Object(fields);

    let mut answer = state.gateway.payment_token(merchant, &request).await;
    if retry_allowed && answer.as_ref().err().is_some_and(GatewayError::is_transient) {
        answer = state.gateway.payment_token(merchant, &request).await;
    }
    let response = answer.map_err(|e| gateway_error(&e))?;
    if response.resp_code != "0000" {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_rejected",
            format!("2C2P answered {} {}", response.resp_code, response.resp_desc),
        )
        .with_gateway_code(&response.resp_code, &response.resp_desc));
    }
    let (Some(payment_token), Some(web_payment_url)) = (response.payment_token, response.web_payment_url) else {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_malformed",
            "2C2P answered 0000 without a payment token or URL",
        ));
    };
    register(&state, &merchant.id, &invoice_no, money, expires_at, "payment_token").await?;
    tracing::info!(merchant = %merchant.id, invoice = %invoice_no, "payment token created");
    Ok(HttpResponse::Created().json(crate::http::api_types::PaymentTokenCreated {
        web_payment_url,
        payment_token,
        merchant_id: merchant.id.clone(),
        invoice_no,
    }))
}

/// Registers the invoice for reconciliation; `true` when it was new.
async fn register(
    state: &AppState,
    merchant_id: &str,
    invoice_no: &str,
    amount: Money,
    expires_at_ms: Option<i64>,
    origin: &'static str,
) -> Result<bool, ApiError> {
    let invoice = NewInvoice {
        merchant_id: merchant_id.to_owned(),
        invoice_no: invoice_no.to_owned(),
        amount,
        expires_at_ms,
        origin,
    };
    Ok(state.store.register_invoice(invoice, state.timing()).await?)
}

fn gateway_error(e: &GatewayError) -> ApiError {
    match e {
        GatewayError::Rejected { code, desc } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "gateway_rejected", format!("2C2P answered {code} {desc}"))
                .with_gateway_code(code, desc)
        }
        GatewayError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", e.to_string()),
        GatewayError::BadSignature => ApiError::new(StatusCode::BAD_GATEWAY, "gateway_bad_signature", e.to_string()),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "gateway_unavailable", e.to_string()),
    }
}

/// `POST /v1/invoices`: register an invoice whose token was created elsewhere.
#[utoipa::path(post, path = "/v1/invoices", tag = "internal", summary = "Register an invoice for reconciliation",
    security(("bearer" = [])),
    request_body(content = crate::http::api_types::RegisterInvoiceRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered.", body = crate::http::api_types::InvoiceSummary),
        (status = 200, description = "Already known.", body = crate::http::api_types::InvoiceSummary),
        (status = 400, description = "`malformed`: not a JSON object.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 422, description = "`invalid_request`: the message names the field.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn register_invoice(body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let req: RegisterInvoiceRequest = typed(&body)?;
    let merchant = merchant(&state, req.merchant_id.as_deref())?;
    let invoice_no = invoice_no(&req.invoice_no)?;
    let money = amount(&req.amount, &req.currency_code)?;
    let expires_at = match &req.expires_at {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| invalid("expiresAt", "must be an RFC 3339 time"))?
                .timestamp_millis(),
        ),
    };
    let created = register(&state, &merchant.id, &invoice_no, money, expires_at, "registered").await?;
    let inv = state.store.invoice(&merchant.id, &invoice_no).await?.ok_or_else(ApiError::store_unavailable)?;
    let body = crate::http::api_types::InvoiceSummary {
        status: inv.status()?.into(),
        amount: inv.amount().as_ref().map(Into::into),
        merchant_id: inv.merchant_id,
        invoice_no: inv.invoice_no,
    };
    Ok(if created { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}

/// `POST /v1/invoices/{merchantID}/{invoiceNo}/reconcile`: one inquiry now.
#[utoipa::path(post, path = "/v1/invoices/{merchantID}/{invoiceNo}/reconcile", tag = "internal",
    summary = "Run one Payment Inquiry now",
    security(("bearer" = [])),
    params(
        ("merchantID" = String, Path, description = "The merchant.", example = "JT01"),
        ("invoiceNo" = String, Path, description = "The invoice number.", example = "INV-1001"),
    ),
    responses(
        (status = 200, description = "What the inquiry found and did.", body = crate::http::api_types::InquiryReportBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 404, description = "`not_found`: not known.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn reconcile_now(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (merchant_id, invoice_no) = path.into_inner();
    match state.reconciler.inquire_now(&merchant_id, &invoice_no).await? {
        Some(report) => Ok(HttpResponse::Ok().json(report)),
        None => Err(ApiError::not_found(format!("invoice {invoice_no} of merchant {merchant_id} is not known"))),
    }
}
