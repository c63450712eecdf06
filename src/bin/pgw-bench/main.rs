//! `pgw-bench`: measures pgw-relay on the machine it runs on. Build it in release mode:
//!
//! ```sh
//! cargo build --release --bin pgw-bench
//! target/release/pgw-bench notifications --store sqlite --count 50000 --concurrency 64
//! target/release/pgw-bench reconcile-tick --store sqlite --invoices 100000 --due 100
//! target/release/pgw-bench scrape --store postgres --invoices 1000000 --compare 10000
//! ```
//!
//! Every run makes its own database (a temporary SQLite file or a fresh PostgreSQL database) and
//! removes it afterwards. Everything listens on loopback; every load loop is bounded in count and
//! in time.

mod broker;
mod cpu;
mod db;
mod load;
mod notifications;
mod reconcile;
mod scrape;
mod stats;
mod store_writes;
mod traces;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load generator for pgw-relay: durable notification throughput and latency, and the cost of a
/// reconciliation tick.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the service in this process and fire signed backend notifications at it over HTTP
    /// (fixed concurrency, or a fixed arrival rate with --rate); also measures GET /healthz at the
    /// same concurrency as the ceiling of the HTTP stack, and with --broker the delay until each
    /// event reaches a RabbitMQ consumer.
    Notifications(notifications::Args),
    /// Time `claim_due_invoices` on a table of many future invoices and a few due ones, at two
    /// table sizes, to show the cost of a tick does not grow with the table.
    ReconcileTick(reconcile::Args),
    /// Record the same notifications through the store alone, without HTTP: does the store or
    /// the HTTP path limit throughput?
    StoreWrites(store_writes::Args),
    /// Time `GET /metrics` and `GET /readyz` with many invoices stored, at two table sizes, to
    /// show that a scrape's cost does not grow with the tables.
    Scrape(scrape::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().thread_name(cpu::RELAY_THREAD_NAME).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("pgw-bench: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Notifications(args) => notifications::run(args).await,
            Command::ReconcileTick(args) => reconcile::run(args).await,
            Command::StoreWrites(args) => store_writes::run(args).await,
            Command::Scrape(args) => scrape::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgw-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
