//! Prometheus metrics (listed in the README), all prefixed `pgw_relay_`, in one registry owned by the
//! application. Labels never carry invoice numbers or secrets.

use crate::domain::observation::Source;
use crate::domain::state::AnomalyReason;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

const NS: &str = "pgw_relay";

/// Latency buckets from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the service exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `kind` = backend|frontend, `outcome` = accepted|duplicate|quarantined|bad_signature|unknown_merchant|malformed|too_large|store_unavailable|rate_limited.
    pub notifications_received: IntCounterVec,
    /// `type` = payment.*.
    pub events_published: IntCounterVec,
    /// `result` = ack|nack|returned|error|timeout.
    pub publish_confirms: IntCounterVec,
    pub publish_confirm_duration: Histogram,
    pub broker_connected: IntGauge,
    pub broker_reconnects: IntCounter,
    pub outbox_backlog: IntGauge,
    pub outbox_oldest_age_seconds: IntGauge,
    /// Unpublished events whose last attempt failed (returned, nacked, timed out).
    pub outbox_parked: IntGauge,
    /// Scrapes that served the previous store gauges because the store did not answer in time.
    pub store_gauge_errors: IntCounter,
    /// Rows deleted by retention, by `table` = invoices|history|events.
    pub retention_deleted: IntCounterVec,
    /// `result` = the code class of the answer, or request_error|transport_error.
    pub inquiries: IntCounterVec,
    pub inquiry_duration: Histogram,
    /// `api` = payment_token|payment_inquiry, `kind` = timeout|transport|http_status|unsigned_error|bad_signature|malformed.
    pub gateway_errors: IntCounterVec,
    pub reconcile_backlog: IntGauge,
    pub reconcile_oldest_pending_age_seconds: IntGauge,
    pub reconcile_unresolved: IntGauge,
    /// `status` = pending|succeeded|failed|cancelled|expired.
    pub invoices: IntGaugeVec,
    /// `reason` = conflict|amount_mismatch|currency_mismatch|needs_review|unprocessable.
    pub anomalies: IntCounterVec,
    /// Verified notifications put in quarantine because the store refused them; `kind` = backend.
    pub quarantined: IntCounterVec,
    /// `route`, `method`, `status`.
    pub http_request_duration: HistogramVec,
    /// How long browsers returning from the payment page waited before their redirect, by
    /// `outcome`: `final` (a final status in time), `not_final` (the inquiry answered without
    /// one), `timed_out`, `not_waited`.
    pub frontend_return_wait: HistogramVec,
}

