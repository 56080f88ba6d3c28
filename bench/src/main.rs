//! The `tabmq-bench` command line (see the library for what each part does).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tabmq_protocol::QoS;

use tabmq_bench::case::{self, Scenario};
use tabmq_bench::error::BenchError;
use tabmq_bench::messaging::{Load, Shape};
use tabmq_bench::target::{Programs, Target};
use tabmq_bench::transport::Transport;
use tabmq_bench::{relay, security, suite};

#[derive(Parser)]
#[command(
    version,
    about = "Benchmark MQTT brokers side by side: tabmq, Mosquitto, a bare WebSocket relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ProgramArgs {
    /// The tabmq binary (use a release build for figures).
    #[arg(long, default_value = "target/release/tabmq")]
    tabmq: PathBuf,
    /// The mosquitto binary.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole suite and print a Markdown table of medians.
    Suite {
        #[command(flatten)]
        programs: ProgramArgs,
        /// Runs per case and broker (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Tiny sizes, one run: proves the suite works, measures nothing.
        #[arg(long)]
        smoke: bool,
        /// Brokers to compare (default: all whose programs exist).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<Target>,
        /// Only cases whose title contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one scenario against one broker and print what it measured.
    Run {
        #[command(flatten)]
        programs: ProgramArgs,
        /// The broker.
        #[arg(long, value_enum, default_value = "tabmq")]
        target: Target,
        /// The scenario.
        #[arg(long, value_enum, default_value = "fan-in")]
        scenario: ScenarioName,
        /// Publishers (fan-in), subscribers (fan-out), members per room (rooms), clients
        /// (storm) or connections (idle).
        #[arg(long, default_value_t = 10)]
        clients: u64,
        /// Rooms (rooms scenario).
        #[arg(long, default_value_t = 10)]
        rooms: u64,
        /// QoS 0, 1 or 2.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: u8,
        /// Payload bytes (16 to 65536).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(16..=65_536))]
        payload: u64,
        /// Messages published in total.
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        /// WebSocket or TCP.
        #[arg(long, value_enum, default_value = "ws")]
        transport: Transport,
        /// Clients with persistent sessions (their QoS 1/2 messages stored).
        #[arg(long)]
        persistent: bool,
    },
    /// The cost of security: a connection storm without credentials, with a password file
    /// and with JWTs; publishing without and with a 100-rule ACL.
    Security {
        #[command(flatten)]
        programs: ProgramArgs,
        /// Clients in the connection storm (a password check takes ~20 ms of one core by
        /// design: 1,000 at once would outlast the load generator's 20 s patience on 2 cores).
        #[arg(long, default_value_t = 200)]
        clients: u64,
        /// QoS 1 messages published.
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Runs per setup (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Also write the report to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The cost of cluster mode: one node embedded, one node on NATS, three nodes.
    Cluster {
        #[command(flatten)]
        programs: ProgramArgs,
        /// The nats-server binary.
        #[arg(long, default_value = "target/interop-venv/bin/nats-server")]
        nats_server: PathBuf,
        /// Messages per load.
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve the bare WebSocket relay.
    Relay {
        /// Listen address.
        #[arg(long)]
        addr: String,
    },
}

/// Scenario names of `run`.
#[derive(Clone, Copy, ValueEnum)]
enum ScenarioName {
    FanIn,
    FanOut,
    Rooms,
    Backlog,
    Storm,
    Idle,
}

fn programs(args: ProgramArgs) -> Programs {
    Programs {
        tabmq: args.tabmq,
        mosquitto: args.mosquitto,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Thousands of sockets: raise the open-file limit (inherited by the brokers started).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\ntabmq-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), BenchError> {
    match cli.command {
        Command::Relay { addr } => relay::serve(&addr).await,
        Command::Security {
            programs: args,
            clients,
            messages,
            repeat,
            out,
        } => {
            let report = security::run(&programs(args), clients, messages, repeat.max(1)).await?;
            println!("{report}");
            if let Some(out) = out {
                std::fs::write(&out, &report)
                    .map_err(|e| BenchError::Process(format!("cannot write {}: {e}", out.display())))?;
            }
            Ok(())
        }
        Command::Cluster {
            programs: args,
            nats_server,
            messages,
            out,
        } => {
            let table = tabmq_bench::cluster::run(&programs(args), &nats_server, messages).await?;
            println!("{table}");
            if let Some(out) = out {
                std::fs::write(&out, &table)
                    .map_err(|e| BenchError::Process(format!("cannot write {}: {e}", out.display())))?;
            }
            Ok(())
        }
        Command::Suite {
            programs: args,
            repeat,
            smoke,
            targets,
            only,
            out,
        } => {
            let programs = programs(args);
            let targets = if targets.is_empty() {
                [
                    Target::Tabmq,
                    Target::TabmqInterval,
                    Target::Mosquitto,
                    Target::Relay,
                ]
                .into_iter()
                .filter(|t| *t != Target::Mosquitto || programs.mosquitto.exists())
                .collect()
            } else {
                targets
            };
            if !programs.tabmq.exists() {
                return Err(BenchError::Process(format!(
                    "no tabmq binary at {}",
                    programs.tabmq.display()
                )));
            }
            let cases: Vec<_> = suite::cases(smoke)
                .into_iter()
                .filter(|c| only.as_ref().is_none_or(|text| c.title.contains(text.as_str())))
                .collect();
            let repeat = if smoke { 1 } else { repeat.max(1) };
            let (report, failed) = suite::run(&cases, &targets, repeat, &programs).await;
            println!("{report}");
            if let Some(out) = out {
                std::fs::write(&out, &report)
                    .map_err(|e| BenchError::Process(format!("cannot write {}: {e}", out.display())))?;
            }
            match failed {
                0 => Ok(()),
                // A smoke run proves that every scenario works on every broker.
                _ if smoke => Err(BenchError::Protocol(format!("{failed} run(s) failed"))),
                _ => {
                    eprintln!("tabmq-bench: {failed} run(s) failed; see the table");
                    Ok(())
                }
            }
        }
        Command::Run {
            programs: args,
            target,
            scenario,
            clients,
            rooms,
            qos,
            payload,
            messages,
            transport,
            persistent,
        } => {
            let load = Load {
                transport,
                qos: QoS::from_bits(qos).unwrap_or_default(),
                payload: payload as usize,
                messages,
                persistent,
            };
            let scenario = match scenario {
                ScenarioName::FanIn => Scenario::Messaging(Shape::FanIn { publishers: clients }, load),
                ScenarioName::FanOut => Scenario::Messaging(Shape::FanOut { subscribers: clients }, load),
                ScenarioName::Rooms => Scenario::Messaging(
                    Shape::Rooms {
                        rooms,
                        members: clients,
                    },
                    load,
                ),
                ScenarioName::Backlog => Scenario::Backlog {
                    transport,
                    messages,
                    payload: payload as usize,
                },
                ScenarioName::Storm => Scenario::Storm(transport, clients),
                ScenarioName::Idle => Scenario::Idle(transport, clients),
            };
            if !scenario.supports(target) {
                return Err(BenchError::Process(format!(
                    "{} cannot run this scenario",
                    target.name()
                )));
            }
            let sample = case::run(scenario, target, &programs(args)).await?;
            let latency = sample.latency.map_or(String::new(), |[p50, p99, p999]| {
                format!(", latency p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms")
            });
            let cut = if sample.complete {
                ""
            } else {
                " (cut at the time limit)"
            };
            println!(
                "{}: {} {}{cut}{latency}, broker CPU {:.2} s over {:.2} s, peak RSS {:.1} MiB",
                target.name(),
                case::figure(sample.rate),
                scenario.unit(),
                sample.cpu,
                sample.seconds,
                sample.peak_rss as f64 / (1 << 20) as f64
            );
            Ok(())
        }
    }
}
