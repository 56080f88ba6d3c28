//! Running external commands, with the command line echoed and failures typed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

/// Why a task stopped.
#[derive(Debug, Error)]
pub(crate) enum TaskError {
    /// A command could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// A check found something wrong.
    #[error("{0}")]
    Check(String),
    /// A tool is missing and cannot be installed from here.
    #[error("missing {tool}: {hint}")]
    Missing {
        /// What is missing.
        tool: &'static str,
        /// The one-line instruction to install it.
        hint: &'static str,
    },
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// A command that runs in the workspace root.
pub(crate) fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args).current_dir(workspace_root());
    command
}

/// Runs `command`, echoing it; fails unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> Result<(), TaskError> {
    let line = describe(command);
    eprintln!("\n==> {line}");
    let status = command.status().map_err(|source| TaskError::Spawn {
        command: line.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(TaskError::Failed {
            command: line,
            status,
        })
    }
}

/// Runs `command` quietly and returns its standard output.
pub(crate) fn output(command: &mut Command) -> Result<String, TaskError> {
    let line = describe(command);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| TaskError::Spawn {
            command: line.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(TaskError::Failed {
            command: line,
            status: output.status,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `program` can be found on the PATH.
pub(crate) fn exists(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
