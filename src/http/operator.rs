//! The operator's lists on the internal API: invoices and outbox rows in keyset pages (newest
//! first, stable under concurrent writes), one event replayed, and replays by invoice or time.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::clock::{now_ms, rfc3339_ms};
use crate::domain::state::Status;
use crate::http::auth::token_of;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::{EventFilter, InvoiceCursor, InvoiceFilter, ReplaySelector};
use serde::Deserialize;

/// Items per page unless `limit` says otherwise, and the most allowed.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// The query string as (name, value) pairs, each name allowed at most once and known.
fn query_pairs(req: &HttpRequest, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if !known.contains(&k.as_ref()) {
            return Err(invalid(&k, &format!("is not a parameter here (known: {})", known.join(", "))));
        }
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(invalid(&k, "is given more than once"));
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    Ok(pairs)
}

fn invalid(param: &str, what: &str) -> ApiError {
    let shown: String = param.chars().take(40).collect();
    ApiError::bad_request("invalid_query", format!("query parameter `{shown}` {what}"))
}

fn limit(v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| invalid("limit", &format!("must be an integer from 1 to {MAX_PAGE}")))
}

fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, "must be true or false")),
    }
}

fn time(name: &str, v: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| invalid(name, "must be an RFC 3339 time such as 2026-11-27T00:00:00Z"))
}

fn text(name: &str, v: &str) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > 64 {
        return Err(invalid(name, "must be 1 to 64 characters"));
    }
    Ok(v.to_string())
}

/// `GET /v1/invoices?merchantID=&status=&needsReview=&createdFrom=&createdTo=&limit=&cursor=`:
/// invoice summaries, newest first; `nextCursor` continues.
#[utoipa::path(get, path = "/v1/invoices", tag = "internal", summary = "Invoices, newest first, in pages",
    security(("bearer" = [])),
    params(
        ("merchantID" = Option<String>, Query, description = "Only this merchant."),
        ("status" = Option<crate::http::api_types::StatusBody>, Query, description = "Only invoices in this state."),
        ("needsReview" = Option<bool>, Query, description = "Only invoices under review (or not)."),
        ("createdFrom" = Option<String>, Query, description = "RFC 3339, inclusive."),
        ("createdTo" = Option<String>, Query, description = "RFC 3339, exclusive; after `createdFrom`."),
        ("limit" = Option<i64>, Query, description = "Items per page, 1 to 200 (default 50)."),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = crate::http::api_types::InvoicePage),
        (status = 400, description = "`invalid_query`, naming the parameter.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn list_invoices(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let known = ["merchantID", "status", "needsReview", "createdFrom", "createdTo", "limit", "cursor"];
    let mut f = InvoiceFilter { limit: DEFAULT_PAGE, ..InvoiceFilter::default() };
    for (k, v) in query_pairs(&req, &known)? {
        match k.as_str() {
            "merchantID" => f.merchant_id = Some(text(&k, &v)?),
            "status" => {
                let s = Status::parse(&v).ok_or_else(|| {
                    let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    invalid("status", &format!("must be one of {}", all.join(", ")))
                })?;
                f.status = Some(s.as_str().to_string());
            }
            "needsReview" => f.needs_review = Some(boolean(&k, &v)?),
            "createdFrom" => f.created_from = Some(time(&k, &v)?),
            "createdTo" => f.created_to = Some(time(&k, &v)?),
            "limit" => f.limit = limit(&v)?,
            _ => f.after = Some(decode_invoice_cursor(&v)?),
        }
    }
    if let (Some(from), Some(to)) = (f.created_from, f.created_to) {
        if from >= to {
            return Err(invalid("createdTo", "must be after createdFrom"));
        }
    }
    let page = f.limit;
    f.limit = page + 1;
    let mut rows = state.store.list_invoices(f).await?;
    let more = rows.len() as i64 > page;
    rows.truncate(page as usize);
    let next = if more { rows.last().map(encode_invoice_cursor) } else { None };
    let time = |t: Option<i64>| t.map(rfc3339_ms);
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let items: Vec<_> = rows
        .iter()
        .map(|inv| {
            Ok(serde_json::json!({
                "merchantID": inv.merchant_id,
                "invoiceNo": inv.invoice_no,
                "status": inv.status,
                "amount": inv.amount()?.map(|a| a.to_json()),
                "respCode": inv.resp_code,
                "origin": inv.origin,
                "trusted": inv.trusted,
                "needsReview": inv.needs_review,
                "sequence": inv.sequence,
                "nextInquiryAt": time(inv.next_inquiry_at),
                "inquiryAttempts": inv.inquiry_attempts,
                "createdAt": rfc3339_ms(inv.created_at),
                "updatedAt": rfc3339_ms(inv.updated_at),
                "href": format!("/v1/invoices/{}/{}", enc(&inv.merchant_id), enc(&inv.invoice_no)),
            }))
        })
        .collect::<Result<_, crate::store::StoreError>>()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "nextCursor": next })))
}

