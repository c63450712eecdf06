//! Builds the application (store, metrics, listeners, background tasks) and runs it until a
//! shutdown signal, then drains: readiness off, listeners stop accepting, in-flight requests
//! finish, background tasks flush within `server.shutdown_timeout`.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use tokio::task::JoinHandle;

use crate::broker::{Broker, BrokerHandle};
use crate::config::Config;
use crate::gateway::GatewayClient;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::store::Store;

/// A built, bound, not yet running application.
pub struct Application {
    public_addr: SocketAddr,
    internal_addr: SocketAddr,
    public: Server,
    internal: Server,
    state: AppState,
    shutdown: CancellationToken,
    background: Vec<JoinHandle<()>>,
    broker: BrokerHandle,
    broker_shutdown: CancellationToken,
}

impl Application {
    /// Connects the store (running migrations when configured), binds both listeners and starts
    /// the background tasks. Port 0 binds a free port (tests).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let settings = &config.settings;
        let store = Store::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            store.migrate().await?;
        }
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let gateway = GatewayClient::new(&settings.gateway.base_url, settings.gateway.timeout, metrics.clone())?;
        let reconciler = Reconciler::new(store.clone(), gateway.clone(), config.clone(), metrics.clone());
        let fr = &settings.frontend_return;
        let quota = Quota::per_second(NonZeroU32::new(fr.inquiries_per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(fr.burst).unwrap_or(NonZeroU32::MIN));
        let outbox_wake = Arc::new(Notify::new());
        // The relay outlives the listeners: it stops after them, flushing what they accepted.
        let broker_shutdown = CancellationToken::new();
        let broker = Broker::spawn(
            settings.broker.clone(),
            store.clone(),
            metrics.clone(),
            outbox_wake.clone(),
            broker_shutdown.clone(),
            settings.server.shutdown_timeout,
        );
        let broker_probe = broker.clone();
        let state = AppState {
            config: config.clone(),
            store,
            metrics,
            outbox_wake,
            broker_status: Arc::new(move || broker_probe.is_connected()),
            draining: Arc::new(AtomicBool::new(false)),
            gateway,
            reconciler: reconciler.clone(),
            frontend_limiter: Arc::new(RateLimiter::keyed(quota)),
            waiting_browsers: Arc::new(tokio::sync::Semaphore::new(fr.max_waiting)),
        };
        let mut background = Vec::new();
        if settings.reconcile.enabled {
            background.push(tokio::spawn(reconciler.run(shutdown.child_token())));
        }
        if settings.retention.enabled {
            let (store, metrics) = (state.store.clone(), state.metrics.clone());
            let task = crate::retention::run(store, settings.retention.clone(), metrics, shutdown.child_token());
            background.push(tokio::spawn(task));
        }

        let public_listener = bind("server.public_addr", &settings.server.public_addr)?;
        let internal_listener = bind("server.internal_addr", &settings.server.internal_addr)?;
        let public_addr = public_listener.local_addr()?;
        let internal_addr = internal_listener.local_addr()?;
        let grace = settings.server.shutdown_timeout.as_secs().max(1);
        let request_timeout = settings.server.request_timeout;
        let public_workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // actix counts connections per worker.
        let per_worker = |workers: usize| settings.server.max_connections.div_ceil(workers).max(1);

        let data = web::Data::new(state.clone());
        let public_data = data.clone();
        let public = HttpServer::new(move || {
            App::new()
                .app_data(public_data.clone())
                .wrap(middleware::from_fn(http::request_deadline::enforce))
                .wrap(middleware::from_fn(http::request_metrics::track))
                .wrap(tracing_actix_web::TracingLogger::<http::access_log::AccessLog>::new())
                .configure(http::public_routes)
        })
        .on_connect(http::request_deadline::on_connect(request_timeout))
        .client_request_timeout(request_timeout)
        .workers(public_workers)
        .max_connections(per_worker(public_workers))
        .listen(public_listener)?
        .disable_signals()
        .shutdown_timeout(grace)
        .run();
        let internal_data = data.clone();
        let internal = HttpServer::new(move || {
            App::new()
                .app_data(internal_data.clone())
                .wrap(middleware::from_fn(http::request_deadline::enforce))
                .wrap(middleware::from_fn(http::request_metrics::track))
                .wrap(tracing_actix_web::TracingLogger::<http::access_log::AccessLog>::new())
                .configure(http::internal_routes)
        })
        .on_connect(http::request_deadline::on_connect(request_timeout))
        .client_request_timeout(request_timeout)
        .max_connections(per_worker(1))
        .listen(internal_listener)?
        .disable_signals()
        .workers(1)
        .shutdown_timeout(grace)
        .run();

        tracing::info!(%public_addr, %internal_addr, store = state.store.backend(), merchants = config.merchants.len(), "pgw-relay listening");
        if config.merchants.is_empty() {
            tracing::warn!("no merchants are configured: every backend notification will be rejected");
        }
        Ok(Application {
            public_addr,
            internal_addr,
            public,
            internal,
            state,
            shutdown,
            background,
            broker,
            broker_shutdown,
        })
    }

    /// The bound public address.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The bound internal address.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// Cancelling this token shuts the application down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The shared state (tests inspect metrics through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { public, internal, state, shutdown, background, broker, broker_shutdown, .. } = self;
        let public_handle = public.handle();
        let internal_handle = internal.handle();
        let public_task = tokio::spawn(public);
        let internal_task = tokio::spawn(internal);

        shutdown.cancelled().await;
        // One budget for everything from here: `server.shutdown_timeout`.
        let budget = ShutdownBudget::start(&state.config.settings.server);
        // Listeners and the reconciler stop together; the outbox flush comes last and gets the rest.
        let listeners = async {
            drain(&state, &public_handle, &internal_handle, &budget).await;
            let _ = public_task.await;
            let _ = internal_task.await;
        };
        let reconciler = async {
            for mut task in background {
                if tokio::time::timeout_at(budget.work_until(), &mut task).await.is_err() {
                    task.abort();
                    tracing::warn!("in-flight inquiries did not finish within the shutdown budget");
                }
            }
            // Whatever the tick did not finish is given back at once rather than at lease expiry.
            state.reconciler.release_leases().await;
        };
        tokio::join!(listeners, reconciler);
        broker.flush_by(budget.deadline.into_std());
        broker_shutdown.cancel();
        let left = budget.deadline.saturating_duration_since(tokio::time::Instant::now());
        if tokio::time::timeout(left + CLOSE_MARGIN, broker.stopped()).await.is_err() {
            tracing::warn!("the outbox relay did not stop in time; what it did not publish stays in the outbox");
        }
        tracing::info!(elapsed = ?budget.started.elapsed(), "pgw-relay stopped");
        Ok(())
    }
}

