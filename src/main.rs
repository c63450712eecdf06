//! `pgw-relay`: run the service (no sub-command), apply migrations, or check the configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgw_relay::config::{self, Sources};
use pgw_relay::startup::{shutdown_signal, Application};
use pgw_relay::store::Store;
use pgw_relay::telemetry;

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
    /// Validate the configuration and print every effective key with secrets redacted.
    CheckConfig {
        /// Also check that the database, the broker and the gateway answer (exit 1 if one does not).
        #[arg(long)]
        connect: bool,
    },
}

/// `check-config --connect`: one line per dependency on stderr; exit 1 if any is unreachable.
fn check_connections(config: &config::Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgw-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(pgw_relay::reachability::check_all(config));
    let mut ok = true;
    for check in checks {
        match check.error {
            None => eprintln!("pgw-relay: {} reachable ({})", check.name, check.target),
            Some(e) => {
                ok = false;
                eprintln!("pgw-relay: {} NOT reachable ({}): {e}", check.name, check.target);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
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
    if let Some(Command::CheckConfig { connect }) = cli.command {
        let text = serde_json::to_string_pretty(&config::redacted(&config)).unwrap_or_default();
        println!("{text}");
        eprintln!("pgw-relay: configuration is valid");
        return if connect { check_connections(&config) } else { ExitCode::SUCCESS };
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
