//! `pgw-sim`: a local 2C2P PGW v4.3 simulator (see `docs/pgw-sim.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use pgw_relay::sim::{SimConfig, SimServer};

/// A local 2C2P PGW v4.3 simulator: Payment Token, Payment Inquiry and Transaction Status APIs, a
/// payment page, signed backend notifications and scenario controls under /control.
#[derive(Debug, Parser)]
#[command(name = "pgw-sim", version)]
struct Args {
    /// Configuration file (TOML); repeatable, later files win. Default: config/pgw-sim.toml.
    #[arg(long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8090 (overrides the configuration).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

fn load(args: &Args) -> anyhow::Result<SimConfig> {
    let files = if args.config.is_empty() { vec![PathBuf::from("config/pgw-sim.toml")] } else { args.config.clone() };
    let mut builder = config::Config::builder();
    for file in &files {
        builder =
            builder.add_source(config::File::from(file.as_path()).format(config::FileFormat::Toml).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("PGW_SIM").prefix_separator("__").separator("__").try_parsing(true),
    );
    if let Some(listen) = &args.listen {
        builder = builder.set_override("listen", listen.as_str())?;
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let config: SimConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .with_context(|| format!("reading the configuration ({})", names.join(", ")))?;
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = load(&args)?;
    let merchants: Vec<String> = config.merchants.iter().map(|m| m.id.clone()).collect();
    let server = SimServer::start(config).context("starting pgw-sim")?;
    tracing::info!(
        base_url = server.base_url(),
        public_url = server.public_url(),
        merchants = %merchants.join(","),
        "pgw-sim ready"
    );
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    server.stop().await;
    Ok(())
}
