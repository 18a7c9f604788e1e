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
use omnistream_streams::io::IoContext;

/// mimalloc, for Rust and (below) for tree-sitter's C allocations: the allocation-heavy paths (a
/// syntax tree per generated file, JSON decoding, DataFusion) spent about a tenth of their CPU in
/// glibc malloc (docs/performance.md). DataFusion's own CLI ships with mimalloc for the same reason.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" fn mi_calloc(count: usize, size: usize) -> *mut std::ffi::c_void {
    match count.checked_mul(size) {
        // SAFETY: mimalloc's zeroing allocation; null when out of memory, as calloc.
        Some(bytes) => unsafe { libmimalloc_sys::mi_zalloc(bytes) },
        None => std::ptr::null_mut(),
    }
}

fn main() -> ExitCode {
    // SAFETY: first thing in the process, before any tree-sitter object exists, so nothing one
    // allocator allocated is ever freed by the other.
    unsafe {
        tree_sitter::set_allocator(
            Some(libmimalloc_sys::mi_malloc),
            Some(mi_calloc),
            Some(libmimalloc_sys::mi_realloc),
            Some(libmimalloc_sys::mi_free),
        );
    }
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
        .io_context(|| "starting the async runtime".to_string())?;
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
            Command::Patterns(cmd) => commands::patterns::run(&config, cmd).await,
            Command::Topics(args) => commands::topics::run(&config, args).await,
            Command::Simulate(args) => commands::simulate::run(&config, args).await,
            Command::Bench(cmd) => commands::bench::run(&config, cmd).await,
        }
    })
}
