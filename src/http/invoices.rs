//! `POST /v1/invoices` (register an invoice whose token was created elsewhere) and
//! `POST /v1/invoices/{merchantID}/{invoiceNo}/reconcile` (one inquiry now).

use actix_web::{web, HttpResponse};

use crate::domain::ids::InvoiceKey;
use crate::domain::money::Money;
use crate::domain::origin::Origin;
use crate::http::api_types::RegisterInvoiceRequest;
use crate::http::error::ApiError;
use crate::http::request::{amount, invalid, invoice_no, merchant, typed};
use crate::http::AppState;
use crate::store::NewInvoice;

/// Registers the invoice for reconciliation; `true` when it was new.
pub(crate) async fn register(
    state: &AppState,
    key: InvoiceKey,
    amount: Money,
    expires_at_ms: Option<i64>,
    origin: Origin,
) -> Result<bool, ApiError> {
    let invoice =
        NewInvoice { merchant_id: key.merchant_id, invoice_no: key.invoice_no, amount, expires_at_ms, origin };
    Ok(state.store.register_invoice(invoice, state.timing()).await?)
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
    let key = InvoiceKey { merchant_id: merchant.id.clone(), invoice_no: invoice_no.clone() };
    let created = register(&state, key, money, expires_at, Origin::Registered).await?;
    let inv = state.store.invoice(&merchant.id, &invoice_no).await?.ok_or_else(ApiError::store_unavailable)?;
    let body = crate::http::api_types::InvoiceSummary {
        status: inv.status.into(),
        amount: inv.amount()?.as_ref().map(Into::into),
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
