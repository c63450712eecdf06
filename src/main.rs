//! `pgw-relay`: run the service (no sub-command), apply migrations, check the configuration, or
//! check that the local instance is healthy.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgw_relay::config::{self, Sources, TelemetrySettings};
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
    /// Validate the configuration and print every effective key with secrets redacted.
    CheckConfig {
        /// Also check that the database, the broker and the gateway answer (exit 1 if one does not).
        #[arg(long)]
        connect: bool,
    },
    /// Print the OpenAPI 3.1 document of both listeners (as committed in docs/openapi.json).
    Openapi,
    /// Exit 0 when the local instance answers `GET /healthz` on its internal listener (for container
    /// health checks), 1 otherwise.
    Healthcheck {
        /// Ask this address instead of the configured `server.internal_addr`.
        #[arg(long, value_name = "ADDR")]
        addr: Option<std::net::SocketAddr>,
        /// Give up after this long.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
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

/// `prune --older-than`: an age of at least an hour.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration such as 90d ({e})"))?;
    if d < config::MIN_RETENTION {
        return Err("must be at least 1h".to_string());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", pgw_relay::http::openapi::to_json());
        return ExitCode::SUCCESS;
    }
    let config = match config::load(&Sources::from_environment(cli.config.clone())) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgw-relay: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Healthcheck { addr, timeout }) = cli.command {
        let target = match addr {
            Some(a) => a,
            None => match config.settings.server.internal_addr.parse() {
                Ok(bind) => pgw_relay::healthcheck::local_target(bind),
                Err(_) => return ExitCode::from(2),
            },
        };
        return match pgw_relay::healthcheck::check(target, timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pgw-relay: unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::CheckConfig { connect }) = cli.command {
        let text = serde_json::to_string_pretty(&config::redacted(&config)).unwrap_or_default();
        println!("{text}");
        eprintln!("pgw-relay: configuration is valid");
        return if connect { check_connections(&config) } else { ExitCode::SUCCESS };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgw-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let traces = if matches!(cli.command, None | Some(Command::Serve)) {
        config.settings.telemetry.clone()
    } else {
        // One-shot commands log, but export no traces.
        TelemetrySettings::default()
    };
    let exporter = match telemetry::init_with_traces(&config.settings.log, &traces, runtime.handle()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pgw-relay: {e}");
            return ExitCode::from(2);
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
    // The runtime still runs: the last spans are sent on it.
    exporter.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "pgw-relay failed");
            eprintln!("pgw-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
