//! A damaged database is detected, never served and never made worse: bytes flipped at
//! many offsets, zeroed pages, truncations, an empty file and files of other formats each
//! give either a clear error (`tabmq check` and the broker exit 1, the file byte for byte
//! as it was) or, where the damage hit unused space, exactly the original contents.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::broker::Broker;
use tabmq_broker::store::{DATABASE_FILE, StoreError, verify_copy};

const PAGE: usize = 4096;
/// Random damages tried on the load path.
const TRIALS: usize = 150;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-format-1")
}

/// A database of the current format with sessions, messages in every state and retained
/// messages: the format-1 fixture, migrated by a broker run.
fn current_database() -> Vec<u8> {
    let mut broker = Broker::start_on_copy_of("", &fixture());
    assert_eq!(broker.terminate().code(), Some(0), "{}", broker.log());
    std::fs::read(broker.data_dir().join(DATABASE_FILE)).expect("the migrated database")
}

/// A small deterministic generator, so that a failing case can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound
    }
}

/// Offsets of the pages that hold anything (the rest of the file is preallocated zeros).
fn used_pages(database: &[u8]) -> Vec<usize> {
    (0..database.len())
        .step_by(PAGE)
        .filter(|&at| {
            database[at..(at + PAGE).min(database.len())]
                .iter()
                .any(|b| *b != 0)
        })
        .collect()
}

fn flipped(database: &[u8], at: usize) -> Vec<u8> {
    let mut bytes = database.to_vec();
    bytes[at] ^= 0x5a;
    bytes
}

/// A damaged copy of the database.
struct Variant {
    name: String,
    bytes: Vec<u8>,
    /// Damage that no reading may pass over (the file is not a whole database).
    must_refuse: bool,
}

fn variant(name: String, bytes: Vec<u8>) -> Variant {
    Variant {
        name,
        bytes,
        must_refuse: false,
    }
}

/// Damaged copies of `database`.
fn damaged_variants(database: &[u8]) -> Vec<Variant> {
    let mut variants = Vec::new();
    // One record per page that holds any (live, or an older copy left by copy-on-write).
    let mut record_pages: Vec<(usize, usize)> = database
        .windows(8)
        .enumerate()
        .filter(|(_, window)| *window == b"fixture/")
        .map(|(at, _)| (at / PAGE * PAGE, at))
        .collect();
    record_pages.dedup_by_key(|(page, _)| *page);
    assert!(
        !record_pages.is_empty(),
        "the database holds the fixture's records"
    );
    for &(page, at) in &record_pages {
        variants.push(variant(
            format!("record byte {at} flipped"),
            flipped(database, at + 3),
        ));
        let mut bytes = database.to_vec();
        bytes[page..page + PAGE].fill(0);
        variants.push(variant(format!("record page at {page} zeroed"), bytes));
    }
    for at in [0, 9, 32, 64, 100, 200, 320, 500, 1000] {
        variants.push(variant(
            format!("header byte {at} flipped"),
            flipped(database, at),
        ));
    }
    let pages = used_pages(database);
    let mut random = Lcg(7);
    for _ in 0..12 {
        let page = pages[random.below(pages.len())];
        let at = page + random.below(PAGE);
        variants.push(variant(format!("byte {at} flipped"), flipped(database, at)));
    }
    for page in [0, PAGE] {
        let mut bytes = database.to_vec();
        bytes[page..page + PAGE].fill(0);
        variants.push(variant(format!("page at {page} zeroed"), bytes));
    }
    for length in [database.len() / 2, PAGE, 100, 0] {
        variants.push(Variant {
            must_refuse: true,
            ..variant(format!("cut to {length} bytes"), database[..length].to_vec())
        });
    }
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.resize(PAGE * 4, 0);
    variants.push(Variant {
        must_refuse: true,
        ..variant("an SQLite file".into(), sqlite)
    });
    variants.push(Variant {
        must_refuse: true,
        ..variant("a text file".into(), b"{\"sessions\": []}\n".to_vec())
    });
    variants
}

