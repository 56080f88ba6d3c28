//! Deciding that another client holds our session, instead of fighting it.
//!
//! Certain: a v5 DISCONNECT 0x8E, or the tabmq broker's WebSocket close code 4000
//! (its signal to 3.1.1 clients). Suspected: the connection keeps dropping shortly
//! after CONNACK with no reason given, as happens with a broker that takes sessions
//! over silently (Mosquitto before 2.0.15) while another device holds the same id.

/// WebSocket close code the tabmq broker sends to a connection whose session was taken over.
pub const CLOSE_SESSION_TAKEN_OVER: u16 = 4000;

/// How a connection ended, as far as takeover detection cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    /// The broker said the session was taken over.
    TakenOver,
    /// The connection dropped `lasted_ms` after CONNACK without a reason.
    Dropped {
        /// Time from CONNACK to the drop.
        lasted_ms: f64,
    },
    /// Anything else: a refusal, a network failure before CONNACK, a local disconnect.
    Other,
}

/// The detector's conclusion about one ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Reconnect as usual.
    Reconnect,
    /// Another client holds the session: stop reconnecting and report it.
    Takeover {
        /// Whether the broker said so (or it is inferred from repeated drops).
        confirmed: bool,
    },
}

/// Counts quick drops after CONNACK.
#[derive(Debug, Clone)]
pub struct TakeoverDetector {
    quick_ms: f64,
    max_quick_drops: u32,
    quick_drops: u32,
}

impl TakeoverDetector {
    /// Drops within `quick_ms` of CONNACK count; `max_quick_drops` in a row mean takeover.
    pub fn new(quick_ms: f64, max_quick_drops: u32) -> Self {
        Self {
            quick_ms,
            max_quick_drops,
            quick_drops: 0,
        }
    }

    /// Judges how a connection ended.
    pub fn judge(&mut self, ending: Ending) -> Verdict {
        match ending {
            Ending::TakenOver => {
                self.quick_drops = 0;
                Verdict::Takeover { confirmed: true }
            }
            Ending::Dropped { lasted_ms } if lasted_ms < self.quick_ms => {
                self.quick_drops += 1;
                if self.quick_drops >= self.max_quick_drops {
                    self.quick_drops = 0;
                    Verdict::Takeover { confirmed: false }
                } else {
                    Verdict::Reconnect
                }
            }
            Ending::Dropped { .. } => {
                self.quick_drops = 0;
                Verdict::Reconnect
            }
            Ending::Other => Verdict::Reconnect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_reason_is_a_confirmed_takeover() {
        let mut detector = TakeoverDetector::new(3000.0, 3);
        assert_eq!(
            detector.judge(Ending::TakenOver),
            Verdict::Takeover { confirmed: true }
        );
    }

    #[test]
    fn repeated_quick_drops_are_a_suspected_takeover_but_slow_ones_reset_the_count() {
        let mut detector = TakeoverDetector::new(3000.0, 3);
        let quick = Ending::Dropped { lasted_ms: 100.0 };
        assert_eq!(detector.judge(quick), Verdict::Reconnect);
        assert_eq!(detector.judge(quick), Verdict::Reconnect);
        assert_eq!(
            detector.judge(Ending::Dropped { lasted_ms: 60_000.0 }),
            Verdict::Reconnect
        );
        assert_eq!(detector.judge(quick), Verdict::Reconnect);
        assert_eq!(detector.judge(quick), Verdict::Reconnect);
        assert_eq!(detector.judge(quick), Verdict::Takeover { confirmed: false });
    }
}