impl Metrics {
    /// Creates and registers every metric (plus process metrics on Linux).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help).namespace(NS), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help).namespace(NS)).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str| {
            let h =
                Histogram::with_opts(HistogramOpts::new(name, help).namespace(NS).buckets(LATENCY_BUCKETS.to_vec()))
                    .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let m = Metrics {
            notifications_received: counter_vec(
                "notifications_received_total",
                "Notifications received from 2C2P (backend) or the browser (frontend), by outcome.",
                &["kind", "outcome"],
            ),
            events_published: counter_vec(
                "events_published_total",
                "Events confirmed by the broker, by type.",
                &["type"],
            ),
            publish_confirms: counter_vec(
                "publish_confirms_total",
                "Publisher confirm outcomes: ack, nack, returned (unroutable), error, timeout.",
                &["result"],
            ),
            publish_confirm_duration: histogram(
                "publish_confirm_duration_seconds",
                "Time from publish to broker confirm.",
            ),
            broker_connected: gauge("broker_connected", "1 while the broker connection and channel are open."),
            broker_reconnects: {
                let c = IntCounter::with_opts(
                    Opts::new("broker_reconnects_total", "Broker (re)connections established after a failure.")
                        .namespace(NS),
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            outbox_backlog: gauge("outbox_backlog", "Events stored but not yet confirmed by the broker."),
            outbox_oldest_age_seconds: gauge("outbox_oldest_age_seconds", "Age of the oldest unpublished event."),
            outbox_parked: gauge(
                "outbox_parked",
                "Unpublished events whose last publish attempt failed (returned, nacked, timed out).",
            ),
            store_gauge_errors: {
                let c = IntCounter::with_opts(
                    Opts::new(
                        "store_gauge_errors_total",
                        "Scrapes that could not read the store's gauges in time (previous values served).",
                    )
                    .namespace(NS),
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            retention_deleted: counter_vec(
                "retention_deleted_total",
                "Rows deleted by retention, by table.",
                &["table"],
            ),
            inquiries: counter_vec("inquiries_total", "Payment Inquiry calls, by result.", &["result"]),
            inquiry_duration: histogram("inquiry_duration_seconds", "Payment Inquiry round-trip time."),
            gateway_errors: counter_vec(
                "gateway_errors_total",
                "Failed calls to the gateway, by API and kind.",
                &["api", "kind"],
            ),
            reconcile_backlog: gauge("reconcile_backlog", "Invoices not final and due for an inquiry."),
            reconcile_oldest_pending_age_seconds: gauge(
                "reconcile_oldest_pending_age_seconds",
                "Age of the oldest invoice still pending and scheduled for reconciliation.",
            ),
            reconcile_unresolved: gauge(
                "reconcile_unresolved",
                "Invoices past reconcile.give_up_after that the gateway could not settle.",
            ),
            invoices: {
                let g = IntGaugeVec::new(Opts::new("invoices", "Invoices by state.").namespace(NS), &["status"])
                    .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            anomalies: counter_vec(
                "anomalies_total",
                "Anomalies recorded (conflicts, mismatches, review codes).",
                &["reason"],
            ),
            quarantined: counter_vec(
                "quarantined_total",
                "Verified notifications the store refused permanently, kept in quarantine.",
                &["kind"],
            ),
            http_request_duration: {
                let h = HistogramVec::new(
                    HistogramOpts::new("http_request_duration_seconds", "HTTP request duration by route pattern.")
                        .namespace(NS)
                        .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route", "method", "status"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            frontend_return_wait: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "frontend_return_wait_seconds",
                        "Time a returning browser waited for a trusted result before its redirect.",
                    )
                    .namespace(NS)
                    .buckets(vec![0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0]),
                    &["outcome"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            registry,
        };
        let build = IntGaugeVec::new(Opts::new("build_info", "Build information.").namespace(NS), &["version"])
            .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.registry.register(Box::new(build)).expect("unique metric");
        #[cfg(target_os = "linux")]
        {
            let _ = m.registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        }
        // Pre-create the label sets alerts rely on, so rates exist from the first scrape.
        for outcome in [
            "accepted",
            "duplicate",
            "bad_signature",
            "unknown_merchant",
            "malformed",
            "too_large",
            "store_unavailable",
            "quarantined",
        ] {
            m.notifications_received.with_label_values(&["backend", outcome]);
        }
        m.quarantined.with_label_values(&["backend"]);
        for result in ["ack", "nack", "returned", "error", "timeout"] {
            m.publish_confirms.with_label_values(&[result]);
        }
        for reason in ["conflict", "amount_mismatch", "currency_mismatch", "needs_review", "unprocessable"] {
            m.anomalies.with_label_values(&[reason]);
        }
        for ty in [
            "payment.pending",
            "payment.succeeded",
            "payment.failed",
            "payment.cancelled",
            "payment.expired",
            "payment.anomaly",
        ] {
            m.events_published.with_label_values(&[ty]);
        }
        for result in [
            "succeeded",
            "failed",
            "cancelled",
            "pending",
            "not_found",
            "indeterminate",
            "needs_review",
            "post_payment",
            "request_error",
            "transport_error",
        ] {
            m.inquiries.with_label_values(&[result]);
        }
        for api in ["payment_token", "payment_inquiry"] {
            for kind in ["timeout", "transport", "http_status", "unsigned_error", "bad_signature", "malformed"] {
                m.gateway_errors.with_label_values(&[api, kind]);
            }
        }
        for outcome in ["accepted", "malformed", "rate_limited", "unknown_merchant"] {
            m.notifications_received.with_label_values(&["frontend", outcome]);
        }
        for table in ["invoices", "history", "events"] {
            m.retention_deleted.with_label_values(&[table]);
        }
        for outcome in ["final", "not_final", "timed_out", "not_waited"] {
            m.frontend_return_wait.with_label_values(&[outcome]);
        }
        m
    }

    /// Counts a recorded anomaly and logs it at `error`: the one place both happen, whichever
    /// path (notification, inquiry, quarantine) recorded it.
    pub fn anomaly(&self, reason: AnomalyReason, merchant_id: &str, invoice_no: &str, source: Source) {
        self.anomalies.with_label_values(&[reason.as_str()]).inc();
        tracing::error!(merchant = %merchant_id, invoice = %invoice_no, reason = reason.as_str(), source = source.as_str(), "payment anomaly");
    }

    /// Counts a notification outcome.
    pub fn notification(&self, kind: &str, outcome: &str) {
        self.notifications_received.with_label_values(&[kind, outcome]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