fn encode_invoice_cursor(inv: &crate::store::InvoiceRow) -> String {
    let json = serde_json::json!([inv.created_at, inv.merchant_id, inv.invoice_no]).to_string();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode_invoice_cursor(v: &str) -> Result<InvoiceCursor, ApiError> {
    let bad = || invalid("cursor", "is not one this API gave out");
    let bytes = URL_SAFE_NO_PAD.decode(v).map_err(|_| bad())?;
    let (created_at, merchant_id, invoice_no): (i64, String, String) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(InvoiceCursor { created_at, merchant_id, invoice_no })
}

/// `GET /v1/events?merchantID=&invoiceNo=&published=&limit=&cursor=`: outbox rows, newest
/// first, with their delivery attempts; `published=false` shows what is waiting or parked.
#[utoipa::path(get, path = "/v1/events", tag = "internal", summary = "Outbox events, newest first, in pages",
    security(("bearer" = [])),
    params(
        ("merchantID" = Option<String>, Query, description = "Only this merchant."),
        ("invoiceNo" = Option<String>, Query, description = "Only this invoice (needs `merchantID`)."),
        ("published" = Option<bool>, Query, description = "`false`: waiting or parked events only."),
        ("limit" = Option<i64>, Query, description = "Items per page, 1 to 200 (default 50)."),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "One page.", body = crate::http::api_types::EventPage),
        (status = 400, description = "`invalid_query`, naming the parameter.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn list_events(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let known = ["merchantID", "invoiceNo", "published", "limit", "cursor"];
    let mut f = EventFilter { limit: DEFAULT_PAGE, ..EventFilter::default() };
    for (k, v) in query_pairs(&req, &known)? {
        match k.as_str() {
            "merchantID" => f.merchant_id = Some(text(&k, &v)?),
            "invoiceNo" => f.invoice_no = Some(text(&k, &v)?),
            "published" => f.published = Some(boolean(&k, &v)?),
            "limit" => f.limit = limit(&v)?,
            _ => {
                f.before_seq = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("cursor", "is not one this API gave out"))?,
                )
            }
        }
    }
    if f.invoice_no.is_some() && f.merchant_id.is_none() {
        // Invoice numbers are per merchant, and the index on events starts with the merchant.
        return Err(invalid("merchantID", "is required with invoiceNo"));
    }
    let page = f.limit;
    f.limit = page + 1;
    let mut rows = state.store.list_events(f).await?;
    let more = rows.len() as i64 > page;
    rows.truncate(page as usize);
    let next = if more { rows.last().map(|e| e.seq.to_string()) } else { None };
    let now = now_ms();
    let items: Vec<_> = rows
        .iter()
        .map(|e| {
            let waiting = e.published_at.is_none();
            // A parked event is retried by the end of its relay's claim at the latest; an
            // unclaimed one on the relay's next pass.
            let next_attempt = waiting.then(|| e.claimed_until.filter(|t| *t > now).unwrap_or(now));
            serde_json::json!({
                "id": e.event_id,
                "outboxSeq": e.seq,
                "type": e.event_type,
                "merchantID": e.merchant_id,
                "invoiceNo": e.invoice_no,
                "sequence": e.sequence,
                "createdAt": rfc3339_ms(e.created_at),
                "publishedAt": e.published_at.map(rfc3339_ms),
                "attempts": e.attempts,
                "lastError": e.last_error,
                "parked": waiting && e.last_error.is_some(),
                "nextAttemptAt": next_attempt.map(rfc3339_ms),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "nextCursor": next })))
}

/// `POST /v1/events/{id}/replay`: publish one stored event again with its id. `202` with
/// `requeued` 1, or 0 when it is not published yet (the relay is still on it); `404` if unknown.
#[utoipa::path(post, path = "/v1/events/{id}/replay", tag = "internal", summary = "Publish one stored event again (same id)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event id (a UUID).")),
    responses(
        (status = 202, description = "Marked for publishing again (`requeued` 1), or not published yet (0).", body = crate::http::api_types::ReplayAccepted),
        (status = 400, description = "`malformed`: not a UUID.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 404, description = "`not_found`: no such event.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn replay_event(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad_request("malformed", "the event id must be a UUID"));
    }
    let Some(requeued) = state.store.replay_event(&id).await? else {
        return Err(ApiError::not_found(format!("event {id} is not stored")));
    };
    if requeued {
        state.outbox_wake.notify_one();
    }
    tracing::info!(token = %token_of(&req), event_id = %id, requeued, "event replay requested");
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "requeued": u8::from(requeued) })))
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
