//! `GET|POST /2c2p/frontend-return`: the customer's browser coming back. Unsigned, so never proof
//! of payment and never a cause of a state change. What it may cost is bounded:
//!
//! - For a registered (trusted) pending invoice, the return is recorded (at most
//!   `max_returns_per_invoice`, identical ones once), a Payment Inquiry starts at once (one per
//!   invoice at a time, shared by concurrent returns), and the redirect waits up to
//!   `wait_for_result` for a final status from it or from a notification.
//! - For an invoice the relay does not trust (unknown, or known only from earlier returns), the
//!   return spends the merchant's token bucket, may store the invoice as untrusted (up to
//!   `max_untrusted_invoices`), gets at most one later inquiry, and is redirected at once.
//!
//! Either way the browser is sent to the merchant's result page with the status pgw-relay trusts.

use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::watch;

use crate::config::Merchant;
use crate::domain::dedupe;
use crate::domain::ids::{InvoiceKey, InvoiceNo};
use crate::domain::state::Status;
use crate::http::body::read_limited;
use crate::http::AppState;
use crate::protocol::frontend_return::{self, FrontendReturn};
use crate::store::FrontendReturnRecord;

/// Largest body read (the real one is a few hundred bytes). The body is streamed, not buffered by
/// actix: a larger `Content-Length` is refused before reading, a larger streamed body as soon as
/// it passes this size.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// How often a waiting browser looks at the invoice's state (a notification may settle it).
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Handles a browser return (form POST or GET with query).
pub async fn frontend_return(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let body = match read_limited(&req, payload, MAX_FORM_BYTES).await {
        Ok(body) => body,
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => {
            state.metrics.notification("frontend", "too_large");
            return page(e.status, "The payment response is too large.");
        }
        Err(e) => return page(e.status, "The payment response could not be read."),
    };
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    let param = |name: &str| params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let decoded = match frontend_return::decode(&param("paymentResponse").unwrap_or_default()) {
        Ok(d) => limit_text(d, state.config.settings.frontend_return.max_text_chars),
        Err(e) => {
            state.metrics.notification("frontend", "malformed");
            tracing::warn!(reason = %e, "frontend return not readable");
            return page(StatusCode::BAD_REQUEST, "We could not read the payment response.");
        }
    };
    let Some(merchant) = pick_merchant(&state, param("merchantID").as_deref(), &decoded.invoice_no).await else {
        state.metrics.notification("frontend", "unknown_merchant");
        return page(StatusCode::BAD_REQUEST, "We could not tell which shop this payment belongs to.");
    };

    let started = Instant::now();
    let (status, outcome) = handle(&state, merchant, &decoded).await;
    state.metrics.frontend_return_wait.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    tracing::info!(merchant = %merchant.id, invoice = %decoded.invoice_no, status = status.as_str(), wait = outcome, "customer returned");
    redirect(merchant, &decoded.invoice_no, status)
}

/// Records the return and decides the status to show: `(status, wait outcome)`.
async fn handle(state: &AppState, merchant: &Merchant, decoded: &FrontendReturn) -> (Status, &'static str) {
    // Decoding checked the invoice number already.
    let Ok(invoice_no) = InvoiceNo::parse(&decoded.invoice_no) else {
        return (Status::Pending, "not_waited");
    };
    let key = InvoiceKey { merchant_id: merchant.id.clone(), invoice_no };
    let known = match state.store.invoice(&merchant.id, &decoded.invoice_no).await {
        Ok(known) => known,
        Err(e) => {
            state.metrics.notification("frontend", "store_unavailable");
            tracing::error!(error = %e.chain(), "frontend return not read");
            return (Status::Pending, "not_waited");
        }
    };
    let trusted = known.as_ref().is_some_and(|inv| inv.trusted);
    // Only returns for invoices the relay does not trust spend the merchant's bucket: a customer
    // of a registered invoice is never locked out by somebody else's traffic.
    if !trusted && state.frontend_limiter.check_key(&merchant.id).is_err() {
        state.metrics.notification("frontend", "rate_limited");
        tracing::warn!(merchant = %merchant.id, "frontend returns for unknown invoices over the rate limit: not recorded");
        return (Status::Pending, "not_waited");
    }
    let recorded =
        match state.store.record_frontend_return(record(state, &key, decoded, !trusted), state.timing()).await {
            Ok(r) => r,
            Err(e) => {
                // Unsigned and only a hint: the browser is still redirected; reconciliation finds
                // the result either way.
                let outcome = if e.is_transient() { "store_unavailable" } else { "store_refused" };
                state.metrics.notification("frontend", outcome);
                tracing::error!(error = %e.chain(), outcome, "frontend return not stored");
                return (Status::Pending, "not_waited");
            }
        };
    state.metrics.notification("frontend", "accepted");
    if recorded.limited {
        tracing::warn!(merchant = %merchant.id, "untrusted invoice cap reached: unknown invoice not stored");
    }
    if recorded.created {
        state.reconciler.wake();
    }
    let status = recorded.status.unwrap_or(Status::Pending);
    if !recorded.trusted || status.is_final() || recorded.needs_review {
        // Untrusted invoices never make the browser wait and never get an inquiry now.
        let shown = if recorded.trusted { status } else { Status::Pending };
        return (shown, "not_waited");
    }
    // A new return starts an inquiry now; a repeated one only joins one that is running.
    let Some(done) = state.reconciler.inquire_on_return(&key, recorded.recorded) else {
        return (status, "not_waited");
    };
    wait_for_result(state, merchant, &decoded.invoice_no, done).await
}

