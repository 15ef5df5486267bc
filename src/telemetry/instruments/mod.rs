//! Observable instruments over the latest snapshot: one per metric of the
//! catalogue. Each callback loads the current `Arc<Snapshot>` and observes
//! it; nothing else. The callbacks run on the SDK's reader thread, where I/O
//! would delay every export and a panic would stop exports for good, so they
//! do no I/O, take no lock that is held across I/O, and use no operation that
//! can panic (numbers are converted with saturation).
//!
//! Counters are observed as the grouper's totals (cumulative since the agent
//! started, never decreasing); every known group is observed on every
//! collection, including groups that have become empty, so that the SDK never
//! forgets a series and a delta exporter never double-counts.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, AsyncInstrumentBuilder, Meter};

use crate::proc::{Counts, Group};
use crate::snapshot::{Snapshot, SnapshotCell, unix_seconds};

use super::catalogue::{self as cat, MetricSpec, attr};

/// Which optional instruments to register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstrumentOptions {
    /// Register the `procgroup.thread_name.*` metrics (thread detail is on).
    pub threads: bool,
    /// Register the `procgroup.memory.proportional*` metrics (smaps is on).
    pub smaps: bool,
}

/// One counter split in two by an attribute (user/system, read/write, ...).
struct Split<T: 'static> {
    key: &'static str,
    values: fn(&Counts) -> [(&'static str, T); 2],
}

const CPU: Split<f64> = Split {
    key: attr::CPU_MODE,
    values: |c| {
        [
            (attr::CPU_MODE_USER, c.cpu_user_time),
            (attr::CPU_MODE_SYSTEM, c.cpu_system_time),
        ]
    },
};

const DISK: Split<u64> = Split {
    key: attr::DISK_IO_DIRECTION,
    values: |c| {
        [
            (attr::DISK_IO_READ, c.read_bytes),
            (attr::DISK_IO_WRITE, c.write_bytes),
        ]
    },
};

const FAULTS: Split<u64> = Split {
    key: attr::PAGING_FAULT_TYPE,
    values: |c| {
        [
            (attr::PAGING_FAULT_MAJOR, c.major_page_faults),
            (attr::PAGING_FAULT_MINOR, c.minor_page_faults),
        ]
    },
};

const SWITCHES: Split<u64> = Split {
    key: attr::CONTEXT_SWITCH_TYPE,
    values: |c| {
        [
            (attr::CONTEXT_SWITCH_VOLUNTARY, c.ctx_switch_voluntary),
            (attr::CONTEXT_SWITCH_INVOLUNTARY, c.ctx_switch_nonvoluntary),
        ]
    },
};

/// Registers every instrument of the catalogue that `options` asks for, plus
/// the agent's own metrics, all reading `cell`. The callbacks live as long as
/// the meter provider.
pub fn register(meter: &Meter, cell: &SnapshotCell, options: InstrumentOptions) {
    updown(meter, cat::PROCESSES, cell, |g| g.procs);
    f64_split(meter, cat::CPU_TIME, cell, CPU, Per::Group);
    u64_split(meter, cat::DISK_IO, cell, DISK, Per::Group);
    u64_split(meter, cat::PAGING_FAULTS, cell, FAULTS, Per::Group);
    u64_split(meter, cat::CONTEXT_SWITCHES, cell, SWITCHES, Per::Group);
    updown(meter, cat::MEMORY_USAGE, cell, |g| g.memory.resident_bytes);
    updown(meter, cat::MEMORY_VIRTUAL, cell, |g| g.memory.virtual_bytes);
    updown(meter, cat::MEMORY_SWAP, cell, |g| g.memory.swap_bytes);
    if options.smaps {
        updown(meter, cat::MEMORY_PROPORTIONAL, cell, |g| {
            g.memory.proportional_bytes
        });
        updown(meter, cat::MEMORY_PROPORTIONAL_SWAP, cell, |g| {
            g.memory.proportional_swap_bytes
        });
    }
    updown(meter, cat::FD_COUNT, cell, |g| g.open_fds);
    fd_utilization(meter, cell);
    updown(meter, cat::THREAD_COUNT, cell, |g| g.num_threads);
    oldest_start_time(meter, cell);
    states(meter, cell);
    wchans(meter, cell);
    if options.threads {
        thread_counts(meter, cell);
        let per = Per::ThreadName;
        f64_split(meter, cat::THREAD_NAME_CPU_TIME, cell, CPU, per);
        u64_split(meter, cat::THREAD_NAME_DISK_IO, cell, DISK, per);
        u64_split(meter, cat::THREAD_NAME_PAGING_FAULTS, cell, FAULTS, per);
        u64_split(
            meter,
            cat::THREAD_NAME_CONTEXT_SWITCHES,
            cell,
            SWITCHES,
            per,
        );
    }
    self_metrics(meter, cell);
}

/// The one place an instrument gets the catalogue's unit and description,
/// and its callback; the caller picks the instrument kind and builds it.
fn described<'a, I, M>(
    builder: AsyncInstrumentBuilder<'a, I, M>,
    spec: MetricSpec,
    callback: impl Fn(&dyn AsyncInstrument<M>) + Send + Sync + 'static,
) -> AsyncInstrumentBuilder<'a, I, M> {
    builder
        .with_unit(spec.unit)
        .with_description(spec.description)
        .with_callback(callback)
}

