//! The metric catalogue: every metric name, unit, description and attribute
//! key the agent exports, in one place. Instruments, tests and documentation
//! all refer to these constants, so a name is spelled exactly once.
//!
//! Names follow the semantic-convention style under the `procgroup.`
//! namespace (not `process.*`: those describe one process, ours are sums
//! over a group); the attribute keys and values are the semantic-convention
//! ones where one exists (`cpu.mode`, `disk.io.direction`, ...). The agent's
//! own health lives under `procgroups.`.
//!
//! The same data can also be exported under process-exporter's names: the
//! [`MetricTable`]s [`OTEL`] and [`PROCESS_EXPORTER`] (kept in
//! [`process_exporter`]) say, side by side, which metric, unit, kind and
//! attribute each family of values goes to. The process-exporter table is chosen so that an OpenTelemetry
//! Collector's Prometheus exporter, with its default translation (dots to
//! underscores, a unit suffix unless the name already holds it, `_total` on
//! monotonic sums, `_ratio` on gauges of unit `1`, annotations in braces
//! dropped), produces process-exporter's series exactly: its names are
//! already in their final form, so that no suffix is added twice.

/// Name, unit and description of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    /// Metric name.
    pub name: &'static str,
    /// UCUM unit.
    pub unit: &'static str,
    /// One line for the backend's metric browser.
    pub description: &'static str,
}

const fn spec(name: &'static str, unit: &'static str, description: &'static str) -> MetricSpec {
    MetricSpec {
        name,
        unit,
        description,
    }
}

/// Number of processes in the group.
pub const PROCESSES: MetricSpec =
    spec("procgroup.processes", "{process}", "Processes in the group");
/// CPU time of the group, by `cpu.mode`.
pub const CPU_TIME: MetricSpec = spec(
    "procgroup.cpu.time",
    "s",
    "CPU time used by the group's processes since the agent started",
);
/// Storage I/O of the group, by `disk.io.direction`.
pub const DISK_IO: MetricSpec = spec(
    "procgroup.disk.io",
    "By",
    "Bytes read from and written to storage by the group since the agent started",
);
/// Page faults of the group, by `system.paging.fault.type`.
pub const PAGING_FAULTS: MetricSpec = spec(
    "procgroup.paging.faults",
    "{fault}",
    "Page faults of the group since the agent started",
);
/// Context switches of the group, by `process.context_switch.type`.
pub const CONTEXT_SWITCHES: MetricSpec = spec(
    "procgroup.context_switches",
    "{context_switch}",
    "Context switches of the group since the agent started",
);
/// Resident memory of the group.
pub const MEMORY_USAGE: MetricSpec = spec(
    "procgroup.memory.usage",
    "By",
    "Resident memory of the group's processes",
);
/// Virtual memory of the group.
pub const MEMORY_VIRTUAL: MetricSpec = spec(
    "procgroup.memory.virtual",
    "By",
    "Virtual memory of the group's processes",
);
/// Swapped-out memory of the group.
pub const MEMORY_SWAP: MetricSpec = spec(
    "procgroup.memory.swap",
    "By",
    "Swapped-out memory of the group's processes",
);
/// Proportional set size of the group (smaps only).
pub const MEMORY_PROPORTIONAL: MetricSpec = spec(
    "procgroup.memory.proportional",
    "By",
    "Proportional resident memory (PSS) of the group's processes",
);
/// Proportional swap of the group (smaps only).
pub const MEMORY_PROPORTIONAL_SWAP: MetricSpec = spec(
    "procgroup.memory.proportional_swap",
    "By",
    "Proportional swap (SwapPss) of the group's processes",
);
/// Open file descriptors of the group.
pub const FD_COUNT: MetricSpec = spec(
    "procgroup.unix.file_descriptor.count",
    "{file_descriptor}",
    "Open file descriptors of the group's processes",
);
/// Worst open/soft-limit ratio over the group's processes.
pub const FD_LIMIT_UTILIZATION: MetricSpec = spec(
    "procgroup.unix.file_descriptor.limit_utilization",
    "1",
    "Highest ratio of open file descriptors to the soft limit among the group's processes",
);
/// Threads of the group.
pub const THREAD_COUNT: MetricSpec = spec(
    "procgroup.thread.count",
    "{thread}",
    "Threads of the group's processes",
);
/// Start time of the group's oldest process (absent for an empty group).
pub const OLDEST_START_TIME: MetricSpec = spec(
    "procgroup.oldest_start_time",
    "s",
    "Start time of the group's oldest process, Unix seconds",
);
/// Threads by scheduler state, by `process.state`.
pub const STATE_COUNT: MetricSpec = spec(
    "procgroup.state.count",
    "{thread}",
    "Threads of the group by scheduler state",
);
/// Threads by kernel wait channel, by `procgroup.wchan`.
pub const WCHAN_COUNT: MetricSpec = spec(
    "procgroup.wchan.count",
    "{thread}",
    "Threads of the group by kernel wait channel",
);
/// Threads by thread name, by `thread.name`.
pub const THREAD_NAME_COUNT: MetricSpec = spec(
    "procgroup.thread_name.count",
    "{thread}",
    "Threads of the group by thread name",
);
/// CPU time by thread name and `cpu.mode`.
pub const THREAD_NAME_CPU_TIME: MetricSpec = spec(
    "procgroup.thread_name.cpu.time",
    "s",
    "CPU time of the group's threads by thread name since the agent started",
);
/// Storage I/O by thread name and `disk.io.direction`.
pub const THREAD_NAME_DISK_IO: MetricSpec = spec(
    "procgroup.thread_name.disk.io",
    "By",
    "Storage bytes of the group's threads by thread name since the agent started",
);
/// Page faults by thread name and `system.paging.fault.type`.
pub const THREAD_NAME_PAGING_FAULTS: MetricSpec = spec(
    "procgroup.thread_name.paging.faults",
    "{fault}",
    "Page faults of the group's threads by thread name since the agent started",
);
/// Context switches by thread name and `process.context_switch.type`.
pub const THREAD_NAME_CONTEXT_SWITCHES: MetricSpec = spec(
    "procgroup.thread_name.context_switches",
    "{context_switch}",
    "Context switches of the group's threads by thread name since the agent started",
);

