//! The side-by-side suite: every case against every target that supports it, targets
//! alternated within each repetition, medians reported with ratios to Mosquitto and to
//! the bare relay.

use std::fmt::Write as _;

use tabmq_protocol::QoS;

use crate::case::{self, Sample, Scenario};
use crate::messaging::{Load, Shape};
use crate::target::{Programs, Target};
use crate::transport::Transport;

/// A named scenario.
pub struct Case {
    /// Row label.
    pub title: String,
    /// What runs.
    pub scenario: Scenario,
}

fn messaging(
    title: &str,
    shape: Shape,
    transport: Transport,
    qos: QoS,
    payload: usize,
    messages: u64,
) -> Case {
    let load = Load {
        transport,
        qos,
        payload,
        messages,
        persistent: false,
    };
    Case {
        title: format!(
            "{title}, QoS {}, {payload} B{}",
            qos.bits(),
            if transport == Transport::Tcp { ", TCP" } else { "" }
        ),
        scenario: Scenario::Messaging(shape, load),
    }
}

/// The full suite, or with `smoke` the same shapes at a size that runs in seconds.
pub fn cases(smoke: bool) -> Vec<Case> {
    let scale = |n: u64| if smoke { (n / 200).max(20) } else { n };
    let fan_in = Shape::FanIn { publishers: 10 };
    let fan_out = Shape::FanOut {
        subscribers: if smoke { 5 } else { 50 },
    };
    let rooms = Shape::Rooms {
        rooms: if smoke { 2 } else { 10 },
        members: if smoke { 3 } else { 10 },
    };
    let (ws, tcp) = (Transport::Ws, Transport::Tcp);
    let mut cases = vec![
        messaging("fan-in 10→1", fan_in, ws, QoS::AtMostOnce, 64, scale(200_000)),
        messaging("fan-in 10→1", fan_in, ws, QoS::AtLeastOnce, 64, scale(100_000)),
        messaging("fan-in 10→1", fan_in, ws, QoS::ExactlyOnce, 64, scale(50_000)),
        messaging("fan-out 1→50", fan_out, ws, QoS::AtMostOnce, 64, scale(4_000)),
        messaging("fan-out 1→50", fan_out, ws, QoS::AtLeastOnce, 64, scale(4_000)),
        messaging("rooms 10×10", rooms, ws, QoS::AtMostOnce, 64, scale(20_000)),
        messaging("rooms 10×10", rooms, ws, QoS::AtLeastOnce, 64, scale(20_000)),
        messaging("fan-in 10→1", fan_in, ws, QoS::AtLeastOnce, 16, scale(100_000)),
        messaging("fan-in 10→1", fan_in, ws, QoS::AtLeastOnce, 4_096, scale(50_000)),
        messaging("fan-in 10→1", fan_in, ws, QoS::AtLeastOnce, 65_536, scale(5_000)),
        messaging("fan-in 10→1", fan_in, tcp, QoS::AtLeastOnce, 64, scale(100_000)),
    ];
    let mut persistent = messaging("fan-in 10→1", fan_in, ws, QoS::AtLeastOnce, 64, scale(100_000));
    if let Scenario::Messaging(_, load) = &mut persistent.scenario {
        load.persistent = true;
    }
    persistent
        .title
        .push_str(", persistent sessions (stored before PUBACK)");
    cases.push(persistent);
    let one_to_one = Shape::FanIn { publishers: 1 };
    for filters in [10, 1_000, 100_000] {
        let load = Load {
            transport: ws,
            qos: QoS::AtMostOnce,
            payload: 64,
            messages: scale(100_000),
            persistent: false,
        };
        let filters = if smoke { (filters / 100).max(1) } else { filters };
        cases.push(Case {
            title: format!("fan-in 1→1 past {filters} unrelated wildcard filters, QoS 0, 64 B"),
            scenario: Scenario::Wildcards(one_to_one, load, filters),
        });
    }
    for subscribers in [1, 10] {
        cases.push(Case {
            title: format!(
                "{subscribers} subscribers that never read, QoS 0, 64 KiB (bystander latency, peak RSS)"
            ),
            scenario: Scenario::Stalled {
                subscribers,
                payload: 65_536,
                messages: scale(2_000),
            },
        });
    }
    cases.push(Case {
        title: "backlog drain, QoS 1, 64 B".into(),
        scenario: Scenario::Backlog {
            transport: ws,
            messages: scale(100_000),
            payload: 64,
        },
    });
    cases.push(Case {
        title: "connection storm".into(),
        scenario: Scenario::Storm(ws, scale(1_000)),
    });
    cases.push(Case {
        title: "idle connections (memory)".into(),
        scenario: Scenario::Idle(ws, if smoke { 50 } else { 10_000 }),
    });
    cases
}

