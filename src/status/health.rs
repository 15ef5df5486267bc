//! The health policy behind `grpc.health.v1` and `procgroups health`: the
//! agent is SERVING while its cycles run and its exports get through.
//!
//! Two conditions, both measured on the wall clock against the time of the
//! check:
//! - a cycle completed within 2 collection intervals (a stuck or crashed
//!   cycle thread is a liveness failure);
//! - when the agent exports, an export succeeded within N export intervals
//!   (N = `--health-export-intervals`); a collector that is down for a while
//!   makes the agent NOT_SERVING, and it recovers by itself on the next
//!   successful export.
//!
//! Before the first cycle or export, the agent's start time stands in for
//! it, which gives a starting agent the same grace as a running one.

use std::time::{Duration, SystemTime};

use super::{CycleInfo, ExportState};
use crate::snapshot::age;

/// Cycles may be this many intervals late before the agent is unhealthy.
pub const CYCLE_INTERVALS: u32 = 2;

/// The limits the agent is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Collection interval.
    pub interval: Duration,
    /// Export intervals without a successful export before NOT_SERVING.
    pub export_intervals: u32,
    /// When the agent started.
    pub start_time: SystemTime,
}

/// The outcome of a health evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// SERVING or not.
    pub serving: bool,
    /// Why, in words, for the operator reading a failed probe.
    pub reason: String,
}

impl HealthPolicy {
    /// Judges the agent at `now` from its last cycle and export state: the
    /// readiness verdict (cycles run and exports get through).
    pub fn evaluate(
        &self,
        now: SystemTime,
        cycle: Option<&CycleInfo>,
        export: &ExportState,
    ) -> Verdict {
        let cycle_part = match self.cycle_part(now, cycle) {
            Ok(part) => part,
            Err(failed) => return failed,
        };
        self.export_part(now, cycle_part, export)
    }

    /// The liveness verdict: only whether cycles run. A collector that is
    /// down makes the agent unready, but restarting the agent would not
    /// bring the collector back and would reset its counters, so it must not
    /// fail liveness.
    pub fn evaluate_liveness(&self, now: SystemTime, cycle: Option<&CycleInfo>) -> Verdict {
        match self.cycle_part(now, cycle) {
            Ok(reason) => Verdict {
                serving: true,
                reason,
            },
            Err(failed) => failed,
        }
    }

    /// The cycle condition: `Ok(description)` when met, `Err(verdict)` when not.
    fn cycle_part(&self, now: SystemTime, cycle: Option<&CycleInfo>) -> Result<String, Verdict> {
        let cycle_limit = self.interval.saturating_mul(CYCLE_INTERVALS);
        let cycle_part = match cycle {
            Some(c) => {
                let age = age(now, c.end_time);
                if age > cycle_limit {
                    return Err(Verdict {
                        serving: false,
                        reason: format!(
                            "no cycle completed for {} (limit {CYCLE_INTERVALS} × {})",
                            fmt_age(age),
                            fmt(self.interval)
                        ),
                    });
                }
                format!("last cycle {} ago", fmt_age(age))
            }
            None => {
                let age = age(now, self.start_time);
                if age > cycle_limit {
                    return Err(Verdict {
                        serving: false,
                        reason: format!(
                            "no cycle completed since the start {} ago (limit {CYCLE_INTERVALS} × {})",
                            fmt_age(age),
                            fmt(self.interval)
                        ),
                    });
                }
                "starting, no cycle yet".to_string()
            }
        };
        Ok(cycle_part)
    }

    /// The export condition, on top of a met cycle condition.
    fn export_part(&self, now: SystemTime, cycle_part: String, export: &ExportState) -> Verdict {
        if !export.enabled {
            return Verdict {
                serving: true,
                reason: format!("{cycle_part}; export disabled"),
            };
        }
        let export_limit = export.interval.saturating_mul(self.export_intervals);
        let last_error = export
            .last_attempt
            .as_ref()
            .and_then(|a| a.error.as_deref())
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default();
        let export_part = match export.last_success {
            Some(t) => {
                let age = age(now, t);
                if age > export_limit {
                    return Verdict {
                        serving: false,
                        reason: format!(
                            "no successful export for {} (limit {} × {}){last_error}",
                            fmt_age(age),
                            self.export_intervals,
                            fmt(export.interval)
                        ),
                    };
                }
                format!("last successful export {} ago{last_error}", fmt_age(age))
            }
            None => {
                let age = age(now, self.start_time);
                if age > export_limit {
                    return Verdict {
                        serving: false,
                        reason: format!(
                            "no successful export since the start {} ago (limit {} × {}){last_error}",
                            fmt_age(age),
                            self.export_intervals,
                            fmt(export.interval)
                        ),
                    };
                }
                format!("no successful export yet{last_error}")
            }
        };
        Verdict {
            serving: true,
            reason: format!("{cycle_part}; {export_part}"),
        }
    }
}

/// A configured duration for people, to the millisecond.
pub(crate) fn fmt(d: Duration) -> String {
    let ms = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if ms.is_zero() {
        "0s".to_string()
    } else {
        humantime::format_duration(ms).to_string()
    }
}

