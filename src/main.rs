//! The `omnistream` command line.

mod cli;
mod commands;
mod config;
mod error;
mod output;
mod workload;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::{CliError, Result};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global.log_level);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error::render(&e));
            e.exit_code()
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<()> {
    let mut config =
        Config::load(cli.global.config.as_deref()).map_err(|e| CliError::Config(e.to_string()))?;
    if let Some(dir) = cli.global.data_dir {
        config.data_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::io("starting the async runtime"))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Generate(args) => commands::generate::run(&config, args).await,
            Command::Ingest(args) => commands::ingest::run(&config, args).await,
            Command::Jobs(cmd) => commands::jobs::run(&config, cmd).await,
            Command::Backfill(args) => commands::jobs::backfill(&config, args).await,
            Command::Models(args) => commands::analytics::models(&config, args).await,
            Command::Nodes(args) => commands::analytics::nodes(&config, args).await,
            Command::Sql(args) => commands::sql::run(&config, args).await,
            Command::Lake(cmd) => commands::lake::run(&config, cmd).await,
            Command::Topics(args) => commands::topics::run(&config, args).await,
            Command::Simulate(args) => commands::simulate::run(&config, args).await,
            Command::Bench(cmd) => commands::bench::run(&config, cmd).await,
        }
    })
}
