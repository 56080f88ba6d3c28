//! `tabmq check` and `tabmq recover`: an operator's tools for a data directory the broker
//! is not running on. Both read a copy of the database, never the file itself.
//!
//! - `check` reports the storage format, what is intact and every damaged record; it
//!   exits 0 when nothing is damaged, 1 otherwise.
//! - `recover` writes every intact session, message and retained message into a new
//!   database file beside the damaged one, to be put in its place by the operator.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::store::{DATABASE_FILE, RedbStore, Snapshot, StoreError, Verified, verify_copy};

/// `tabmq check`'s arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The broker's data directory (storage.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// `tabmq recover`'s arguments.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The broker's data directory (storage.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The new database file [default: tabmq.recovered.redb in the data directory].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Why a storage tool could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The data directory holds no database.
    #[error("{0} does not exist")]
    NoDatabase(PathBuf),
    /// `recover` would overwrite a file.
    #[error("{0} exists already; move it away or name another file with --out")]
    OutputExists(PathBuf),
    /// Reading or writing a database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `check` found: the report to print, and whether the database is intact.
#[derive(Debug)]
pub struct CheckReport {
    /// Human-readable lines.
    pub text: String,
    /// No damage found.
    pub intact: bool,
}

fn database(data_dir: &Path) -> Result<PathBuf, ToolError> {
    let path = data_dir.join(DATABASE_FILE);
    match path.is_file() {
        true => Ok(path),
        false => Err(ToolError::NoDatabase(path)),
    }
}

/// One line counting what `snapshot` holds.
pub(crate) fn contents(snapshot: &Snapshot) -> String {
    let sessions = snapshot.sessions.values();
    let messages: usize = sessions.clone().map(|s| s.messages.len()).sum();
    let inflight: usize = sessions.clone().map(|s| s.inflight.len()).sum();
    let incoming: usize = sessions.map(|s| s.incoming.len()).sum();
    format!(
        "{} sessions, {messages} queued messages ({inflight} in flight), {incoming} QoS 2 ids received and not released, {} retained messages",
        snapshot.sessions.len(),
        snapshot.retained.len()
    )
}

/// Checks the database in `args.data_dir`.
pub fn check(args: &CheckArgs) -> Result<CheckReport, ToolError> {
    let path = database(&args.data_dir)?;
    let mut text = format!("{}\n", path.display());
    let verified = match verify_copy(&path) {
        Ok(verified) => verified,
        Err(StoreError::Damaged { damage, .. }) => {
            let _ = writeln!(
                text,
                "unreadable: {}",
                damage
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return Ok(CheckReport { text, intact: false });
        }
        Err(error) => return Err(error.into()),
    };
    let Verified {
        format,
        snapshot,
        damage,
    } = verified;
    let _ = writeln!(text, "storage format {format}");
    let _ = writeln!(text, "intact: {}", contents(&snapshot));
    let _ = writeln!(text, "damaged records: {}", damage.len());
    for record in &damage {
        let _ = writeln!(text, "  {record}");
    }
    Ok(CheckReport {
        text,
        intact: damage.is_empty(),
    })
}

/// Copies what is intact in `args.data_dir`'s database into a new file; returns a report.
pub fn recover(args: &RecoverArgs) -> Result<String, ToolError> {
    let path = database(&args.data_dir)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.data_dir.join("tabmq.recovered.redb"));
    if out.exists() {
        return Err(ToolError::OutputExists(out));
    }
    let verified = verify_copy(&path)?;
    RedbStore::create_with(&out, &verified.snapshot)?;
    let mut text = format!(
        "recovered into {}: {}\n",
        out.display(),
        contents(&verified.snapshot)
    );
    let _ = writeln!(text, "left behind, damaged: {}", verified.damage.len());
    for record in &verified.damage {
        let _ = writeln!(text, "  {record}");
    }
    let _ = writeln!(
        text,
        "with the broker stopped, keep {} aside and move {} to {}",
        path.display(),
        out.display(),
        path.display()
    );
    Ok(text)
}
