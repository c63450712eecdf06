//! pgw-relay: verifies 2C2P PGW v4.3 notifications, stores them durably, publishes payment events
//! to RabbitMQ through a transactional outbox and reconciles invoices through Payment Inquiry.
//!
//! Layout: [`protocol`] (2C2P wire format) → [`domain`] (money, state machine, the plan of one
//! observation, events) → [`store`] (SQLite / PostgreSQL) → [`broker`] (outbox relay to RabbitMQ);
//! [`http`] serves the public and internal listeners; [`reconcile`] settles invoices through
//! [`gateway`]; [`retention`] prunes old settled invoices; [`clock`] is the one clock every layer
//! reads and [`replica`] names this process in leases; `sim` (cargo feature `sim`, on by default)
//! is pgw-sim, the gateway simulator. [`healthcheck`], [`reachability`] and [`fuzz_targets`] serve
//! sub-commands and the fuzzers.

pub mod broker;
pub mod clock;
pub mod config;
pub mod domain;
pub mod fuzz_targets;
pub mod gateway;
pub mod healthcheck;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod reachability;
pub mod reconcile;
pub mod replica;
pub mod retention;
#[cfg(feature = "sim")]
pub mod sim;
pub mod startup;
pub mod store;
pub mod telemetry;