/// Duration of the last collection cycle.
pub const COLLECT_DURATION: MetricSpec = spec(
    "procgroups.collect.duration",
    "s",
    "Duration of the agent's last collection cycle",
);
/// Collection errors since the agent started, by `error.type`.
pub const COLLECT_ERRORS: MetricSpec = spec(
    "procgroups.collect.errors",
    "{error}",
    "Processes the agent could not read (read) or read only in part (partial)",
);
/// Processes the agent tracks in a group.
pub const TRACKED_PROCESSES: MetricSpec = spec(
    "procgroups.tracked.processes",
    "{process}",
    "Processes the agent tracks in some group",
);
/// The exit accounting in force: 1, with the mode as `procgroups.accounting.mode`.
pub const ACCOUNTING_MODE: MetricSpec = spec(
    "procgroups.accounting.mode",
    "1",
    "Exit accounting in force (taskstats or children), as the attribute of a point of value 1",
);
/// Groups the agent reports.
pub const GROUPS: MetricSpec = spec("procgroups.groups", "{group}", "Groups the agent reports");

/// The node's CPU time (user + nice + system of `/proc/stat`) since the
/// agent's first cycle: the whole that the groups' CPU is a part of.
pub const NODE_CPU_TIME: MetricSpec = spec(
    "procgroups.node.cpu.time",
    "s",
    "CPU time the node used (user, nice and system) since the agent's first cycle",
);
/// The node's CPU time that no group accounts for: what the rules leave out,
/// kernel work charged to no process, and what sampling missed.
pub const UNATTRIBUTED_CPU_TIME: MetricSpec = spec(
    "procgroups.unattributed.cpu.time",
    "s",
    "CPU time the node used since the agent's first cycle that no group accounts for",
);