/// Waits up to `frontend_return.wait_for_result` for a final status (from the inquiry or from a
/// notification that lands meanwhile). Ends early when the inquiry answered without one.
async fn wait_for_result(
    state: &AppState,
    merchant: &Merchant,
    invoice_no: &str,
    mut done: watch::Receiver<bool>,
) -> (Status, &'static str) {
    let wait = state.config.settings.frontend_return.wait_for_result;
    if wait.is_zero() {
        return (Status::Pending, "not_waited");
    }
    let Ok(_permit) = state.waiting_browsers.try_acquire() else {
        tracing::warn!("too many browsers waiting for results: redirecting without waiting");
        return (Status::Pending, "not_waited");
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let inquiry_done = *done.borrow_and_update();
        let status = match state.store.invoice(&merchant.id, invoice_no).await {
            Ok(Some(inv)) => inv.status,
            _ => Status::Pending,
        };
        if status.is_final() {
            return (status, "final");
        }
        if inquiry_done {
            return (status, "not_final");
        }
        if tokio::time::Instant::now() >= deadline {
            return (status, "timed_out");
        }
        let next_look = (tokio::time::Instant::now() + POLL_EVERY).min(deadline);
        tokio::select! {
            _ = done.changed() => {},
            _ = tokio::time::sleep_until(next_look) => {},
        }
    }
}

/// What to store of a return.
fn record(state: &AppState, key: &InvoiceKey, decoded: &FrontendReturn, may_create: bool) -> FrontendReturnRecord {
    let settings = &state.config.settings;
    let fr = &settings.frontend_return;
    let raw = serde_json::to_string(decoded).unwrap_or_default();
    FrontendReturnRecord {
        merchant_id: key.merchant_id.clone(),
        invoice_no: key.invoice_no.clone(),
        resp_code: decoded.resp_code.clone(),
        resp_desc: decoded.resp_desc.clone(),
        dedupe_key: dedupe::frontend_return_key(&key.merchant_id, &raw),
        raw,
        after_return: settings.reconcile.after_return,
        may_create,
        max_untrusted: i64::try_from(fr.max_untrusted_invoices).unwrap_or(i64::MAX),
        untrusted_ttl: fr.untrusted_ttl,
        max_returns: i64::from(fr.max_returns_per_invoice),
    }
}

/// Cuts the browser's free-text fields to `max_chars` characters.
fn limit_text(mut decoded: FrontendReturn, max_chars: usize) -> FrontendReturn {
    for field in [&mut decoded.resp_desc, &mut decoded.channel_code, &mut decoded.resp_code] {
        if let Some(text) = field.as_mut() {
            if let Some((cut, _)) = text.char_indices().nth(max_chars) {
                text.truncate(cut);
            }
        }
    }
    decoded
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

fn redirect(merchant: &Merchant, invoice_no: &str, status: Status) -> HttpResponse {
    match &merchant.result_url {
        Some(result_url) => {
            let mut target = result_url.clone();
            target.query_pairs_mut().append_pair("invoiceNo", invoice_no).append_pair("status", status.as_str());
            HttpResponse::SeeOther().insert_header((header::LOCATION, target.to_string())).finish()
        }
        None => page(StatusCode::OK, &format!("Payment for invoice {}: {}.", escape(invoice_no), status.as_str())),
    }
}

fn page(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Payment</title></head><body><p>{message}</p></body></html>"
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_cut_at_a_character_boundary() {
        let long = FrontendReturn {
            invoice_no: "1".into(),
            channel_code: Some("CC".into()),
            resp_code: Some("2000".into()),
            resp_desc: Some("é".repeat(5000)),
        };
        let cut = limit_text(long, 256);
        assert_eq!(cut.resp_desc.unwrap().chars().count(), 256);
        assert_eq!(cut.channel_code.as_deref(), Some("CC"));
    }
}
