//! Installing what the tasks need on a fresh machine, or saying in one line how to.

use crate::cmd::{self, TaskError};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Makes sure rustup has the wasm32 target.
pub(crate) fn wasm_target() -> Result<(), TaskError> {
    if !cmd::exists("rustup") {
        return Err(TaskError::Missing {
            tool: "rustup",
            hint: "install Rust with rustup (https://rustup.rs)",
        });
    }
    let installed = cmd::output(&mut cmd::command("rustup", &["target", "list", "--installed"]))?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    cmd::run(&mut cmd::command("rustup", &["target", "add", WASM_TARGET]))
}
