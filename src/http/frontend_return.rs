//! `GET|POST /2c2p/frontend-return`: the customer's browser coming back. Unsigned, so never proof of
//! payment: recorded, the invoice's next inquiry is brought forward, and the browser is sent to the
//! merchant's result page with the status pgw-relay trusts.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::Merchant;
use crate::domain::state::Status;
use crate::http::AppState;
use crate::protocol::frontend_return;
use crate::store::FrontendReturnRecord;

/// Largest form body read (the real one is a few hundred bytes).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Handles a browser return (form POST or GET with query).
pub async fn frontend_return(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    if body.len() > MAX_FORM_BYTES {
        state.metrics.notification("frontend", "too_large");
        return page(actix_web::http::StatusCode::PAYLOAD_TOO_LARGE, "The payment response is too large.");
    }
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    let param = |name: &str| params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let decoded = match frontend_return::decode(&param("paymentResponse").unwrap_or_default()) {
        Ok(d) => d,
        Err(e) => {
            state.metrics.notification("frontend", "malformed");
            tracing::warn!(reason = %e, "frontend return not readable");
            return page(actix_web::http::StatusCode::BAD_REQUEST, "We could not read the payment response.");
        }
    };
    let merchant = match pick_merchant(&state, param("merchantID").as_deref(), &decoded.invoice_no).await {
        Some(m) => m,
        None => {
            state.metrics.notification("frontend", "unknown_merchant");
            return page(
                actix_web::http::StatusCode::BAD_REQUEST,
                "We could not tell which shop this payment belongs to.",
            );
        }
    };

    let limited = state.frontend_limiter.check_key(&merchant.id).is_err();
    let status = if limited {
        state.metrics.notification("frontend", "rate_limited");
        tracing::warn!(merchant = %merchant.id, "frontend returns over the rate limit: not recorded");
        match state.store.invoice(&merchant.id, &decoded.invoice_no).await {
            Ok(Some(inv)) => inv.status().ok(),
            _ => None,
        }
    } else {
        let settings = &state.config.settings;
        let record = FrontendReturnRecord {
            merchant_id: merchant.id.clone(),
            invoice_no: decoded.invoice_no.clone(),
            resp_code: decoded.resp_code.clone(),
            resp_desc: decoded.resp_desc.clone(),
            raw: serde_json::to_string(&decoded).unwrap_or_default(),
            after_return: settings.reconcile.after_return,
            max_untrusted: i64::try_from(settings.frontend_return.max_untrusted_invoices).unwrap_or(i64::MAX),
        };
        match state.store.record_frontend_return(record, state.timing()).await {
            Ok(result) => {
                state.metrics.notification("frontend", "accepted");
                if result.limited {
                    tracing::warn!(merchant = %merchant.id, "untrusted invoice cap reached: unknown invoice not registered");
                }
                state.reconciler.wake();
                result.status
            }
            Err(e) => {
                // Unsigned and only a hint: the browser is still redirected; reconciliation finds
                // the result either way.
                let outcome = if e.is_transient() { "store_unavailable" } else { "store_refused" };
                state.metrics.notification("frontend", outcome);
                tracing::error!(error = %e.chain(), outcome, "frontend return not stored");
                None
            }
        }
    };
    let status = status.unwrap_or(Status::Pending);
    tracing::info!(merchant = %merchant.id, invoice = %decoded.invoice_no, status = status.as_str(), "customer returned");
    match &merchant.result_url {
        Some(result_url) => {
            let mut target = result_url.clone();
            target
                .query_pairs_mut()
                .append_pair("invoiceNo", &decoded.invoice_no)
                .append_pair("status", status.as_str());
            HttpResponse::SeeOther().insert_header((header::LOCATION, target.to_string())).finish()
        }
        None => page(
            actix_web::http::StatusCode::OK,
            &format!("Payment for invoice {}: {}.", escape(&decoded.invoice_no), status.as_str()),
        ),
    }
}

/// The merchant: `merchantID` on the return URL, else the only configured one, else the one that
/// knows the invoice.
async fn pick_merchant<'a>(state: &'a AppState, named: Option<&str>, invoice_no: &str) -> Option<&'a Merchant> {
    if let Some(id) = named {
        return state.config.merchant(id);
    }
    if state.config.merchants.len() == 1 {
        return state.config.merchants.first();
    }
    let mut found = None;
    for m in &state.config.merchants {
        if let Ok(Some(_)) = state.store.invoice(&m.id, invoice_no).await {
            if found.is_some() {
                return None;
            }
            found = Some(m);
        }
    }
    found
}

fn page(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Payment</title></head><body><p>{message}</p></body></html>"
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