/// What closing the broker connection may take after the flush deadline.
const CLOSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// The one shutdown deadline: `server.shutdown_timeout` from the signal, `drain_delay` included.
/// Requests and inquiries in flight get until `work_until` (the deadline less a reserve for the
/// outbox flush); the flush gets until the deadline.
struct ShutdownBudget {
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
    flush_reserve: std::time::Duration,
}

impl ShutdownBudget {
    fn start(settings: &crate::config::ServerSettings) -> ShutdownBudget {
        let started = tokio::time::Instant::now();
        let total = settings.shutdown_timeout;
        // A quarter of the budget, at most 5 s, stays for the final outbox flush.
        let flush_reserve = (total / 4).min(std::time::Duration::from_secs(5));
        ShutdownBudget { started, deadline: started + total, flush_reserve }
    }

    fn work_until(&self) -> tokio::time::Instant {
        self.deadline - self.flush_reserve
    }
}

async fn drain(state: &AppState, public: &ServerHandle, internal: &ServerHandle, budget: &ShutdownBudget) {
    let settings = &state.config.settings.server;
    state.draining.store(true, Ordering::Relaxed);
    tracing::info!(drain_delay = ?settings.drain_delay, budget = ?settings.shutdown_timeout, "shutting down: readiness off");
    tokio::time::sleep_until((budget.started + settings.drain_delay).min(budget.work_until())).await;
    let graceful = async { tokio::join!(public.stop(true), internal.stop(true)) };
    if tokio::time::timeout_at(budget.work_until(), graceful).await.is_err() {
        tracing::warn!("requests still in flight at the end of the shutdown budget: closing them");
        tokio::join!(public.stop(false), internal.stop(false));
    }
}

fn bind(key: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {key} = {addr}: {e}"))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