/// An age for people: milliseconds below a second, whole seconds above.
pub(crate) fn fmt_age(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        let secs = Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500));
        humantime::format_duration(secs).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::CollectErrors;

    const S: Duration = Duration::from_secs(1);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn policy() -> HealthPolicy {
        HealthPolicy {
            interval: 10 * S,
            export_intervals: 3,
            start_time: t(0),
        }
    }

    fn cycle(end: u64) -> CycleInfo {
        CycleInfo {
            end_time: t(end),
            duration: Duration::from_millis(5),
            count: 1,
            errors: CollectErrors::default(),
            tracked_processes: 1,
            node_cpu: None,
        }
    }

    fn export_ok_at(secs: u64) -> ExportState {
        let mut e = ExportState::enabled(10 * S);
        e.record(t(secs), Ok(()));
        e
    }

    #[test]
    fn fresh_cycle_and_export_serve() {
        let v = policy().evaluate(t(100), Some(&cycle(95)), &export_ok_at(80));
        assert!(v.serving, "{v:?}");
        assert!(v.reason.contains("last cycle 5s ago"), "{v:?}");
    }

    #[test]
    fn a_cycle_older_than_two_intervals_fails() {
        let v = policy().evaluate(t(100), Some(&cycle(79)), &export_ok_at(99));
        assert!(!v.serving);
        assert!(v.reason.contains("no cycle completed for 21s"), "{v:?}");
        let v = policy().evaluate(t(100), Some(&cycle(80)), &export_ok_at(99));
        assert!(v.serving, "exactly two intervals is still on time: {v:?}");
    }

    #[test]
    fn export_older_than_n_intervals_fails_with_the_last_error() {
        let mut e = export_ok_at(60);
        e.record(t(95), Err("transport error: connection refused".into()));
        let v = policy().evaluate(t(91), Some(&cycle(90)), &e);
        assert!(!v.serving, "31s > 3 × 10s: {v:?}");
        assert!(v.reason.contains("no successful export for 31s"), "{v:?}");
        assert!(v.reason.contains("connection refused"), "{v:?}");
        let v = policy().evaluate(t(90), Some(&cycle(90)), &e);
        assert!(v.serving, "{v:?}");
        e.record(t(100), Ok(()));
        let v = policy().evaluate(t(101), Some(&cycle(100)), &e);
        assert!(v.serving, "recovers on the next success: {v:?}");
        assert!(!v.reason.contains("last error"), "{v:?}");
    }

    #[test]
    fn start_time_gives_grace_before_the_first_cycle_and_export() {
        let e = ExportState::enabled(10 * S);
        let v = policy().evaluate(t(5), None, &e);
        assert!(v.serving, "{v:?}");
        let v = policy().evaluate(t(25), None, &e);
        assert!(!v.serving);
        assert!(v.reason.contains("no cycle completed since the start"));
        let v = policy().evaluate(t(31), Some(&cycle(30)), &e);
        assert!(!v.serving);
        assert!(v.reason.contains("no successful export since the start"));
    }

    #[test]
    fn liveness_ignores_the_export_but_not_the_cycles() {
        let mut e = export_ok_at(0);
        e.record(t(95), Err("connection refused".into()));
        assert!(!policy().evaluate(t(100), Some(&cycle(95)), &e).serving);
        let v = policy().evaluate_liveness(t(100), Some(&cycle(95)));
        assert!(v.serving, "{v:?}");
        let v = policy().evaluate_liveness(t(100), Some(&cycle(70)));
        assert!(!v.serving, "{v:?}");
        assert!(v.reason.contains("no cycle completed for 30s"), "{v:?}");
    }

    #[test]
    fn disabled_export_is_not_judged() {
        let v = policy().evaluate(t(1000), Some(&cycle(999)), &ExportState::disabled());
        assert!(v.serving, "{v:?}");
        assert!(v.reason.contains("export disabled"));
    }

    #[test]
    fn the_limit_follows_the_setting() {
        let p = HealthPolicy {
            export_intervals: 1,
            ..policy()
        };
        let v = p.evaluate(t(100), Some(&cycle(100)), &export_ok_at(85));
        assert!(!v.serving, "15s > 1 × 10s: {v:?}");
        assert!(
            policy()
                .evaluate(t(100), Some(&cycle(100)), &export_ok_at(85))
                .serving
        );
    }

    #[test]
    fn ages_round_to_seconds_and_limits_stay_exact() {
        assert_eq!(fmt_age(Duration::from_millis(8)), "8ms");
        assert_eq!(fmt_age(Duration::from_millis(1499)), "1s");
        assert_eq!(fmt_age(Duration::from_millis(3_600_700)), "1h 1s");
        assert_eq!(fmt(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(fmt(Duration::ZERO), "0s");
    }

    #[test]
    fn a_clock_going_backwards_is_no_age() {
        let v = policy().evaluate(t(10), Some(&cycle(50)), &export_ok_at(50));
        assert!(v.serving, "{v:?}");
    }
}