/// `u64` → `i64` for up-down counters, saturating instead of wrapping.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn group_attr(name: &str) -> KeyValue {
    KeyValue::new(attr::GROUP_NAME, name.to_owned())
}

/// Calls `f` with each group of the latest snapshot and its name attribute.
fn each_group(cell: &SnapshotCell, mut f: impl FnMut(&Group, KeyValue)) {
    let snapshot = cell.load();
    for (name, group) in &snapshot.groups {
        f(group, group_attr(name));
    }
}

fn updown(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, value: fn(&Group) -> u64) {
    let cell = cell.clone();
    described(
        meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| {
            each_group(&cell, |g, name| obs.observe(signed(value(g)), &[name]));
        },
    )
    .build();
}

fn observe_split<T: Copy>(
    obs: &dyn AsyncInstrument<T>,
    split: &Split<T>,
    counts: &Counts,
    base: &[KeyValue],
) {
    for (value_name, v) in (split.values)(counts) {
        let mut attrs = base.to_vec();
        attrs.push(KeyValue::new(split.key, value_name));
        obs.observe(v, &attrs);
    }
}

/// Whose counts a split counter observes.
#[derive(Clone, Copy)]
enum Per {
    /// Each group's.
    Group,
    /// Each thread name's within each group.
    ThreadName,
}

/// The callback of a counter split by `split`, per group or per thread name.
fn split_callback<T: Copy + Send + Sync + 'static>(
    cell: &SnapshotCell,
    split: Split<T>,
    per: Per,
) -> impl Fn(&dyn AsyncInstrument<T>) + Send + Sync + 'static {
    let cell = cell.clone();
    move |obs| {
        each_group(&cell, |g, name| match per {
            Per::Group => observe_split(obs, &split, &g.counts, &[name]),
            Per::ThreadName => {
                for t in &g.threads {
                    let base = [
                        name.clone(),
                        KeyValue::new(attr::THREAD_NAME, t.name.clone()),
                    ];
                    observe_split(obs, &split, &t.counts, &base);
                }
            }
        });
    }
}

fn f64_split(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, split: Split<f64>, per: Per) {
    described(
        meter.f64_observable_counter(spec.name),
        spec,
        split_callback(cell, split, per),
    )
    .build();
}

fn u64_split(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, split: Split<u64>, per: Per) {
    described(
        meter.u64_observable_counter(spec.name),
        spec,
        split_callback(cell, split, per),
    )
    .build();
}

