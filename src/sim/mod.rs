//! pgw-sim: a local simulator of the 2C2P payment gateway (PGW v4.3) for development and tests.
//!
//! It speaks the gateway's side of the protocol on loopback: the Payment Token, Payment Inquiry and
//! Transaction Status APIs, a hosted payment page where a person or a test chooses the outcome,
//! the signed backend notification to `backendReturnUrl` and the browser return to
//! `frontendReturnUrl`. Scenario controls make it drop, delay, duplicate or reorder
//! notifications, answer inquiries `pending` for a while or fail with 503, sign with a wrong key.
//! Everything lives in memory. See `docs/pgw-sim.md` for the HTTP surface.
//!
//! In-process use (the server runs on its own thread and runtime, so this works from synchronous
//! code and from any Tokio runtime):
//!
//! ```no_run
//! use pgw_relay::sim::{Scenario, Scope, SimConfig, SimMerchant, SimServer};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let merchant = SimMerchant::new("JT01", "secret").with_card("28052010234224845229", "411111XXXXXX1111");
//! let sim = SimServer::start(SimConfig::ephemeral(vec![merchant]))?;
//! let gateway_base_url = sim.base_url(); // e.g. http://127.0.0.1:41234
//! sim.control().set_scenario(Scope::invoice("JT01", "INV1"), Scenario { duplicate: true, ..Scenario::default() });
//! // ... drive the code under test against `gateway_base_url` ...
//! sim.stop().await;
//! # Ok(()) }
//! ```

mod config;
mod control;
mod gateway;
mod ledger;
mod notify;
mod page;
mod payload;
mod scenario;
mod state;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};

pub use config::{SimCard, SimConfig, SimConfigError, SimMerchant};
pub use control::{PayError, SimControl};
pub use ledger::{Delivery, DeliveryAttempt, LedgerEntry, NotificationRecord, Outcome, PaymentRecord, SimAmount};
pub use page::PayReport;
pub use scenario::{Scenario, Scope, Spelling};

use state::SimState;

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A running simulator. Dropping it stops the server (without waiting); [`SimServer::stop`]
/// waits.
pub struct SimServer {
    addr: SocketAddr,
    base_url: String,
    state: Arc<SimState>,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Validates `config`, binds `config.listen` (port 0 picks a free port) and starts serving on
    /// a dedicated thread. Returns once the socket is bound, so requests can be sent right away.
    pub fn start(config: SimConfig) -> io::Result<SimServer> {
        config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let listener = TcpListener::bind(config.listen.as_str())?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let host = match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], a.port())),
            a => a,
        };
        let base_url = format!("http://{host}");
        let public_url =
            config.public_url.clone().unwrap_or_else(|| base_url.clone()).trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(config.notify_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("pgw-sim/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(io::Error::other)?;
        let workers = config.workers;
        let state = Arc::new(SimState::new(config, public_url, http));

        let (tx, rx) = std::sync::mpsc::channel::<io::Result<ServerHandle>>();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new().name("pgw-sim".to_string()).spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let _ = thread_state.spawner.set(tokio::runtime::Handle::current());
                let data = web::Data::from(thread_state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                        .route("/healthz", web::get().to(healthz))
                        .route("/demo/result", web::get().to(page::demo_result))
                        .service(
                            web::resource("/pay/{token:.*}")
                                .route(web::get().to(page::show))
                                .route(web::post().to(page::choose)),
                        )
                        .service(
                            web::scope("/control")
                                .route("/scenario", web::get().to(control::list_scenarios))
                                .route("/scenario", web::post().to(control::set_scenario))
                                .route("/pay", web::post().to(control::pay))
                                .route("/release", web::post().to(control::release))
                                .route("/reset", web::post().to(control::reset))
                                .route("/ledger", web::get().to(control::ledger_all))
                                .route("/ledger/{merchant}/{invoice}", web::get().to(control::ledger))
                                .route("/inquiries/{merchant}/{invoice}", web::get().to(control::inquiries)),
                        )
                        .default_service(web::to(gateway::dispatch))
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        let _ = tx.send(Ok(server.handle()));
                        if let Err(e) = server.await {
                            tracing::error!(error = %e, "pgw-sim server stopped with an error");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
        let handle = rx.recv().map_err(|_| io::Error::other("pgw-sim server thread ended before starting"))??;
        tracing::info!(%addr, "pgw-sim listening");
        Ok(SimServer { addr, base_url, state, handle: Some(handle), thread: Some(thread) })
    }

    /// `http://<bound address>` (an unspecified bind address is reported as loopback): point the
    /// gateway client's base URL here.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base of `webPaymentUrl`s (`public_url` or [`SimServer::base_url`]).
    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// `base_url()` joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// In-process access to scenarios, the ledger and counters.
    pub fn control(&self) -> SimControl {
        SimControl { state: self.state.clone() }
    }

    /// Stops accepting, lets in-flight requests finish (at most 1 s) and waits for the server
    /// thread. Background notifications still pending are dropped.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(true).await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent when `stop` is called; the returned future only waits.
            drop(handle.stop(false));
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}
