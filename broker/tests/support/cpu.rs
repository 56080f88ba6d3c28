//! Pinning the test's thread to one CPU (with util-linux's `taskset`).
//!
//! Two sockets written one after the other from different CPUs can reach their peers in
//! the other order: loopback delivery runs in each CPU's own backlog, which a busy machine
//! may defer. A test that needs "sent first" to mean "arrived first" pins its sending
//! thread (and the broker it starts from it) to one CPU.

use std::process::Command;

/// Pins the calling thread, and the processes it starts later, to the first CPU it may use.
pub fn pin_this_thread() {
    let thread = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = thread
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a thread id")
        .to_owned();
    let shown = Command::new("taskset")
        .args(["-pc", &tid])
        .output()
        .expect("taskset (util-linux)");
    let shown = String::from_utf8_lossy(&shown.stdout);
    let first = shown
        .rsplit(':')
        .next()
        .and_then(|list| list.trim().split([',', '-']).next().map(str::to_owned))
        .expect("an affinity list");
    let status = Command::new("taskset")
        .args(["-pc", &first, &tid])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset");
    assert!(status.success(), "taskset -pc {first} {tid}");
}
