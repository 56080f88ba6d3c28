//! `tabmq passwd FILE USER`: adds a user to a password file, or changes their password
//! (`--delete` removes them). The password is read from the terminal without echo, twice,
//! or as the first line of standard input when that is not a terminal; never from an
//! argument, where other users of the machine could see it. The file is rewritten through
//! a temporary file and a rename, readable by its owner only.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::security::passwords;

/// `tabmq passwd`'s arguments.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The password file (created if missing).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The user name.
    #[arg(value_name = "USER")]
    pub user: String,
    /// Remove the user instead.
    #[arg(long)]
    pub delete: bool,
}

/// Why `tabmq passwd` could not do it.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    /// The user name cannot be stored in the file.
    #[error("invalid user name {0:?}: it must be non-empty, without ':' or white space")]
    InvalidUser(String),
    /// No password, or the two entries differ.
    #[error("{0}")]
    Password(&'static str),
    /// `--delete` of a user the file does not hold.
    #[error("{user} is not in {file}")]
    NoSuchUser {
        /// The user.
        user: String,
        /// The file.
        file: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PasswdError {
    let what = what.into();
    move |source| PasswdError::Io { what, source }
}

/// Runs the subcommand.
pub fn run(args: &PasswdArgs) -> Result<(), PasswdError> {
    if args.user.is_empty() || args.user.contains(':') || args.user.contains(char::is_whitespace) {
        return Err(PasswdError::InvalidUser(args.user.clone()));
    }
    let existing = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(format!("cannot read {}", args.file.display()))(error)),
    };
    let prefix = format!("{}:", args.user);
    let mut lines: Vec<String> = existing.lines().map(str::to_owned).collect();
    let position = lines.iter().position(|line| line.starts_with(&prefix));
    if args.delete {
        let index = position.ok_or_else(|| PasswdError::NoSuchUser {
            user: args.user.clone(),
            file: args.file.clone(),
        })?;
        lines.remove(index);
    } else {
        let password = read_password()?;
        let line = format!(
            "{prefix}{}",
            passwords::hash(password.as_bytes()).map_err(PasswdError::Hash)?
        );
        match position {
            Some(index) => lines[index] = line,
            None => lines.push(line),
        }
    }
    write_file(&args.file, &lines)?;
    let done = if args.delete { "removed from" } else { "written to" };
    eprintln!("tabmq passwd: {} {done} {}", args.user, args.file.display());
    Ok(())
}

fn read_password() -> Result<String, PasswdError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(io("cannot read the password"))?;
        let again = rpassword::prompt_password("Again: ").map_err(io("cannot read the password"))?;
        if first != again {
            return Err(PasswdError::Password("the passwords differ"));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(io("cannot read the password from standard input"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(PasswdError::Password("the password is empty"));
    }
    Ok(password)
}

fn write_file(path: &Path, lines: &[String]) -> Result<(), PasswdError> {
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temporary)
        .map_err(io(format!("cannot write {}", temporary.display())))?;
    for line in lines {
        writeln!(file, "{line}").map_err(io(format!("cannot write {}", temporary.display())))?;
    }
    file.sync_all()
        .map_err(io(format!("cannot write {}", temporary.display())))?;
    std::fs::rename(&temporary, path).map_err(io(format!("cannot replace {}", path.display())))
}
