//! Installing what the tasks need on a fresh machine, or saying in one line how to.

use std::path::PathBuf;

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

fn is_root() -> bool {
    cmd::output(&mut cmd::command("id", &["-u"])).is_ok_and(|uid| uid.trim() == "0")
}

/// Installs Debian packages providing `program`, when root; otherwise explains.
fn debian_package(program: &'static str, packages: &[&str], hint: &'static str) -> Result<(), TaskError> {
    if cmd::exists(program) {
        return Ok(());
    }
    if !is_root() || !cmd::exists("apt-get") {
        return Err(TaskError::Missing { tool: program, hint });
    }
    cmd::run(&mut cmd::command("apt-get", &["update", "-qq"]))?;
    let mut install = cmd::command(
        "apt-get",
        &[&["install", "-y", "-qq", "--no-install-recommends"][..], packages].concat(),
    );
    install.env("DEBIAN_FRONTEND", "noninteractive");
    cmd::run(&mut install)
}

/// Debian's Chromium and its driver, for the browser tests.
pub(crate) fn chromium() -> Result<(), TaskError> {
    debian_package(
        "chromium",
        &["chromium", "chromium-driver"],
        "sudo apt-get install chromium chromium-driver",
    )
}

/// Debian's mosquitto clients, for the interoperability tests.
pub(crate) fn mosquitto_clients() -> Result<(), TaskError> {
    debian_package(
        "mosquitto_pub",
        &["mosquitto-clients"],
        "sudo apt-get install mosquitto-clients",
    )
}

/// Debian's Mosquitto broker, the benchmarks' reference.
pub(crate) fn mosquitto_broker() -> Result<(), TaskError> {
    if std::path::Path::new("/usr/sbin/mosquitto").exists() {
        return Ok(());
    }
    debian_package("mosquitto", &["mosquitto"], "sudo apt-get install mosquitto")
}

/// A Python virtual environment with the interop tests' requirements; returns its python.
pub(crate) fn python_env() -> Result<PathBuf, TaskError> {
    if !cmd::exists("python3") {
        return Err(TaskError::Missing {
            tool: "python3",
            hint: "install Python 3.9 or newer",
        });
    }
    let root = cmd::workspace_root();
    let venv = root.join("target/interop-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        cmd::run(&mut cmd::command(
            "python3",
            &["-m", "venv", &venv.to_string_lossy()],
        ))?;
    }
    let requirements = root.join("tests/interop/python/requirements.txt");
    cmd::run(&mut cmd::command(
        &python.to_string_lossy(),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            &requirements.to_string_lossy(),
        ],
    ))?;
    Ok(python)
}

/// The npm packages of a folder with a package-lock.json, installed if missing.
pub(crate) fn npm_packages(folder: &str) -> Result<(), TaskError> {
    if !cmd::exists("npm") {
        return Err(TaskError::Missing {
            tool: "npm",
            hint: "install Node.js 20 or newer with npm",
        });
    }
    let dir = cmd::workspace_root().join(folder);
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (
        installed.metadata().and_then(|m| m.modified()),
        lock.metadata().and_then(|m| m.modified()),
    ) {
        (Ok(installed), Ok(lock)) => installed >= lock,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    let mut npm = cmd::command("npm", &["ci", "--no-audit", "--no-fund"]);
    npm.current_dir(dir);
    cmd::run(&mut npm)
}

/// The version of `wasm-bindgen` that Cargo.lock pins.
fn locked_wasm_bindgen_version() -> Result<String, TaskError> {
    let lock = std::fs::read_to_string(cmd::workspace_root().join("Cargo.lock"))
        .map_err(|e| TaskError::Check(format!("cannot read Cargo.lock: {e}")))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    Err(TaskError::Check("wasm-bindgen is not in Cargo.lock".into()))
}

/// `wasm-bindgen` (from wasm-bindgen-cli) at the version Cargo.lock pins.
pub(crate) fn wasm_bindgen_cli() -> Result<(), TaskError> {
    let wanted = locked_wasm_bindgen_version()?;
    let installed = cmd::output(&mut cmd::command("wasm-bindgen", &["--version"])).unwrap_or_default();
    if installed.split_whitespace().nth(1) == Some(wanted.as_str()) {
        return Ok(());
    }
    // Not --locked: the registry mirror here lacks one pinned dependency of the CLI.
    cmd::run(&mut cmd::command(
        "cargo",
        &["install", "wasm-bindgen-cli", "--version", &wanted],
    ))
}
