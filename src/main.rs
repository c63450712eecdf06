//! `pgw-relay`: run the service (no sub-command), apply migrations, or check the configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgw_relay::config::{self, Sources};
use pgw_relay::startup::{shutdown_signal, Application};
use pgw_relay::store::Store;
use pgw_relay::{retention, telemetry};

/// The 2C2P PGW relay: verified notifications in, payment events out.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Extra configuration file (repeatable; later wins). Also `PGW_RELAY_CONFIG`.
    #[arg(long = "config", global = true)]
    config: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Delete settled invoices (with their history and events) unchanged for longer than
    /// `--older-than`; never pending ones, ones under review or with unpublished events.
    Prune {
        /// Age of the last change, e.g. 90d (at least 1h).
        #[arg(long, value_parser = parse_age)]
        older_than: std::time::Duration,
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Invoices deleted per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
    },
}

fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration such as 90d ({e})"))?;
    if d < config::MIN_RETENTION {
        return Err("must be at least 1h".to_string());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&Sources::from_environment(cli.config.clone())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgw-relay: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        let text = serde_json::to_string_pretty(&config::redacted(&config)).unwrap_or_default();
        println!("{text}");
        eprintln!("pgw-relay: configuration is valid");
        return ExitCode::SUCCESS;
    }
    telemetry::init(&config.settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgw-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Prune { older_than, dry_run, batch }) => {
                let store = Store::connect(&config.settings.database).await?;
                if config.settings.database.migrate_on_start {
                    store.migrate().await?;
                }
                let stop = tokio_util::sync::CancellationToken::new();
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    on_signal.cancel();
                });
                let report = retention::prune(&store, older_than, batch, dry_run, None, &stop).await?;
                tracing::info!(dry_run, ?report, "prune finished");
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                Ok(())
            }
            Some(Command::Migrate) => {
                let store = Store::connect(&config.settings.database).await?;
                store.migrate().await?;
                tracing::info!(store = store.backend(), "migrations applied");
                Ok(())
            }
            _ => {
                let app = Application::build(config).await?;
                let token = app.shutdown_token();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    token.cancel();
                });
                app.run_until_stopped().await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "pgw-relay failed");
            eprintln!("pgw-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
