//! `tabmq`: the broker binary.

use std::process::ExitCode;

use clap::Parser;
use tabmq_broker::{cli, passwd, server};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(cli::Command::Passwd(args)) = &cli.command {
        return match passwd::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tabmq passwd: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match cli.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tabmq: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // One thread runs every connection and the router, as Mosquitto's loop does: packets
    // reach the router in the order the kernel reported their sockets ready, and no
    // message crosses threads on its way through. The store writes on a thread of its
    // own; password hashing runs on blocking threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tabmq: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tabmq: {error}");
            ExitCode::FAILURE
        }
    }
}
