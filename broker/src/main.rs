//! `tabmq`: the broker binary.

use std::process::ExitCode;

use clap::Parser;
use tabmq_broker::{backup, cli, passwd, server, storage_tools, store};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    quiet_verification_panics();
    match &cli.command {
        Some(cli::Command::Passwd(args)) => {
            return match passwd::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("tabmq passwd: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(cli::Command::Check(args)) => {
            return match storage_tools::check(args) {
                Ok(report) => {
                    print!("{}", report.text);
                    if report.intact {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("tabmq check: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(cli::Command::Recover(args)) => {
            return match storage_tools::recover(args) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("tabmq recover: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(cli::Command::Backup(args)) => {
            return match backup::run(args) {
                Ok(report) => {
                    println!("backed up into {report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("tabmq backup: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
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

/// A damaged database file can make the storage engine panic while it is verified on a
/// copy; that panic is reported as damage, so its own message is not printed.
fn quiet_verification_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(store::VERIFY_THREAD) {
            default_hook(info);
        }
    }));
}
