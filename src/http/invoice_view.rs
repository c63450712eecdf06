//! The invoice read model: one invoice with its history and events, and its history page by page.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::clock::rfc3339_ms;
use crate::http::error::ApiError;
use crate::http::AppState;

/// `GET /v1/invoices/{merchantID}/{invoiceNo}`: current state and history of one invoice.
#[utoipa::path(get, path = "/v1/invoices/{merchantID}/{invoiceNo}", tag = "internal", summary = "One invoice: state, history, events",
    security(("bearer" = [])),
    params(
        ("merchantID" = String, Path, description = "The merchant.", example = "JT01"),
        ("invoiceNo" = String, Path, description = "The invoice number.", example = "INV-1001"),
    ),
    responses(
        (status = 200, description = "The invoice.", body = crate::http::api_types::InvoiceDetail),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 404, description = "`not_found`: not known.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn get_invoice(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (merchant_id, invoice_no) = path.into_inner();
    let Some(inv) = state.store.invoice(&merchant_id, &invoice_no).await? else {
        return Err(ApiError::not_found(format!("invoice {invoice_no} of merchant {merchant_id} is not known")));
    };
    let (history, history_next) = history_page(&state, &merchant_id, &invoice_no, 0, INLINE_HISTORY).await?;
    let events = state.store.events_of(&merchant_id, &invoice_no).await?;
    let time = |t: Option<i64>| t.map(rfc3339_ms);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "merchantID": inv.merchant_id,
        "invoiceNo": inv.invoice_no,
        "status": inv.status,
        "amount": inv.amount()?.map(|a| a.to_json()),
        "respCode": inv.resp_code,
        "respDesc": inv.resp_desc,
        "tranRef": inv.tran_ref,
        "origin": inv.origin,
        "trusted": inv.trusted,
        "needsReview": inv.needs_review,
        "sequence": inv.sequence,
        "notifiedAt": time(inv.notified_at),
        "customerReturnedAt": time(inv.returned_at),
        "expiresAt": time(inv.expires_at),
        "nextInquiryAt": time(inv.next_inquiry_at),
        "inquiryAttempts": inv.inquiry_attempts,
        "createdAt": rfc3339_ms(inv.created_at),
        "updatedAt": rfc3339_ms(inv.updated_at),
        "history": history,
        // The rest of a long history, page by page.
        "historyNext": history_next.map(|cursor| history_link(&merchant_id, &invoice_no, &cursor)),
        "events": events.iter().map(|e| serde_json::json!({
            "id": e.event_id,
            "type": e.event_type,
            "sequence": e.sequence,
            "createdAt": rfc3339_ms(e.created_at),
            "publishedAt": time(e.published_at),
        })).collect::<Vec<_>>(),
    })))
}

/// History entries inlined in the invoice document; the rest is behind `historyNext`.
const INLINE_HISTORY: i64 = 20;
/// Largest page of `GET /v1/invoices/{m}/{i}/history`.
const MAX_HISTORY_PAGE: i64 = 200;

/// One page of an invoice's history as JSON, and the cursor of the next page if there is one.
async fn history_page(
    state: &AppState,
    merchant_id: &str,
    invoice_no: &str,
    after_id: i64,
    limit: i64,
) -> Result<(Vec<serde_json::Value>, Option<String>), ApiError> {
    let mut rows = state.store.history(merchant_id, invoice_no, after_id, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|h| h.id.to_string()) } else { None };
    let items = rows
        .iter()
        .map(|h| {
            serde_json::json!({
                "id": h.id,
                "kind": h.kind,
                "respCode": h.resp_code,
                "respDesc": h.resp_desc,
                "outcome": h.outcome,
                "receivedAt": rfc3339_ms(h.received_at),
                "raw": h.raw,
                "observation": h
                    .normalized
                    .as_deref()
                    .and_then(|n| serde_json::from_str::<crate::http::api_types::ObservationBody>(n).ok()),
            })
        })
        .collect();
    Ok((items, next))
}

fn history_link(merchant_id: &str, invoice_no: &str, cursor: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("/v1/invoices/{}/{}/history?cursor={cursor}", enc(merchant_id), enc(invoice_no))
}

/// Query of `GET /v1/invoices/{m}/{i}/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/invoices/{merchantID}/{invoiceNo}/history?limit=&cursor=`: the invoice's history,
/// oldest first, in pages (`limit` 1–200, default 50; `nextCursor` continues).
#[utoipa::path(get, path = "/v1/invoices/{merchantID}/{invoiceNo}/history", tag = "internal",
    summary = "One invoice's history, page by page",
    security(("bearer" = [])),
    params(
        ("merchantID" = String, Path, description = "The merchant.", example = "JT01"),
        ("invoiceNo" = String, Path, description = "The invoice number.", example = "INV-1001"),
        ("limit" = Option<i64>, Query, description = "Entries per page, 1 to 200 (default 50)."),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page (or from `historyNext`)."),
    ),
    responses(
        (status = 200, description = "One page.", body = crate::http::api_types::HistoryPage),
        (status = 400, description = "`malformed`: a `limit` out of range or a `cursor` not given out by this API.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 404, description = "`not_found`: not known.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn get_history(
    path: web::Path<(String, String)>,
    query: web::Query<HistoryQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (merchant_id, invoice_no) = path.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(ApiError::bad_request("malformed", format!("`limit` must be 1 to {MAX_HISTORY_PAGE}")));
    }
    let after_id = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("malformed", "`cursor` is not one this API gave out"))?,
    };
    if state.store.invoice(&merchant_id, &invoice_no).await?.is_none() {
        return Err(ApiError::not_found(format!("invoice {invoice_no} of merchant {merchant_id} is not known")));
    }
    let (items, next) = history_page(&state, &merchant_id, &invoice_no, after_id, limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "nextCursor": next })))
}
