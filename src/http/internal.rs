//! Internal listener: health, readiness, metrics and the `/v1` API.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::domain::event::rfc3339_ms;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::{now_ms, ReplaySelector};

/// `GET /healthz`: the process can serve.
#[utoipa::path(get, path = "/healthz", tag = "internal", summary = "Liveness",
    responses((status = 200, description = "The process serves.", body = crate::http::api_types::Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Longest a scrape or readiness probe waits for the store.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: 200 when the store answers; the body also reports broker and outbox. Reads a
/// few rows whatever the size of the tables, each store call bounded by a timeout.
#[utoipa::path(get, path = "/readyz", tag = "internal", summary = "Readiness",
    responses(
        (status = 200, description = "The store answers (a broker outage shows in the body only).", body = crate::http::api_types::Readiness),
        (status = 503, description = "The store does not answer, or the instance is draining.", body = crate::http::api_types::Readiness),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await.map(|r| r.is_ok()).unwrap_or(false);
    let outbox = match tokio::time::timeout(PROBE_TIMEOUT, state.store.gauges()).await {
        Ok(Ok(g)) => serde_json::json!({
            "backlog": g.outbox_backlog,
            "parked": g.outbox_parked,
            "oldestAgeSeconds": g.oldest_unpublished_at.map(|t| (now_ms() - t).max(0) / 1000),
        }),
        _ => serde_json::Value::Null,
    };
    let ready = store_ok && !state.is_draining();
    let body = serde_json::json!({
        "status": if ready { "ready" } else if state.is_draining() { "draining" } else { "store_unavailable" },
        "store": { "backend": state.store.backend(), "ok": store_ok },
        "broker": { "connected": (state.broker_status)() },
        "outbox": outbox,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: Prometheus text format. Refreshes the store-derived gauges first from counts
/// kept in the store (a few rows, not a scan), within a timeout; on a timeout or store error the
/// previous values are served and `pgw_relay_store_gauge_errors_total` counts it.
#[utoipa::path(get, path = "/metrics", tag = "internal", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition; every series is prefixed `pgw_relay_`.",
        content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match tokio::time::timeout(PROBE_TIMEOUT, state.store.gauges()).await {
        Ok(Ok(g)) => {
            for status in crate::domain::state::Status::ALL {
                let n = g.invoices.iter().find(|(s, _)| s == status.as_str()).map(|(_, n)| *n).unwrap_or(0);
                state.metrics.invoices.with_label_values(&[status.as_str()]).set(n);
            }
            state.metrics.outbox_backlog.set(g.outbox_backlog);
            state.metrics.outbox_parked.set(g.outbox_parked);
            state
                .metrics
                .outbox_oldest_age_seconds
                .set(g.oldest_unpublished_at.map(|t| (now_ms() - t).max(0) / 1000).unwrap_or(0));
        }
        Ok(Err(_)) | Err(_) => state.metrics.store_gauge_errors.inc(),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}

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
        "amount": inv.amount().map(|a| a.to_json()),
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
                "observation": h.normalized.as_deref().and_then(|n| serde_json::from_str::<serde_json::Value>(n).ok()),
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

/// Body of `POST /v1/events/replay`: one invoice, or a time range (RFC 3339), optionally per merchant.
#[derive(Debug, Deserialize)]
pub struct ReplayRequest {
    #[serde(rename = "merchantID")]
    merchant_id: Option<String>,
    #[serde(rename = "invoiceNo")]
    invoice_no: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Count what would be requeued, change nothing.
    #[serde(rename = "dryRun", default)]
    dry_run: bool,
}

/// `POST /v1/events/replay`: publish stored events again with their original ids.
#[utoipa::path(post, path = "/v1/events/replay", tag = "internal", summary = "Publish stored events again (same ids)",
    security(("bearer" = [])),
    request_body(content = crate::http::api_types::ReplayRequestBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Marked for publishing again.", body = crate::http::api_types::ReplayAccepted),
        (status = 200, description = "`dryRun`: how many events would be marked, nothing changed.", body = crate::http::api_types::ReplayDryRun),
        (status = 400, description = "`malformed`: neither an invoice nor a valid time range.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn replay_events(
    http: actix_web::HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let req: ReplayRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("malformed", format!("the body is not a replay request: {e}")))?;
    let parse = |field: &str, v: &str| {
        chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::bad_request("malformed", format!("`{field}` must be an RFC 3339 time")))
    };
    let selector = match (&req.merchant_id, &req.invoice_no, &req.from, &req.to) {
        (Some(m), Some(i), None, None) => ReplaySelector::Invoice { merchant_id: m.clone(), invoice_no: i.clone() },
        (m, None, Some(from), Some(to)) => {
            let (from_ms, to_ms) = (parse("from", from)?, parse("to", to)?);
            if from_ms >= to_ms {
                return Err(ApiError::bad_request("malformed", "`from` must be before `to`"));
            }
            ReplaySelector::Range { from_ms, to_ms, merchant_id: m.clone() }
        }
        _ => {
            return Err(ApiError::bad_request(
                "malformed",
                "give either merchantID and invoiceNo, or from and to (RFC 3339) with an optional merchantID",
            ))
        }
    };
    if req.dry_run {
        let count = state.store.count_replay(selector).await?;
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "dryRun": true, "wouldRequeue": count })));
    }
    let count = state.store.replay(selector).await?;
    state.outbox_wake.notify_one();
    tracing::info!(token = %crate::http::auth::token_of(&http), requeued = count, "events replay requested");
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "requeued": count })))
}
