//! Command-line flags. Each overrides the config file's value of the same meaning.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::backup::BackupArgs;
use crate::config::{Config, ConfigError};
use crate::passwd::PasswdArgs;
use crate::storage_tools::{CheckArgs, RecoverArgs};

/// tabmq: an MQTT 3.1.1/5.0 broker for browsers, over WebSocket and TCP.
#[derive(Debug, Parser)]
#[command(name = "tabmq", version, about)]
pub struct Cli {
    /// A subcommand instead of running the broker.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML configuration file (see tabmq.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP + WebSocket listen address (listeners.ws); "" disables it.
    #[arg(long, value_name = "ADDR")]
    pub ws: Option<String>,
    /// MQTT over TCP listen address (listeners.tcp); "" disables it.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,
    /// Directory of the database (storage.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of static files served over HTTP (listeners.www).
    #[arg(long, value_name = "DIR")]
    pub www: Option<String>,
    /// Log filter (log.level), e.g. info or tabmq=debug.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

/// What `tabmq` does other than run the broker.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a user to a password file (auth.password_file) or change their password;
    /// the password is read from the terminal, or from standard input.
    Passwd(PasswdArgs),
    /// Check a data directory's database (with the broker stopped): report the storage
    /// format, what is intact and every damaged record. Exits 1 if anything is damaged.
    Check(CheckArgs),
    /// Copy every intact session, message and retained message of a damaged database into
    /// a new database file beside it (with the broker stopped).
    Recover(RecoverArgs),
    /// Write a consistent copy of a data directory's database to a new file, also while
    /// the broker runs (it makes the copy then, through a socket in the data directory).
    Backup(BackupArgs),
}

impl Cli {
    /// The configuration: file (or defaults), then flags on top, validated.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(ws) = &self.ws {
            config.listeners.ws.clone_from(ws);
        }
        if let Some(tcp) = &self.tcp {
            config.listeners.tcp.clone_from(tcp);
        }
        if let Some(dir) = &self.data_dir {
            config.storage.data_dir.clone_from(dir);
        }
        if let Some(www) = &self.www {
            config.listeners.www.clone_from(www);
        }
        if let Some(level) = &self.log {
            config.log.level.clone_from(level);
        }
        config.validate()?;
        Ok(config)
    }
}
