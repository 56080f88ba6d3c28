//! `cargo xtask demo`: builds the npm package into `www/pkg`, then runs the broker
//! serving the demo page, with its data in `target/demo-data`, until Ctrl-C.

use crate::cmd::{self, TaskError};
use crate::package;

/// Where the demo listens.
const ADDRESS: &str = "127.0.0.1:8080";

/// Builds and serves the demo.
pub(crate) fn run() -> Result<(), TaskError> {
    package::build()?;
    cmd::run(&mut cmd::command(
        "cargo",
        &["build", "--package", "tabmq-broker"],
    ))?;
    let root = cmd::workspace_root();
    let data = root.join("target/demo-data");
    eprintln!(
        "\n==> demo page: http://{ADDRESS}/  (MQTT over WebSocket at ws://{ADDRESS}/mqtt, TCP on 127.0.0.1:1883)"
    );
    eprintln!("    open it in two tabs, then in a second browser; stop with Ctrl-C\n");
    let broker = root.join("target/debug/tabmq");
    cmd::run(&mut cmd::command(
        &broker.to_string_lossy(),
        &[
            "--ws",
            ADDRESS,
            "--www",
            &root.join("www").to_string_lossy(),
            "--data-dir",
            &data.to_string_lossy(),
        ],
    ))
}
