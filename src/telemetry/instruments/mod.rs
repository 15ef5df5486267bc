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

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, AsyncInstrumentBuilder, Meter};

use crate::exits::ListenerStats;
use crate::proc::{Counts, Group};
use crate::snapshot::{NodeCpu, Snapshot, SnapshotCell, unix_seconds};

use super::catalogue::{self as cat, Family, Kind, MetricSpec, MetricTable};

/// Which optional instruments to register, and under which names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstrumentOptions {
    /// Register the thread-name metrics (thread detail is on).
    pub threads: bool,
    /// Register the proportional memory values (smaps is on).
    pub smaps: bool,
    /// The names, units and attributes ([`cat::OTEL`] by default).
    pub table: &'static MetricTable,
}

impl Default for InstrumentOptions {
    fn default() -> Self {
        InstrumentOptions {
            threads: false,
            smaps: false,
            table: &cat::OTEL,
        }
    }
}

fn cpu(c: &Counts) -> [f64; 2] {
    [c.cpu_user_time, c.cpu_system_time]
}

fn disk(c: &Counts) -> [u64; 2] {
    [c.read_bytes, c.write_bytes]
}

fn faults(c: &Counts) -> [u64; 2] {
    [c.major_page_faults, c.minor_page_faults]
}

fn switches(c: &Counts) -> [u64; 2] {
    [c.ctx_switch_voluntary, c.ctx_switch_nonvoluntary]
}

/// Every group's counts of this kind are measurements.
fn always(_: &Group) -> bool {
    true
}

/// A group whose I/O could never be read is left out of the I/O counters
/// rather than observed as a made-up 0: its series starts once something is
/// known, and a cumulative counter that then starts from the total is still
/// right.
fn io_known(g: &Group) -> bool {
    g.io_known
}

fn memory(g: &Group) -> [u64; 5] {
    let m = &g.memory;
    [
        m.resident_bytes,
        m.virtual_bytes,
        m.swap_bytes,
        m.proportional_bytes,
        m.proportional_swap_bytes,
    ]
}

fn states(g: &Group) -> [u64; 5] {
    let s = &g.states;
    [s.running, s.sleeping, s.waiting, s.zombie, s.other]
}

/// Registers every instrument of `options.table` that `options` asks for,
/// plus the agent's own metrics, all reading `cell`. The callbacks live as
/// long as the meter provider.
pub fn register(meter: &Meter, cell: &SnapshotCell, options: InstrumentOptions) {
    let t = options.table;
    let r = Registrar { meter, cell, t };
    r.per_group(t.processes, |g| g.procs);
    r.counts(t.cpu_time, Per::Group, cpu, always);
    r.counts(t.disk_io, Per::Group, disk, io_known);
    r.counts(t.paging_faults, Per::Group, faults, always);
    r.counts(t.context_switches, Per::Group, switches, always);
    // The proportional sizes come last in the family: without smaps they
    // are not read, so not exported.
    let memory_values = if options.smaps { 5 } else { 3 };
    r.group_family(t.memory, memory_values, memory);
    r.per_group(t.fd_count, |g| g.open_fds);
    fd_utilization(&r);
    r.per_group(t.thread_count, |g| g.num_threads);
    oldest_start_time(&r);
    r.group_family(t.states, 5, states);
    wchans(&r);
    if options.threads {
        thread_counts(&r);
        let per = Per::ThreadName;
        r.counts(t.thread_name_cpu_time, per, cpu, always);
        r.counts(t.thread_name_disk_io, per, disk, io_known);
        r.counts(t.thread_name_paging_faults, per, faults, always);
        r.counts(t.thread_name_context_switches, per, switches, always);
    }
    self_metrics(&r);
}

/// What every registration needs.
struct Registrar<'a> {
    meter: &'a Meter,
    cell: &'a SnapshotCell,
    t: &'static MetricTable,
}

/// Emits one value with its attributes.
type Emit<'a, T> = dyn FnMut(T, &[KeyValue]) + 'a;

/// What an instrument's callback does: load the snapshot and emit points.
type Observe<T> = Arc<dyn Fn(&mut Emit<'_, T>) + Send + Sync>;

/// Calls its argument with each point's attributes and family values.
type Points<T, const N: usize> =
    Arc<dyn Fn(&Snapshot, &mut dyn FnMut(&[KeyValue], [T; N])) + Send + Sync>;

/// Receives each group and its name attribute.
type EachGroup<'a> = dyn FnMut(&Group, &[KeyValue]) + 'a;

/// A group's attributes: its name under `key`, and, for a group split by
/// container, the container's OpenTelemetry attributes (those known). A
/// key with no container part (every key with the setting off) gives the
/// name alone.
fn group_attributes(key: &'static str, group: &str) -> Vec<KeyValue> {
    let (name, container) = crate::containers::split::decode(group);
    let mut attrs = Vec::with_capacity(1 + container.as_ref().map_or(0, |_| 5));
    attrs.push(KeyValue::new(key, name.to_string()));
    if let Some(c) = container {
        attrs.extend(c.pairs().map(|(k, v)| KeyValue::new(k, v.to_string())));
    }
    attrs
}

/// A value type and the instruments of each [`Kind`] that observe it.
trait Value: Copy + Send + Sync + 'static {
    fn build(meter: &Meter, spec: MetricSpec, kind: Kind, observe: Observe<Self>);
}