fn thread_counts(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::THREAD_NAME_COUNT;
    described(
        meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| {
            each_group(&cell, |g, name| {
                for t in &g.threads {
                    obs.observe(
                        signed(t.num_threads),
                        &[
                            name.clone(),
                            KeyValue::new(attr::THREAD_NAME, t.name.clone()),
                        ],
                    );
                }
            });
        },
    )
    .build();
}

fn fd_utilization(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::FD_LIMIT_UTILIZATION;
    described(meter.f64_observable_gauge(spec.name), spec, move |obs| {
        each_group(&cell, |g, name| {
            let ratio = if g.procs == 0 || !g.worst_fd_ratio.is_finite() {
                0.0
            } else {
                g.worst_fd_ratio
            };
            obs.observe(ratio, &[name]);
        });
    })
    .build();
}

fn oldest_start_time(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::OLDEST_START_TIME;
    described(meter.f64_observable_gauge(spec.name), spec, move |obs| {
        each_group(&cell, |g, name| {
            // An empty group has no oldest process: no point at all,
            // rather than a misleading 0 (1970) or a stale time.
            if g.procs > 0
                && let Some(secs) = g.oldest_start_time.and_then(unix_seconds)
            {
                obs.observe(secs, &[name]);
            }
        });
    })
    .build();
}

fn states(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::STATE_COUNT;
    described(
        meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| {
            each_group(&cell, |g, name| {
                let s = &g.states;
                let values = [s.running, s.sleeping, s.waiting, s.zombie, s.other];
                for (state, v) in attr::PROCESS_STATES.iter().zip(values) {
                    obs.observe(
                        signed(v),
                        &[name.clone(), KeyValue::new(attr::PROCESS_STATE, *state)],
                    );
                }
            });
        },
    )
    .build();
}

fn wchans(meter: &Meter, cell: &SnapshotCell) {
    let cell = cell.clone();
    let spec = cat::WCHAN_COUNT;
    described(
        meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| {
            each_group(&cell, |g, name| {
                for (wchan, n) in &g.wchans {
                    obs.observe(
                        signed(*n),
                        &[name.clone(), KeyValue::new(attr::WCHAN, wchan.clone())],
                    );
                }
            });
        },
    )
    .build();
}

fn self_metrics(meter: &Meter, cell: &SnapshotCell) {
    let c = cell.clone();
    let spec = cat::COLLECT_DURATION;
    described(meter.f64_observable_gauge(spec.name), spec, move |obs| {
        let snapshot = c.load();
        if snapshot.taken_at.is_some() {
            obs.observe(snapshot.cycle_duration.as_secs_f64(), &[]);
        }
    })
    .build();

    let c = cell.clone();
    let spec = cat::COLLECT_ERRORS;
    described(meter.u64_observable_counter(spec.name), spec, move |obs| {
        let snapshot = c.load();
        obs.observe(
            snapshot.errors.read,
            &[KeyValue::new(attr::ERROR_TYPE, attr::ERROR_READ)],
        );
        obs.observe(
            snapshot.errors.partial,
            &[KeyValue::new(attr::ERROR_TYPE, attr::ERROR_PARTIAL)],
        );
    })
    .build();

    self_updown(meter, cat::TRACKED_PROCESSES, cell, |s| s.tracked_processes);
    self_updown(meter, cat::GROUPS, cell, Snapshot::group_count);

    let c = cell.clone();
    let spec = cat::ACCOUNTING_MODE;
    described(meter.f64_observable_gauge(spec.name), spec, move |obs| {
        let snapshot = c.load();
        if snapshot.taken_at.is_some() {
            let mode = snapshot.accounting.mode.as_str();
            obs.observe(1.0, &[KeyValue::new(attr::ACCOUNTING_MODE, mode)]);
        }
    })
    .build();
}

fn self_updown(meter: &Meter, spec: MetricSpec, cell: &SnapshotCell, value: fn(&Snapshot) -> u64) {
    let cell = cell.clone();
    described(
        meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| obs.observe(signed(value(&cell.load())), &[]),
    )
    .build();
}

#[cfg(test)]
mod tests;