/// Exit records received from taskstats (the taskstats mode only).
pub const EXIT_RECORDS: MetricSpec = spec(
    "procgroups.exits.records",
    "{record}",
    "Taskstats exit records the agent received",
);
/// Receives that failed because the socket buffer was full: the kernel
/// dropped records, whose exits are then counted only by the reapers'
/// children totals, if at all.
pub const EXIT_OVERFLOWS: MetricSpec = spec(
    "procgroups.exits.overflows",
    "{overflow}",
    "Receives of exit records that found the socket buffer overflowed (records dropped)",
);
/// Runs of consecutive overflows, each logged once.
pub const EXIT_OUTAGES: MetricSpec = spec(
    "procgroups.exits.outages",
    "{outage}",
    "Runs of consecutive exit record overflows",
);
/// Exit record datagrams that could not be parsed (skipped).
pub const EXIT_MALFORMED: MetricSpec = spec(
    "procgroups.exits.malformed",
    "{datagram}",
    "Exit record datagrams that could not be parsed",
);

/// Every group metric, in table order (thread-name and smaps metrics
/// included; whether they are registered depends on the configuration).
pub const GROUP_METRICS: [MetricSpec; 21] = [
    PROCESSES,
    CPU_TIME,
    DISK_IO,
    PAGING_FAULTS,
    CONTEXT_SWITCHES,
    MEMORY_USAGE,
    MEMORY_VIRTUAL,
    MEMORY_SWAP,
    MEMORY_PROPORTIONAL,
    MEMORY_PROPORTIONAL_SWAP,
    FD_COUNT,
    FD_LIMIT_UTILIZATION,
    THREAD_COUNT,
    OLDEST_START_TIME,
    STATE_COUNT,
    WCHAN_COUNT,
    THREAD_NAME_COUNT,
    THREAD_NAME_CPU_TIME,
    THREAD_NAME_DISK_IO,
    THREAD_NAME_PAGING_FAULTS,
    THREAD_NAME_CONTEXT_SWITCHES,
];

/// The agent's own metrics.
pub const SELF_METRICS: [MetricSpec; 11] = [
    COLLECT_DURATION,
    COLLECT_ERRORS,
    TRACKED_PROCESSES,
    GROUPS,
    NODE_CPU_TIME,
    UNATTRIBUTED_CPU_TIME,
    ACCOUNTING_MODE,
    EXIT_RECORDS,
    EXIT_OVERFLOWS,
    EXIT_OUTAGES,
    EXIT_MALFORMED,
];

/// Attribute keys and their fixed values.
pub mod attr {
    /// The group name, on every group point.
    pub const GROUP_NAME: &str = "procgroup.name";
    /// CPU mode of `*.cpu.time`.
    pub const CPU_MODE: &str = "cpu.mode";
    /// `cpu.mode` value for user time.
    pub const CPU_MODE_USER: &str = "user";
    /// `cpu.mode` value for system time.
    pub const CPU_MODE_SYSTEM: &str = "system";
    /// Direction of `*.disk.io`.
    pub const DISK_IO_DIRECTION: &str = "disk.io.direction";
    /// `disk.io.direction` value for reads.
    pub const DISK_IO_READ: &str = "read";
    /// `disk.io.direction` value for writes.
    pub const DISK_IO_WRITE: &str = "write";
    /// Type of `*.paging.faults`.
    pub const PAGING_FAULT_TYPE: &str = "system.paging.fault.type";
    /// `system.paging.fault.type` value for major faults.
    pub const PAGING_FAULT_MAJOR: &str = "major";
    /// `system.paging.fault.type` value for minor faults.
    pub const PAGING_FAULT_MINOR: &str = "minor";
    /// Type of `*.context_switches`.
    pub const CONTEXT_SWITCH_TYPE: &str = "process.context_switch.type";
    /// `process.context_switch.type` value for voluntary switches.
    pub const CONTEXT_SWITCH_VOLUNTARY: &str = "voluntary";
    /// `process.context_switch.type` value for involuntary switches.
    pub const CONTEXT_SWITCH_INVOLUNTARY: &str = "involuntary";
    /// Scheduler state of `procgroup.state.count`.
    pub const PROCESS_STATE: &str = "process.state";
    /// The `process.state` values, in the order of [`crate::proc::States`].
    pub const PROCESS_STATES: [&str; 5] = ["running", "sleeping", "waiting", "zombie", "other"];
    /// Kernel wait channel of `procgroup.wchan.count`.
    pub const WCHAN: &str = "procgroup.wchan";
    /// Thread name of the `procgroup.thread_name.*` metrics.
    pub const THREAD_NAME: &str = "thread.name";
    /// Kind of error of `procgroups.collect.errors`.
    pub const ERROR_TYPE: &str = "error.type";
    /// `error.type` value for processes that could not be read.
    pub const ERROR_READ: &str = "read";
    /// `error.type` value for processes read only in part.
    pub const ERROR_PARTIAL: &str = "partial";
    /// Mode of `procgroups.accounting.mode`: `taskstats` or `children`.
    pub const ACCOUNTING_MODE: &str = "procgroups.accounting.mode";
}

