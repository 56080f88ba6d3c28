//! `tabmq backup --data-dir DIR --out FILE`: a consistent copy of the database, also while
//! the broker runs.
//!
//! The database file is locked by the broker that has it open, so a running broker makes
//! the copy itself: it listens on `tabmq.sock` in its data directory (readable and
//! writable by its owner only), takes a read view of the store after every write begun
//! before the request (copy-on-write: writes go on meanwhile), and writes the view into
//! a new database at the path it is given, through a temporary file and a rename. With
//! no broker running, `tabmq backup` reads the file itself, after checking it.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::{info, warn};

use crate::store::{DATABASE_FILE, RedbStore, Snapshot, StoreError, StoreHandle, verify_copy};

/// The socket a running broker serves backups on, in its data directory.
pub const SOCKET_FILE: &str = "tabmq.sock";

/// `tabmq backup`'s arguments.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The broker's data directory (storage.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The database file to write (must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Why a backup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The output would overwrite a file.
    #[error("{0} exists already")]
    OutputExists(PathBuf),
    /// Talking to the running broker failed.
    #[error("the running broker's backup socket: {0}")]
    Socket(std::io::Error),
    /// The running broker could not make it.
    #[error("the broker could not make the backup: {0}")]
    Broker(String),
    /// Reading or writing a database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes `snapshot` as a new database at `out`, whole or not at all.
fn write(snapshot: &Snapshot, out: &Path) -> Result<String, BackupError> {
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let partial = out.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let written = RedbStore::create_with(&partial, snapshot)
        .map_err(BackupError::from)
        .and_then(|()| std::fs::rename(&partial, out).map_err(|e| StoreError::Io(e.to_string()).into()));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| crate::storage_tools::contents(snapshot))
}

/// Makes the backup asked for by `args`: through the running broker if there is one.
pub fn run(args: &BackupArgs) -> Result<String, BackupError> {
    let out = std::path::absolute(&args.out).map_err(|e| StoreError::Io(e.to_string()))?;
    if out.exists() {
        return Err(BackupError::OutputExists(out));
    }
    let socket = args.data_dir.join(SOCKET_FILE);
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(stream) => ask_broker(stream, &out),
        Err(_) => {
            let snapshot =
                verify_copy(&args.data_dir.join(DATABASE_FILE)).and_then(|verified| {
                    match verified.damage.is_empty() {
                        true => Ok(verified.snapshot),
                        false => Err(StoreError::Damaged {
                            path: args.data_dir.join(DATABASE_FILE),
                            damage: verified.damage,
                        }),
                    }
                })?;
            let summary = write(&snapshot, &out)?;
            Ok(format!("{} (no broker running): {summary}", out.display()))
        }
    }
}

fn ask_broker(mut stream: std::os::unix::net::UnixStream, out: &Path) -> Result<String, BackupError> {
    let request = format!("{}\n", out.display());
    stream
        .write_all(request.as_bytes())
        .map_err(BackupError::Socket)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(BackupError::Socket)?;
    match answer.trim_end().split_once(' ') {
        Some(("ok", summary)) => Ok(format!("{} (from the running broker): {summary}", out.display())),
        Some(("error", message)) => Err(BackupError::Broker(message.to_owned())),
        _ => Err(BackupError::Broker(format!("unexpected answer {answer:?}"))),
    }
}

/// Serves backup requests on `data_dir`'s socket until the task is dropped.
pub async fn serve(data_dir: PathBuf, store: StoreHandle) {
    let path = data_dir.join(SOCKET_FILE);
    // Left by a broker that was killed: the database lock says none runs now.
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(error) => {
            warn!(%error, socket = %path.display(), "cannot serve backups: `tabmq backup` will not work while the broker runs");
            return;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(error) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            warn!(%error, "cannot restrict the backup socket to its owner");
            return;
        }
    }
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(answer(stream, store.clone()));
    }
}

/// Reads one request (the output path) and answers it.
async fn answer(stream: tokio::net::UnixStream, store: StoreHandle) {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    if tokio::io::BufReader::new(reader)
        .read_line(&mut line)
        .await
        .is_err()
    {
        return;
    }
    let out = PathBuf::from(line.trim_end());
    let result = match store.view().await {
        Ok(view) => tokio::task::spawn_blocking(move || {
            let snapshot = view.read()?;
            write(&snapshot, &out)
        })
        .await
        .unwrap_or_else(|error| Err(BackupError::Broker(error.to_string()))),
        Err(error) => Err(error.into()),
    };
    let reply = match result {
        Ok(summary) => {
            info!(file = line.trim_end(), "backup written: {summary}");
            format!("ok {summary}\n")
        }
        Err(error) => {
            warn!(%error, "backup failed");
            format!("error {error}\n")
        }
    };
    let _ = writer.write_all(reply.as_bytes()).await;
}

/// Removes the socket when the broker stops.
pub fn remove_socket(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(SOCKET_FILE));
}