impl Value for f64 {
    fn build(meter: &Meter, spec: MetricSpec, kind: Kind, observe: Observe<f64>) {
        let callback = move |obs: &dyn AsyncInstrument<f64>| observe(&mut |v, a| obs.observe(v, a));
        match kind {
            Kind::Counter => {
                described(meter.f64_observable_counter(spec.name), spec, callback).build();
            }
            Kind::UpDown => {
                described(
                    meter.f64_observable_up_down_counter(spec.name),
                    spec,
                    callback,
                )
                .build();
            }
        }
    }
}

impl Value for u64 {
    fn build(meter: &Meter, spec: MetricSpec, kind: Kind, observe: Observe<u64>) {
        match kind {
            Kind::Counter => {
                let callback = move |obs: &dyn AsyncInstrument<u64>| {
                    observe(&mut |v, a| obs.observe(v, a));
                };
                described(meter.u64_observable_counter(spec.name), spec, callback).build();
            }
            Kind::UpDown => {
                let callback = move |obs: &dyn AsyncInstrument<i64>| {
                    observe(&mut |v, a| obs.observe(signed(v), a));
                };
                described(
                    meter.i64_observable_up_down_counter(spec.name),
                    spec,
                    callback,
                )
                .build();
            }
        }
    }
}

impl Registrar<'_> {
    /// Registers `family`'s first `used` values, whose points `points`
    /// gives: one instrument with an attribute per value (split), or one
    /// instrument per value (separate).
    fn family<T: Value, const N: usize>(
        &self,
        family: Family<N>,
        used: usize,
        kind: Kind,
        points: Points<T, N>,
    ) {
        let used = used.min(N);
        match family {
            Family::Split { spec, key, values } => {
                let cell = self.cell.clone();
                let observe: Observe<T> = Arc::new(move |emit| {
                    points(&cell.load(), &mut |base, vals| {
                        for (value_name, v) in values.iter().zip(vals).take(used) {
                            let mut attrs = base.to_vec();
                            attrs.push(KeyValue::new(key, *value_name));
                            emit(v, &attrs);
                        }
                    });
                });
                T::build(self.meter, spec, kind, observe);
            }
            Family::Separate(specs) => {
                for (i, spec) in specs.into_iter().enumerate().take(used) {
                    let cell = self.cell.clone();
                    let points = points.clone();
                    let observe: Observe<T> = Arc::new(move |emit| {
                        points(&cell.load(), &mut |base, vals| emit(vals[i], base));
                    });
                    T::build(self.meter, spec, kind, observe);
                }
            }
        }
    }

    /// A family of counters over each group's counts, or each thread
    /// name's within each group; only groups whose values are `known`.
    fn counts<T: Value, const N: usize>(
        &self,
        family: Family<N>,
        per: Per,
        values: fn(&Counts) -> [T; N],
        known: fn(&Group) -> bool,
    ) {
        let (group_key, thread_key) = (self.t.group_name, self.t.thread_name);
        let points: Points<T, N> = Arc::new(move |snapshot, emit| {
            for (name, g) in snapshot.groups.iter().filter(|(_, g)| known(g)) {
                let group = group_attributes(group_key, name);
                match per {
                    Per::Group => emit(&group, values(&g.counts)),
                    Per::ThreadName => {
                        for t in &g.threads {
                            let mut attrs = group.clone();
                            attrs.push(KeyValue::new(thread_key, t.name.clone()));
                            emit(&attrs, values(&t.counts));
                        }
                    }
                }
            }
        });
        self.family(family, N, Kind::Counter, points);
    }

    /// A family of up-down counters over each group.
    fn group_family<const N: usize>(
        &self,
        family: Family<N>,
        used: usize,
        values: impl Fn(&Group) -> [u64; N] + Send + Sync + 'static,
    ) {
        let group_key = self.t.group_name;
        let points: Points<u64, N> = Arc::new(move |snapshot, emit| {
            for (name, g) in &snapshot.groups {
                emit(&group_attributes(group_key, name), values(g));
            }
        });
        self.family(family, used, Kind::UpDown, points);
    }

    /// One up-down counter over each group.
    fn per_group(&self, spec: MetricSpec, value: fn(&Group) -> u64) {
        self.group_family(Family::Separate([spec]), 1, move |g| [value(g)]);
    }

    /// A function that calls its argument with each group of the latest
    /// snapshot and its name attribute.
    fn each_group(&self) -> impl Fn(&mut EachGroup<'_>) + Send + Sync + 'static {
        let cell = self.cell.clone();
        let key = self.t.group_name;
        move |f| {
            let snapshot = cell.load();
            for (name, group) in &snapshot.groups {
                f(group, &group_attributes(key, name));
            }
        }
    }
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

/// Whose counts a split counter observes.
#[derive(Clone, Copy)]
enum Per {
    /// Each group's.
    Group,
    /// Each thread name's within each group.
    ThreadName,
}

fn thread_counts(r: &Registrar<'_>) {
    let each = r.each_group();
    let (spec, key) = (r.t.thread_name_count, r.t.thread_name);
    described(
        r.meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| {
            each(&mut |g, name| {
                for t in &g.threads {
                    let mut attrs = name.to_vec();
                    attrs.push(KeyValue::new(key, t.name.clone()));
                    obs.observe(signed(t.num_threads), &attrs);
                }
            });
        },
    )
    .build();
}

fn fd_utilization(r: &Registrar<'_>) {
    let each = r.each_group();
    let spec = r.t.fd_limit_utilization;
    described(r.meter.f64_observable_gauge(spec.name), spec, move |obs| {
        each(&mut |g, name| {
            let ratio = if g.procs == 0 || !g.worst_fd_ratio.is_finite() {
                0.0
            } else {
                g.worst_fd_ratio
            };
            obs.observe(ratio, name);
        });
    })
    .build();
}

fn oldest_start_time(r: &Registrar<'_>) {
    let each = r.each_group();
    let spec = r.t.oldest_start_time;
    described(r.meter.f64_observable_gauge(spec.name), spec, move |obs| {
        each(&mut |g, name| {
            // An empty group has no oldest process: no point at all,
            // rather than a misleading 0 (1970) or a stale time.
            if g.procs > 0
                && let Some(secs) = g.oldest_start_time.and_then(unix_seconds)
            {
                obs.observe(secs, name);
            }
        });
    })
    .build();
}

fn wchans(r: &Registrar<'_>) {
    let each = r.each_group();
    let (spec, key) = r.t.wchan;
    described(
        r.meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| {
            each(&mut |g, name| {
                for (wchan, n) in &g.wchans {
                    let mut attrs = name.to_vec();
                    attrs.push(KeyValue::new(key, wchan.clone()));
                    obs.observe(signed(*n), &attrs);
                }
            });
        },
    )
    .build();
}

fn self_metrics(r: &Registrar<'_>) {
    let c = r.cell.clone();
    let spec = cat::COLLECT_DURATION;
    described(r.meter.f64_observable_gauge(spec.name), spec, move |obs| {
        let snapshot = c.load();
        if snapshot.taken_at.is_some() {
            obs.observe(snapshot.cycle_duration.as_secs_f64(), &[]);
        }
    })
    .build();

    let points: Points<u64, 2> = Arc::new(|snapshot, emit| {
        emit(&[], [snapshot.errors.read, snapshot.errors.partial]);
    });
    r.family(r.t.errors, 2, r.t.errors_kind, points);

    self_updown(r, cat::TRACKED_PROCESSES, |s| s.tracked_processes);
    self_updown(r, cat::GROUPS, Snapshot::group_count);
    node_cpu(r, cat::NODE_CPU_TIME, |n| n.node_seconds_total);
    node_cpu(r, cat::UNATTRIBUTED_CPU_TIME, |n| {
        n.unattributed_seconds_total
    });

    let c = r.cell.clone();
    let spec = cat::ACCOUNTING_MODE;
    described(r.meter.f64_observable_gauge(spec.name), spec, move |obs| {
        let snapshot = c.load();
        if snapshot.taken_at.is_some() {
            let mode = snapshot.accounting.mode.as_str();
            obs.observe(1.0, &[KeyValue::new(cat::attr::ACCOUNTING_MODE, mode)]);
        }
    })
    .build();

    exit_counter(r, cat::EXIT_RECORDS, |s| s.records);
    exit_counter(r, cat::EXIT_OVERFLOWS, |s| s.overflows);
    exit_counter(r, cat::EXIT_OUTAGES, |s| s.outages);
    exit_counter(r, cat::EXIT_MALFORMED, |s| s.malformed);
}

/// A counter of the exit listener; nothing is observed outside the
/// taskstats mode (no listener runs).
fn exit_counter(r: &Registrar<'_>, spec: MetricSpec, value: fn(&ListenerStats) -> u64) {
    let cell = r.cell.clone();
    described(
        r.meter.u64_observable_counter(spec.name),
        spec,
        move |obs| {
            if let Some(s) = &cell.load().exit_listener {
                obs.observe(value(s), &[]);
            }
        },
    )
    .build();
}

/// A counter of the node's CPU accounting; nothing is observed while the
/// snapshot has none (before the first cycle, or a source without the
/// node's totals).
fn node_cpu(r: &Registrar<'_>, spec: MetricSpec, value: fn(&NodeCpu) -> f64) {
    let cell = r.cell.clone();
    described(
        r.meter.f64_observable_counter(spec.name),
        spec,
        move |obs| {
            if let Some(n) = &cell.load().node_cpu {
                obs.observe(value(n), &[]);
            }
        },
    )
    .build();
}

fn self_updown(r: &Registrar<'_>, spec: MetricSpec, value: fn(&Snapshot) -> u64) {
    let cell = r.cell.clone();
    described(
        r.meter.i64_observable_up_down_counter(spec.name),
        spec,
        move |obs| obs.observe(signed(value(&cell.load())), &[]),
    )
    .build();
}

#[cfg(test)]
mod tests;
