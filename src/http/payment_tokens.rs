//! `POST /v1/payment-tokens`: the seed flow "Payment with Customer Token".

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{NaiveDateTime, TimeZone};
use serde_json::Value;

use crate::clock::now_ms;
use crate::domain::ids::InvoiceKey;
use crate::domain::origin::Origin;
use crate::gateway::GatewayError;
use crate::http::api_types::PaymentTokenRequest;
use crate::http::error::ApiError;
use crate::http::invoices::register;
use crate::http::request::{amount, invalid, invoice_no, merchant, typed};
use crate::http::AppState;

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
    fields.insert("merchantID".into(), Value::String(merchant.id.to_string()));
    fields.insert("invoiceNo".into(), Value::String(invoice_no.to_string()));
    fields.insert("amount".into(), Value::String(money.major_string()));
    fields.insert("currencyCode".into(), Value::String(money.currency().code().to_string()));
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
    let key = InvoiceKey { merchant_id: merchant.id.clone(), invoice_no: invoice_no.clone() };
    register(&state, key, money, expires_at, Origin::PaymentToken).await?;
    tracing::info!(merchant = %merchant.id, invoice = %invoice_no, "payment token created");
    Ok(HttpResponse::Created().json(crate::http::api_types::PaymentTokenCreated {
        web_payment_url,
        payment_token,
        merchant_id: merchant.id.to_string(),
        invoice_no: invoice_no.into(),
    }))
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