/// Resource attribute keys.
pub mod resource {
    /// Logical service name.
    pub const SERVICE_NAME: &str = "service.name";
    /// Agent version.
    pub const SERVICE_VERSION: &str = "service.version";
    /// Host name of the node whose processes are read.
    pub const HOST_NAME: &str = "host.name";
    /// machine-id of the node.
    pub const HOST_ID: &str = "host.id";
    /// Kubernetes node name (from the downward API).
    pub const K8S_NODE_NAME: &str = "k8s.node.name";
    /// The default `service.name`.
    pub const DEFAULT_SERVICE_NAME: &str = "procgroups";
}

/// The Prometheus kind a sum becomes: a monotonic sum is a counter (and
/// gets `_total`), a non-monotonic one a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Observable counter (monotonic sum).
    Counter,
    /// Observable up-down counter (non-monotonic sum).
    UpDown,
}

/// Where a family of `N` related values of one subject goes (user and
/// system CPU time, the five memory sizes, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family<const N: usize> {
    /// One metric; the values are told apart by the attribute `key`.
    Split {
        /// The metric.
        spec: MetricSpec,
        /// Attribute key.
        key: &'static str,
        /// Attribute value of each value, in the family's order.
        values: [&'static str; N],
    },
    /// One metric per value, without an attribute.
    Separate([MetricSpec; N]),
}

impl<const N: usize> Family<N> {
    /// The metrics of the family.
    pub fn specs(&self) -> Vec<MetricSpec> {
        match self {
            Family::Split { spec, .. } => vec![*spec],
            Family::Separate(specs) => specs.to_vec(),
        }
    }
}

/// Which metric each value of a group goes to, and under which attribute
/// keys and values: one table per `--metric-names` setting. The values of a
/// family are always in the order its doc comment gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricTable {
    /// Attribute key of the group name, on every group point.
    pub group_name: &'static str,
    /// Attribute key of the thread name, on the thread-name metrics.
    pub thread_name: &'static str,
    /// Processes of the group.
    pub processes: MetricSpec,
    /// CPU time: user, system.
    pub cpu_time: Family<2>,
    /// Storage I/O: read, write.
    pub disk_io: Family<2>,
    /// Page faults: major, minor.
    pub paging_faults: Family<2>,
    /// Context switches: voluntary, involuntary.
    pub context_switches: Family<2>,
    /// Memory: resident, virtual, swapped, proportional resident,
    /// proportional swapped (the last two only with smaps).
    pub memory: Family<5>,
    /// Open file descriptors.
    pub fd_count: MetricSpec,
    /// Worst open/soft-limit ratio.
    pub fd_limit_utilization: MetricSpec,
    /// Threads.
    pub thread_count: MetricSpec,
    /// Start time of the oldest process.
    pub oldest_start_time: MetricSpec,
    /// Threads by scheduler state: running, sleeping, waiting, zombie, other.
    pub states: Family<5>,
    /// Threads by wait channel, and the attribute key of the channel.
    pub wchan: (MetricSpec, &'static str),
    /// Threads by thread name.
    pub thread_name_count: MetricSpec,
    /// CPU time by thread name: user, system.
    pub thread_name_cpu_time: Family<2>,
    /// Storage I/O by thread name: read, write.
    pub thread_name_disk_io: Family<2>,
    /// Page faults by thread name: major, minor.
    pub thread_name_paging_faults: Family<2>,
    /// Context switches by thread name: voluntary, involuntary.
    pub thread_name_context_switches: Family<2>,
    /// Collection errors: unreadable processes, partly read processes.
    pub errors: Family<2>,
    /// The kind of the error counts.
    pub errors_kind: Kind,
}

