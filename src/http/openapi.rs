//! The OpenAPI 3.1 document of both listeners, generated from the handlers' annotations and the
//! types in [`crate::http::api_types`]. Served at `GET /openapi.json` on the internal listener and
//! committed as `docs/openapi.json` (regenerate with `cargo run -- openapi > docs/openapi.json`; a
//! test fails when they differ).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use crate::http::api_types::*;

/// Where each listener is by default (`server.public_addr`, `server.internal_addr`).
const PUBLIC_SERVER: &str = "http://localhost:8080";
const INTERNAL_SERVER: &str = "http://localhost:9090";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pgw-relay",
        description = "The 2C2P PGW v4.3 relay. Two listeners: the public one (tag `public`, default \
                       port 8080) serves only what 2C2P and the customer's browser call; the internal one \
                       (tag `internal`, default port 9090) serves health, metrics, this document and the \
                       `/v1` API, which needs a bearer token. Every caller-caused error is \
                       `{\"error\", \"message\"}` (docs/http-api.md). Payment events go to RabbitMQ and \
                       are described in docs/asyncapi.yaml."
    ),
    paths(
        crate::http::notification::backend_notification,
        frontend_return_get,
        frontend_return_post,
        crate::http::health::healthz,
        crate::http::health::readyz,
        crate::http::health::metrics,
        serve,
        crate::http::payment_tokens::create_payment_token,
        crate::http::invoices::register_invoice,
        crate::http::invoice_view::get_invoice,
        crate::http::invoice_view::get_history,
        crate::http::invoices::reconcile_now,
        crate::http::operator::replay_events,
        crate::http::quarantine::list,
        crate::http::quarantine::release,
        crate::http::operator::list_invoices,
        crate::http::operator::list_events,
        crate::http::operator::replay_event,
    ),
    components(schemas(ErrorBody, MoneyBody, StatusBody)),
    modifiers(&Listeners),
    tags(
        (name = "public", description = "The public listener (`server.public_addr`): 2C2P and browsers."),
        (name = "internal", description = "The internal listener (`server.internal_addr`): operators and the shop backend."),
    )
)]
struct ApiDoc;

/// Adds the bearer scheme and the listener each path is served on.
struct Listeners;

impl Modify for Listeners {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `internal_api.tokens`."))
                    .build(),
            ),
        );
        openapi.servers = Some(vec![
            Server::builder().url(PUBLIC_SERVER).description(Some("public listener")).build(),
            Server::builder().url(INTERNAL_SERVER).description(Some("internal listener")).build(),
        ]);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let (url, what) = if path.starts_with("/2c2p/") {
                (PUBLIC_SERVER, "public listener")
            } else {
                (INTERNAL_SERVER, "internal listener")
            };
            set_server(item, url, what);
        }
    }
}

fn set_server(item: &mut PathItem, url: &str, what: &str) {
    item.servers = Some(vec![Server::builder().url(url).description(Some(what)).build()]);
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline, exactly as committed in `docs/openapi.json`.
pub fn to_json() -> String {
    let mut text = document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /openapi.json` (internal listener, no authentication).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "internal",
    responses((status = 200, description = "This OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
pub async fn serve() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    HttpResponse::Ok().content_type("application/json").body(JSON.get_or_init(to_json).clone())
}

// `/2c2p/frontend-return` is one handler for two methods; each method is described here.

/// The customer's browser coming back with `paymentResponse` in the query.
///
/// Unsigned, so never proof of payment: recorded, and the browser is sent to the merchant's
/// result page with the status pgw-relay trusts (docs/http-api.md).
#[utoipa::path(
    get,
    path = "/2c2p/frontend-return",
    tag = "public",
    params(
        ("paymentResponse" = String, Query, description = "Base64 of 2C2P's JSON {invoiceNo, channelCode, respCode, respDesc}."),
        ("merchantID" = Option<String>, Query, description = "The merchant; else the only configured one, else the one that knows the invoice."),
    ),
    responses(
        (status = 303, description = "To the merchant's result page with `invoiceNo` and the trusted `status`.",
            headers(("Location" = String, description = "`<result_url>?invoiceNo=…&status=…`"))),
        (status = 200, description = "A page with the status, when the merchant has no `result_url`.", content_type = "text/html", body = String),
        (status = 400, description = "`paymentResponse` missing or unreadable, or the merchant cannot be told.", content_type = "text/html", body = String),
    )
)]
#[allow(dead_code)]
fn frontend_return_get() {}

/// The customer's browser coming back with the `paymentResponse` form 2C2P's page posts.
///
/// Unsigned, so never proof of payment: recorded, and the browser is sent to the merchant's
/// result page with the status pgw-relay trusts (docs/http-api.md).
#[utoipa::path(
    post,
    path = "/2c2p/frontend-return",
    tag = "public",
    params(
        ("merchantID" = Option<String>, Query, description = "The merchant; else the only configured one, else the one that knows the invoice."),
    ),
    request_body(content = FrontendReturnForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the merchant's result page with `invoiceNo` and the trusted `status`.",
            headers(("Location" = String, description = "`<result_url>?invoiceNo=…&status=…`"))),
        (status = 200, description = "A page with the status, when the merchant has no `result_url`.", content_type = "text/html", body = String),
        (status = 400, description = "`paymentResponse` missing or unreadable, or the merchant cannot be told.", content_type = "text/html", body = String),
        (status = 408, description = "The body did not arrive within `server.request_timeout`.", content_type = "text/html", body = String),
        (status = 413, description = "The body exceeds 16 KiB.", content_type = "text/html", body = String),
    )
)]
#[allow(dead_code)]
fn frontend_return_post() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_on_its_listener_with_the_bearer_scheme_on_v1() {
        let doc: serde_json::Value = serde_json::from_str(&to_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/2c2p/backend-notification", &["post"][..]),
            ("/2c2p/frontend-return", &["get", "post"]),
            ("/healthz", &["get"]),
            ("/readyz", &["get"]),
            ("/metrics", &["get"]),
            ("/openapi.json", &["get"]),
            ("/v1/payment-tokens", &["post"]),
            ("/v1/invoices", &["post", "get"]),
            ("/v1/events", &["get"]),
            ("/v1/events/{id}/replay", &["post"]),
            ("/v1/invoices/{merchantID}/{invoiceNo}", &["get"]),
            ("/v1/invoices/{merchantID}/{invoiceNo}/history", &["get"]),
            ("/v1/invoices/{merchantID}/{invoiceNo}/reconcile", &["post"]),
            ("/v1/events/replay", &["post"]),
            ("/v1/quarantine", &["get"]),
            ("/v1/quarantine/{id}/release", &["post"]),
        ] {
            for m in methods {
                let op = &paths[path][m];
                assert!(op.is_object(), "{m} {path} is described");
                let secured = op["security"][0].get("bearer").is_some();
                assert_eq!(secured, path.starts_with("/v1/"), "{m} {path}: bearer only on /v1");
                if path.starts_with("/v1/") {
                    assert!(op["responses"]["401"].is_object(), "{m} {path} documents 401");
                }
            }
            let server = paths[path]["servers"][0]["url"].as_str().unwrap();
            assert_eq!(server == PUBLIC_SERVER, path.starts_with("/2c2p/"), "{path} on its listener");
        }
        assert_eq!(paths.len(), 16, "no undocumented extra path");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }
}
