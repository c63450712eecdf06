//! The two HTTP listeners: public (2C2P-facing `/2c2p/*` only) and internal (health, metrics and
//! the `/v1` API behind bearer tokens).

pub mod access_log;
pub mod api_types;
pub mod auth;
pub mod body;
pub mod error;
pub mod frontend_return;
pub mod health;
pub mod invoice_view;
pub mod invoices;
pub mod notification;
pub mod openapi;
pub mod operator;
pub mod payment_tokens;
pub mod quarantine;
pub mod request;
pub mod request_deadline;
pub mod request_metrics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::gateway::GatewayClient;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::store::{Store, Timing};

/// Reports whether the broker connection is up (for `/readyz`).
pub type BrokerStatus = Arc<dyn Fn() -> bool + Send + Sync>;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    /// Woken after each commit that wrote events, so the outbox relay publishes at once.
    pub outbox_wake: Arc<Notify>,
    pub broker_status: BrokerStatus,
    /// Set on SIGTERM: `/readyz` answers 503 while in-flight work finishes.
    pub draining: Arc<AtomicBool>,
    pub gateway: GatewayClient,
    pub reconciler: Reconciler,
    /// Per-merchant limit on browser returns for invoices the relay does not trust yet.
    pub frontend_limiter: Arc<governor::DefaultKeyedRateLimiter<crate::domain::ids::MerchantId>>,
    /// Browsers that may wait for an inquiry's result at once.
    pub waiting_browsers: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The scheduling parameters the store needs.
    pub fn timing(&self) -> Timing {
        Timing::from(&self.config.settings.reconcile)
    }

    /// Whether the service is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Routes of the public listener.
pub fn public_routes(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    cfg.route("/2c2p/backend-notification", web::post().to(notification::backend_notification))
        .route("/2c2p/frontend-return", web::get().to(frontend_return::frontend_return))
        .route("/2c2p/frontend-return", web::post().to(frontend_return::frontend_return));
}

/// Routes of the internal listener.
pub fn internal_routes(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    cfg.app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/openapi.json", web::get().to(openapi::serve))
        .service(
            web::scope("/v1")
                .wrap(actix_web::middleware::from_fn(auth::require_bearer))
                .route("/payment-tokens", web::post().to(payment_tokens::create_payment_token))
                .route("/invoices", web::post().to(invoices::register_invoice))
                .route("/invoices", web::get().to(operator::list_invoices))
                .route("/events", web::get().to(operator::list_events))
                .route("/events/{event_id}/replay", web::post().to(operator::replay_event))
                .route("/invoices/{merchant_id}/{invoice_no}", web::get().to(invoice_view::get_invoice))
                .route("/invoices/{merchant_id}/{invoice_no}/history", web::get().to(invoice_view::get_history))
                .route("/invoices/{merchant_id}/{invoice_no}/reconcile", web::post().to(invoices::reconcile_now))
                .route("/events/replay", web::post().to(operator::replay_events))
                .route("/quarantine", web::get().to(quarantine::list))
                .route("/quarantine/{id}/release", web::post().to(quarantine::release)),
        );
}

/// A path segment that does not fit its handler's parameter (an id out of range) names nothing that
/// exists: the usual JSON `404 not_found`.
fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    error::ApiError::not_found(format!("no such resource: {err}")).into()
}

/// A query string that does not fit its handler's parameters is the usual JSON `400 malformed`.
fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    error::ApiError::bad_request("malformed", format!("the query is not valid: {err}")).into()
}
