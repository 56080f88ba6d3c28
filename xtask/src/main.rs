//! `cargo xtask <task>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `cargo xtask test`: every check CI runs, installing what it needs first.
//! - `cargo xtask demo`: builds everything and starts the broker serving the demo page.
//! - `cargo xtask bench`: the benchmarks, side by side with Mosquitto and MQTT.js.
//! - `cargo xtask cluster`: a local cluster (three NATS servers, three broker nodes).

mod bench;
mod cluster;
mod cmd;
mod demo;
mod package;
mod setup;
mod test;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <test|demo|cluster|package|bench [suite options]>

  test     format, lint, unit, integration, browser and interop tests, benchmark smoke run
  demo     build the browser package and run the broker serving the demo page
  cluster  run three NATS servers with JetStream and three broker nodes, each serving the demo
  package  build the npm package (wasm-client/npm, www/pkg, target/tabmq-*.tgz)
  bench    benchmarks against Mosquitto, a bare WebSocket relay and MQTT.js (release builds);
           options go to `tabmq-bench suite`, e.g. --repeat 5 or --only fan-in";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(),
        Some("demo") => demo::run(),
        Some("cluster") => cluster::run(),
        Some("package") => package::build().map(|_| ()),
        Some("bench") => bench::run(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown task {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}
