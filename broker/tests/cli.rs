//! The command line and configuration: help, version, and one-line errors that name
//! the option at fault.

mod support;

use support::broker::run_binary;

/// A test's working directory, removed when the test passes (kept to look at when it fails).
struct ScratchDir(std::path::PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for ScratchDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn temp_dir(name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("tabmq-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    ScratchDir(dir)
}

#[test]
fn help_lists_every_flag() {
    let dir = temp_dir("help");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .arg("--help")
        .current_dir(&dir)
        .output();
    let output = output.expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--ws",
        "--tcp",
        "--data-dir",
        "--config",
        "--www",
        "--help",
        "--version",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}:\n{text}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let dir = temp_dir("version");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .arg("--version")
        .current_dir(&dir)
        .output();
    let output = output.expect("runs");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_flag_is_an_error() {
    let dir = temp_dir("flag");
    let (code, stderr) = run_binary(&["--port", "1"], &dir);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn bad_values_name_the_option_in_one_line() {
    let dir = temp_dir("values");
    let cases = [
        ("[limits]\nmax_packet_size = 0\n", "limits.max_packet_size"),
        ("[limits]\nmax_inflight = 0\n", "limits.max_inflight"),
        ("[limits]\nmax_pakcet_size = 10\n", "max_pakcet_size"),
        ("[storage]\ndurability = \"sometimes\"\n", "sometimes"),
        ("[sessions]\ntakeover = \"fight\"\n", "fight"),
        ("[listeners]\nws = \"not an address\"\n", "listeners.ws"),
    ];
    for (config, expected) in cases {
        let path = dir.join("bad.toml");
        std::fs::write(&path, config).expect("write config");
        let (code, stderr) = run_binary(&["--config", path.to_str().expect("utf-8 path")], &dir);
        assert_eq!(code, Some(2), "{config}");
        assert!(stderr.contains(expected), "{config}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
    let (code, stderr) = run_binary(&["--tcp", "300.1.1.1:99"], &dir);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("listeners.tcp"), "{stderr}");
}

#[test]
fn missing_config_file_is_reported() {
    let dir = temp_dir("missing");
    let (code, stderr) = run_binary(&["--config", "nowhere.toml"], &dir);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("nowhere.toml"), "{stderr}");
}

#[test]
fn corrupt_data_directory_is_a_startup_error_and_is_left_alone() {
    let dir = temp_dir("corrupt");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let garbage = vec![0x5Au8; 8192];
    std::fs::write(data.join(tabmq_broker::store::DATABASE_FILE), &garbage).expect("write garbage");
    let (code, stderr) = run_binary(
        &[
            "--data-dir",
            "data",
            "--ws",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
        ],
        &dir,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is damaged") && stderr.contains("tabmq check"),
        "{stderr}"
    );
    let after = std::fs::read(data.join(tabmq_broker::store::DATABASE_FILE)).expect("still there");
    assert_eq!(after, garbage, "the file was not emptied or replaced");
}

#[test]
fn an_address_in_use_names_the_listener() {
    let dir = temp_dir("inuse");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let (code, stderr) = run_binary(
        &["--data-dir", "data", "--ws", "127.0.0.1:0", "--tcp", &address],
        &dir,
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("listeners.tcp") && stderr.contains(&address),
        "{stderr}"
    );
}