/// Runs the broker on `data_dir`; its exit code and log, or a failure if it keeps running.
fn broker_exit(data_dir: &Path) -> (Option<i32>, String) {
    let log = data_dir.join("../broker.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .args(["--ws", "", "--tcp", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn();
    let mut child = child.expect("start the broker");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), std::fs::read_to_string(&log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the broker started on a damaged database");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `intact:` line of a `tabmq check` report.
fn intact_line(report: &str) -> String {
    report
        .lines()
        .find(|line| line.starts_with("intact:"))
        .unwrap_or_default()
        .to_owned()
}

fn check(data_dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .args(["check", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run tabmq check");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn every_damaged_file_is_refused_unchanged_or_read_exactly_as_it_was() {
    let database = current_database();
    let dir = std::env::temp_dir().join(format!("tabmq-damage-{}", std::process::id()));
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("data directory");
    let path = data_dir.join(DATABASE_FILE);
    std::fs::write(&path, &database).expect("write");
    let (code, original) = check(&data_dir);
    assert_eq!(code, Some(0), "{original}");
    assert!(original.contains("storage format 2"), "{original}");

    let (mut refused, mut harmless) = (0, 0);
    let mut live_record_damage_refused = false;
    for Variant {
        name,
        bytes,
        must_refuse,
    } in damaged_variants(&database)
    {
        std::fs::write(&path, &bytes).expect("write the damaged file");
        let (code, report) = check(&data_dir);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes,
            "{name}: check changed the file"
        );
        match code {
            Some(0) => {
                assert!(!must_refuse, "{name}: passed as intact\n{report}");
                assert_eq!(
                    intact_line(&report),
                    intact_line(&original),
                    "{name}: served damaged data"
                );
                harmless += 1;
            }
            Some(1) => {
                let (code, log) = broker_exit(&data_dir);
                assert_eq!(code, Some(1), "{name}: the broker's exit\n{log}");
                assert!(
                    log.contains("damaged") || log.contains("storage format"),
                    "{name}: a clear error\n{log}"
                );
                assert_eq!(
                    std::fs::read(&path).expect("read"),
                    bytes,
                    "{name}: the broker changed the file"
                );
                refused += 1;
                live_record_damage_refused |= name.starts_with("record");
            }
            other => panic!("{name}: tabmq check exited {other:?}\n{report}"),
        }
        let leftovers: Vec<_> = std::fs::read_dir(&data_dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .filter(|name| name != DATABASE_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{name}: left {leftovers:?}");
    }
    println!(
        "damaged files: {refused} refused with exit 1, {harmless} harmless (unused space), file unchanged in all"
    );
    assert!(live_record_damage_refused, "damage to a live record was refused");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn random_damage_never_escapes_verification_as_a_panic_or_wrong_data() {
    let database = current_database();
    let dir = std::env::temp_dir().join(format!("tabmq-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("directory");
    let path = dir.join(DATABASE_FILE);
    std::fs::write(&path, &database).expect("write");
    let original = verify_copy(&path).expect("the intact database");
    assert!(original.damage.is_empty());

    let pages = used_pages(&database);
    let mut random = Lcg(2026);
    let (mut detected, mut unchanged) = (0, 0);
    for trial in 0..TRIALS {
        let mut bytes = database.clone();
        for _ in 0..1 + random.below(3) {
            let at = pages[random.below(pages.len())] + random.below(PAGE);
            bytes[at] ^= 1 << random.below(8);
        }
        std::fs::write(&path, &bytes).expect("write");
        match verify_copy(&path) {
            Ok(verified) if verified.damage.is_empty() => {
                assert_eq!(
                    verified.snapshot, original.snapshot,
                    "trial {trial}: wrong data read"
                );
                unchanged += 1;
            }
            Ok(_) | Err(StoreError::Damaged { .. } | StoreError::UnknownFormat { .. }) => detected += 1,
            Err(other) => panic!("trial {trial}: {other}"),
        }
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes,
            "trial {trial}: file changed"
        );
    }
    println!("{TRIALS} random damages: {detected} detected, {unchanged} read exactly as the original");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The damaged records a `tabmq check` report lists, without the file-level line.
fn damaged_records(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|line| line.starts_with("  ") && !line.trim_start().starts_with("(file)"))
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn recover_copies_every_intact_record_of_a_damaged_database_into_one_the_broker_resumes() {
    let database = current_database();
    let dir = std::env::temp_dir().join(format!("tabmq-recover-{}", std::process::id()));
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("data directory");
    let path = data_dir.join(DATABASE_FILE);
    // A record of the live state damaged: some copy of "fixture/" is in one.
    let offsets = database
        .windows(8)
        .enumerate()
        .filter(|(_, window)| *window == b"fixture/")
        .map(|(at, _)| at);
    let (report, bytes) = offsets
        .rev()
        .find_map(|at| {
            let bytes = flipped(&database, at + 3);
            std::fs::write(&path, &bytes).expect("write");
            let (code, report) = check(&data_dir);
            (code == Some(1) && !damaged_records(&report).is_empty()).then_some((report, bytes))
        })
        .expect("a flip that damages a live record");
    let damaged = damaged_records(&report);

    let output = Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .args(["recover", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run tabmq recover");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for record in &damaged {
        assert!(
            text.contains(record.as_str()),
            "the report names {record}:\n{text}"
        );
    }
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "recover changed the damaged file"
    );
    let again = Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .args(["recover", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run tabmq recover");
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing output is not overwritten"
    );

    // Put in place as the report says: intact, with everything the damaged file had intact.
    std::fs::rename(data_dir.join("tabmq.recovered.redb"), &path).expect("move into place");
    let (code, recovered) = check(&data_dir);
    assert_eq!(code, Some(0), "{recovered}");
    assert_eq!(intact_line(&recovered), intact_line(&report));
    let sessions: u64 = intact_line(&recovered)
        .trim_start_matches("intact: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a session count");
    let broker = Broker::start_on_copy_of("", &data_dir);
    assert_eq!(
        broker.metric("sessions"),
        sessions,
        "the broker resumed the recovered sessions"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
