//! `cargo xtask test`: every check, in the order that fails fastest.

use crate::cmd::{self, TaskError};
use crate::setup;

/// Crates that must never reach the protocol core: it is sans-io.
const FORBIDDEN_IN_PROTOCOL: &[&str] = &["tokio", "mio", "async-std", "socket2"];

/// Runs every check.
pub(crate) fn run() -> Result<(), TaskError> {
    setup::wasm_target()?;
    setup::mosquitto_clients()?;
    let python = setup::python_env()?;
    setup::npm_packages("tests/interop/node")?;
    setup::npm_packages("tests/browser")?;
    setup::chromium()?;

    cmd::run(&mut cmd::command("cargo", &["fmt", "--all", "--", "--check"]))?;
    cmd::run(&mut cmd::command(
        "cargo",
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    ))?;
    cmd::run(&mut cmd::command("cargo", &["test", "--workspace"]))?;
    protocol_builds_for_wasm_without_io()?;
    let (_, sizes) = crate::package::build()?;
    crate::package::check_budget(&sizes)?;
    interop(&python)?;
    browser(&python)?;
    crate::bench::smoke()?;
    eprintln!("\nxtask: all checks passed");
    Ok(())
}

/// The protocol crate builds for wasm32 and pulls in no I/O runtime.
fn protocol_builds_for_wasm_without_io() -> Result<(), TaskError> {
    let wasm = [
        "--package",
        "tabmq-protocol",
        "--target",
        "wasm32-unknown-unknown",
    ];
    cmd::run(&mut cmd::command("cargo", &[&["build"][..], &wasm].concat()))?;
    let tree = cmd::output(&mut cmd::command(
        "cargo",
        &[&["tree", "--edges", "normal", "--prefix", "none"][..], &wasm].concat(),
    ))?;
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN_IN_PROTOCOL.contains(name))
        .collect();
    if !found.is_empty() {
        return Err(TaskError::Check(format!(
            "tabmq-protocol depends on I/O crates: {found:?}"
        )));
    }
    eprintln!("==> tabmq-protocol builds for wasm32 with no I/O crates in its tree");
    Ok(())
}

/// Third-party clients against the real broker binary: paho-mqtt, mosquitto clients, MQTT.js.
fn interop(python: &std::path::Path) -> Result<(), TaskError> {
    cmd::run(&mut cmd::command(
        "cargo",
        &["build", "--package", "tabmq-broker"],
    ))?;
    let broker = cmd::workspace_root().join("target/debug/tabmq");
    let mut pytest = cmd::command(
        &python.to_string_lossy(),
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
    );
    pytest
        .current_dir(cmd::workspace_root().join("tests/interop/python"))
        .env("TABMQ_BIN", &broker);
    cmd::run(&mut pytest)?;
    let mut node = cmd::command("node", &["--test"]);
    node.current_dir(cmd::workspace_root().join("tests/interop/node"))
        .env("TABMQ_BIN", &broker);
    cmd::run(&mut node)
}

/// The npm package in headless Chromium against the real broker (and a cluster of them,
/// with the NATS server installed beside `python`).
fn browser(python: &std::path::Path) -> Result<(), TaskError> {
    let broker = cmd::workspace_root().join("target/debug/tabmq");
    let mut node = cmd::command("node", &["--test", "--test-concurrency=1"]);
    node.current_dir(cmd::workspace_root().join("tests/browser"))
        .env("TABMQ_BIN", &broker)
        .env("NATS_SERVER", python.with_file_name("nats-server"));
    cmd::run(&mut node)
}