/// The targets a case runs against, out of those available.
fn targets_for(case: &Case, available: &[Target]) -> Vec<Target> {
    available
        .iter()
        .copied()
        .filter(|t| case.scenario.supports(*t))
        .filter(|t| *t != Target::TabmqInterval || case.scenario.is_durable())
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Medians of one case on one target.
struct Row {
    target: Target,
    /// Whether every run finished within the time limit.
    complete: bool,
    rate: f64,
    latency: Option<[f64; 3]>,
    cpu: f64,
    peak_rss: f64,
}

fn summarize(target: Target, samples: &[Sample]) -> Row {
    let latency = samples
        .iter()
        .all(|s| s.latency.is_some())
        .then(|| [0, 1, 2].map(|i| median(samples.iter().filter_map(|s| s.latency.map(|l| l[i])).collect())));
    Row {
        target,
        complete: samples.iter().all(|s| s.complete),
        rate: median(samples.iter().map(|s| s.rate).collect()),
        latency,
        cpu: median(samples.iter().map(|s| s.cpu).collect()),
        peak_rss: median(
            samples
                .iter()
                .map(|s| s.peak_rss as f64 / (1 << 20) as f64)
                .collect(),
        ),
    }
}

/// Runs every case `repeat` times per target, alternating targets, and returns the
/// report as a Markdown table with the number of failed runs. Progress goes to stderr.
pub async fn run(
    cases: &[Case],
    available: &[Target],
    repeat: usize,
    programs: &Programs,
) -> (String, usize) {
    let mut report = String::from(
        "| scenario | broker | rate | p50 ms | p99 ms | p99.9 ms | broker CPU s | peak RSS MiB | ours / mosquitto | ours / relay |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut failed = 0;
    for (number, case) in cases.iter().enumerate() {
        let targets = targets_for(case, available);
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
        let mut failures: Vec<Option<String>> = vec![None; targets.len()];
        for round in 0..repeat {
            // Rotate the order each round so that no broker always runs first (cold caches).
            for offset in 0..targets.len() {
                let index = (offset + round) % targets.len();
                let target = targets[index];
                eprint!(
                    "\r[{}/{}] {} · {} · run {}/{}            ",
                    number + 1,
                    cases.len(),
                    case.title,
                    target.name(),
                    round + 1,
                    repeat
                );
                // A broker that fails a case is reported as failing it; the suite goes on.
                match case::run(case.scenario, target, programs).await {
                    Ok(sample) => samples[index].push(sample),
                    Err(error) => {
                        failed += 1;
                        eprintln!("\n{} on {}: {error}", case.title, target.name());
                        failures[index] = Some(error.to_string());
                    }
                }
            }
        }
        let rows: Vec<Row> = targets
            .iter()
            .zip(&samples)
            .filter(|(_, s)| !s.is_empty())
            .map(|(t, s)| summarize(*t, s))
            .collect();
        for (target, failure) in targets.iter().zip(&failures) {
            if let Some(failure) = failure {
                let _ = writeln!(
                    report,
                    "| {} | {} | failed in a run: {failure} | | | | | | | |",
                    case.title,
                    target.name()
                );
            }
        }
        let rate_of = |target: Target| rows.iter().find(|r| r.target == target).map(|r| r.rate);
        let unit = case.scenario.unit();
        for row in &rows {
            let ours = matches!(row.target, Target::Tabmq | Target::TabmqInterval);
            let ratio = |other: Option<f64>| match (ours, other) {
                (true, Some(other)) if other > 0.0 => format!("{:.2}", row.rate / other),
                _ => String::new(),
            };
            let [p50, p99, p999] = row
                .latency
                .map_or([String::new(), String::new(), String::new()], |l| {
                    l.map(|v| format!("{v:.2}"))
                });
            let _ = writeln!(
                report,
                "| {} | {} | {} {unit}{} | {p50} | {p99} | {p999} | {:.2} | {:.1} | {} | {} |",
                case.title,
                row.target.name(),
                case::figure(row.rate),
                if row.complete { "" } else { " (cut at 60 s)" },
                row.cpu,
                row.peak_rss,
                ratio(rate_of(Target::Mosquitto)),
                ratio(rate_of(Target::Relay)),
            );
        }
    }
    eprintln!();
    (report, failed)
}