impl MetricTable {
    /// Every metric of the table, in table order (whether the thread-name
    /// and smaps ones are registered depends on the configuration).
    pub fn specs(&self) -> Vec<MetricSpec> {
        let mut out = vec![self.processes];
        for family in [
            self.cpu_time,
            self.disk_io,
            self.paging_faults,
            self.context_switches,
        ] {
            out.extend(family.specs());
        }
        out.extend(self.memory.specs());
        out.extend([
            self.fd_count,
            self.fd_limit_utilization,
            self.thread_count,
            self.oldest_start_time,
        ]);
        out.extend(self.states.specs());
        out.extend([self.wchan.0, self.thread_name_count]);
        for family in [
            self.thread_name_cpu_time,
            self.thread_name_disk_io,
            self.thread_name_paging_faults,
            self.thread_name_context_switches,
        ] {
            out.extend(family.specs());
        }
        out.extend(self.errors.specs());
        out
    }
}

const CPU_MODES: [&str; 2] = [attr::CPU_MODE_USER, attr::CPU_MODE_SYSTEM];
const DISK_IO_DIRECTIONS: [&str; 2] = [attr::DISK_IO_READ, attr::DISK_IO_WRITE];
const FAULT_TYPES: [&str; 2] = [attr::PAGING_FAULT_MAJOR, attr::PAGING_FAULT_MINOR];
const SWITCH_TYPES: [&str; 2] = [
    attr::CONTEXT_SWITCH_VOLUNTARY,
    attr::CONTEXT_SWITCH_INVOLUNTARY,
];

const fn split<const N: usize>(
    spec: MetricSpec,
    key: &'static str,
    values: [&'static str; N],
) -> Family<N> {
    Family::Split { spec, key, values }
}

/// The semantic-convention names (`--metric-names otel`, the default).
pub const OTEL: MetricTable = MetricTable {
    group_name: attr::GROUP_NAME,
    thread_name: attr::THREAD_NAME,
    processes: PROCESSES,
    cpu_time: split(CPU_TIME, attr::CPU_MODE, CPU_MODES),
    disk_io: split(DISK_IO, attr::DISK_IO_DIRECTION, DISK_IO_DIRECTIONS),
    paging_faults: split(PAGING_FAULTS, attr::PAGING_FAULT_TYPE, FAULT_TYPES),
    context_switches: split(CONTEXT_SWITCHES, attr::CONTEXT_SWITCH_TYPE, SWITCH_TYPES),
    memory: Family::Separate([
        MEMORY_USAGE,
        MEMORY_VIRTUAL,
        MEMORY_SWAP,
        MEMORY_PROPORTIONAL,
        MEMORY_PROPORTIONAL_SWAP,
    ]),
    fd_count: FD_COUNT,
    fd_limit_utilization: FD_LIMIT_UTILIZATION,
    thread_count: THREAD_COUNT,
    oldest_start_time: OLDEST_START_TIME,
    states: split(STATE_COUNT, attr::PROCESS_STATE, attr::PROCESS_STATES),
    wchan: (WCHAN_COUNT, attr::WCHAN),
    thread_name_count: THREAD_NAME_COUNT,
    thread_name_cpu_time: split(THREAD_NAME_CPU_TIME, attr::CPU_MODE, CPU_MODES),
    thread_name_disk_io: split(
        THREAD_NAME_DISK_IO,
        attr::DISK_IO_DIRECTION,
        DISK_IO_DIRECTIONS,
    ),
    thread_name_paging_faults: split(
        THREAD_NAME_PAGING_FAULTS,
        attr::PAGING_FAULT_TYPE,
        FAULT_TYPES,
    ),
    thread_name_context_switches: split(
        THREAD_NAME_CONTEXT_SWITCHES,
        attr::CONTEXT_SWITCH_TYPE,
        SWITCH_TYPES,
    ),
    errors: split(
        COLLECT_ERRORS,
        attr::ERROR_TYPE,
        [attr::ERROR_READ, attr::ERROR_PARTIAL],
    ),
    errors_kind: Kind::Counter,
};

pub mod process_exporter;

/// process-exporter's names: [`process_exporter::TABLE`].
pub const PROCESS_EXPORTER: MetricTable = process_exporter::TABLE;
