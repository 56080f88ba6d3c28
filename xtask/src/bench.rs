//! `cargo xtask bench`: the side-by-side benchmarks (release builds), and the smoke run
//! of the same suite that `cargo xtask test` includes so that it never rots.

use std::path::PathBuf;

use crate::cmd::{self, TaskError};
use crate::setup;

/// Where Debian installs the broker (`/usr/sbin` is not on every user's PATH).
fn mosquitto() -> PathBuf {
    cmd::output(&mut cmd::command("sh", &["-c", "command -v mosquitto"]))
        .map(|path| PathBuf::from(path.trim()))
        .unwrap_or_else(|_| PathBuf::from("/usr/sbin/mosquitto"))
}

/// Builds in release mode and runs the broker suite, then the browser clients' comparison.
/// `extra` is passed to `tabmq-bench suite` (e.g. `--repeat 5`, `--only fan-in`).
pub(crate) fn run(extra: &[String]) -> Result<(), TaskError> {
    if extra.iter().any(|arg| arg == "-h" || arg == "--help") {
        return help();
    }
    setup::mosquitto_broker()?;
    setup::wasm_target()?;
    setup::npm_packages("tests/browser")?;
    setup::chromium()?;
    cmd::run(&mut cmd::command(
        "cargo",
        &[
            "build",
            "--release",
            "--package",
            "tabmq-broker",
            "--package",
            "tabmq-bench",
        ],
    ))?;
    let root = cmd::workspace_root();
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)
        .map_err(|e| TaskError::Check(format!("cannot create target/bench: {e}")))?;
    let mut suite = cmd::command(
        &root.join("target/release/tabmq-bench").to_string_lossy(),
        &[
            "suite",
            "--tabmq",
            &root.join("target/release/tabmq").to_string_lossy(),
            "--mosquitto",
            &mosquitto().to_string_lossy(),
            "--out",
            &out.join("brokers.md").to_string_lossy(),
        ],
    );
    suite.args(extra);
    cmd::run(&mut suite)?;
    cmd::run(&mut cmd::command(
        &root.join("target/release/tabmq-bench").to_string_lossy(),
        &[
            "security",
            "--tabmq",
            &root.join("target/release/tabmq").to_string_lossy(),
            "--out",
            &out.join("security.md").to_string_lossy(),
        ],
    ))?;

    cmd::run(&mut cmd::command(
        &root.join("target/release/tabmq-bench").to_string_lossy(),
        &[
            "cluster",
            "--tabmq",
            &root.join("target/release/tabmq").to_string_lossy(),
            "--nats-server",
            &setup::python_env()?
                .with_file_name("nats-server")
                .to_string_lossy(),
            "--out",
            &out.join("cluster.md").to_string_lossy(),
        ],
    ))?;

    crate::package::build()?;
    let mut browser = cmd::command(
        "node",
        &["bench.mjs", "--out", &out.join("browser.md").to_string_lossy()],
    );
    browser
        .current_dir(root.join("tests/browser"))
        .env("TABMQ_BIN", root.join("target/release/tabmq"));
    cmd::run(&mut browser)?;
    eprintln!("==> results in target/bench/brokers.md, security.md, cluster.md and browser.md");
    Ok(())
}

/// Every scenario at a tiny size against every broker, and the browser comparison with a
/// few messages: proves the benchmarks still work; asserts nothing about speed.
pub(crate) fn smoke() -> Result<(), TaskError> {
    setup::mosquitto_broker()?;
    let root = cmd::workspace_root();
    let tabmq = root.join("target/debug/tabmq");
    let tabmq = tabmq.to_string_lossy();
    debug_bench(&[
        "suite",
        "--smoke",
        "--tabmq",
        &tabmq,
        "--mosquitto",
        &mosquitto().to_string_lossy(),
    ])?;
    debug_bench(&[
        "security",
        "--clients",
        "20",
        "--messages",
        "200",
        "--repeat",
        "1",
        "--tabmq",
        &tabmq,
    ])?;
    debug_bench(&[
        "cluster",
        "--messages",
        "500",
        "--tabmq",
        &tabmq,
        "--nats-server",
        &setup::python_env()?
            .with_file_name("nats-server")
            .to_string_lossy(),
    ])?;
    let mut browser = cmd::command("node", &["bench.mjs", "--messages", "50", "--repeat", "1"]);
    browser
        .current_dir(root.join("tests/browser"))
        .env("TABMQ_BIN", root.join("target/debug/tabmq"));
    cmd::run(&mut browser)
}

/// What `cargo xtask bench` does and the suite's options (`tabmq-bench suite --help`).
fn help() -> Result<(), TaskError> {
    println!(
        "usage: cargo xtask bench [suite options]\n\n\
         Builds tabmq and tabmq-bench in release mode, runs the broker suite against tabmq,\n\
         Mosquitto and a bare WebSocket relay (target/bench/brokers.md), the security costs\n\
         (target/bench/security.md), the cost of cluster mode (target/bench/cluster.md) and\n\
         the browser clients against MQTT.js in Chromium\n\
         (target/bench/browser.md). The suite's options:\n"
    );
    debug_bench(&["suite", "--help"])
}

/// `tabmq-bench ARGS`, debug build.
fn debug_bench(args: &[&str]) -> Result<(), TaskError> {
    cmd::run(&mut cmd::command(
        "cargo",
        &[&["run", "--package", "tabmq-bench", "--"][..], args].concat(),
    ))
}
