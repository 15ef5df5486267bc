//! process-exporter's names (`--metric-names process-exporter`), with its
//! help texts. Units are chosen so that the Collector adds no suffix: `s`
//! and `By` only where the name already ends in `_seconds`/`_bytes` (before
//! `_total`), `1` only on `worst_fd_ratio`, annotations (`{process}`,
//! dropped by the translation) or nothing elsewhere.
//!
//! A module of its own since the table is long and read on its own: it is
//! checked against process-exporter's names and help texts, not against the
//! semantic conventions of the rest of the catalogue.

use super::{Family, Kind, MetricSpec, MetricTable, spec, split};

/// Attribute keys and values, as process-exporter labels them.
pub mod attr {
    /// The group name.
    pub const GROUPNAME: &str = "groupname";
    /// The thread name.
    pub const THREADNAME: &str = "threadname";
    /// CPU mode (`user`, `system`).
    pub const MODE: &str = "mode";
    /// Direction of the per-thread I/O (`read`, `write`).
    pub const IOMODE: &str = "iomode";
    /// Kind of context switch.
    pub const CTXSWITCHTYPE: &str = "ctxswitchtype";
    /// Kind of memory.
    pub const MEMTYPE: &str = "memtype";
    /// Scheduler state.
    pub const STATE: &str = "state";
    /// Kernel wait channel.
    pub const WCHAN: &str = "wchan";
    /// `mode` values.
    pub const MODES: [&str; 2] = ["user", "system"];
    /// `iomode` values.
    pub const IOMODES: [&str; 2] = ["read", "write"];
    /// `ctxswitchtype` values.
    pub const CTXSWITCHTYPES: [&str; 2] = ["voluntary", "nonvoluntary"];
    /// `memtype` values.
    pub const MEMTYPES: [&str; 5] = [
        "resident",
        "virtual",
        "swapped",
        "proportionalResident",
        "proportionalSwapped",
    ];
    /// `state` values.
    pub const STATES: [&str; 5] = ["Running", "Sleeping", "Waiting", "Zombie", "Other"];
}

const fn ns(name: &'static str, unit: &'static str, help: &'static str) -> MetricSpec {
    spec(name, unit, help)
}

/// The table.
pub const TABLE: MetricTable = MetricTable {
    group_name: attr::GROUPNAME,
    thread_name: attr::THREADNAME,
    processes: ns(
        "namedprocess_namegroup_num_procs",
        "{process}",
        "number of processes in this group",
    ),
    cpu_time: split(
        ns(
            "namedprocess_namegroup_cpu_seconds_total",
            "s",
            "Cpu user usage in seconds",
        ),
        attr::MODE,
        attr::MODES,
    ),
    disk_io: Family::Separate([
        ns(
            "namedprocess_namegroup_read_bytes_total",
            "By",
            "number of bytes read by this group",
        ),
        ns(
            "namedprocess_namegroup_write_bytes_total",
            "By",
            "number of bytes written by this group",
        ),
    ]),
    paging_faults: Family::Separate([
        ns(
            "namedprocess_namegroup_major_page_faults_total",
            "{fault}",
            "Major page faults",
        ),
        ns(
            "namedprocess_namegroup_minor_page_faults_total",
            "{fault}",
            "Minor page faults",
        ),
    ]),
    context_switches: split(
        ns(
            "namedprocess_namegroup_context_switches_total",
            "{context_switch}",
            "Context switches",
        ),
        attr::CTXSWITCHTYPE,
        attr::CTXSWITCHTYPES,
    ),
    memory: split(
        ns(
            "namedprocess_namegroup_memory_bytes",
            "By",
            "number of bytes of memory in use",
        ),
        attr::MEMTYPE,
        attr::MEMTYPES,
    ),
    fd_count: ns(
        "namedprocess_namegroup_open_filedesc",
        "{file_descriptor}",
        "number of open file descriptors for this group",
    ),
    fd_limit_utilization: ns(
        "namedprocess_namegroup_worst_fd_ratio",
        "1",
        "the worst (closest to 1) ratio between open fds and max fds among all procs in this group",
    ),
    thread_count: ns(
        "namedprocess_namegroup_num_threads",
        "{thread}",
        "Number of threads",
    ),
    oldest_start_time: ns(
        "namedprocess_namegroup_oldest_start_time_seconds",
        "s",
        "start time in seconds since 1970/01/01 of oldest process in group",
    ),
    states: split(
        ns(
            "namedprocess_namegroup_states",
            "{thread}",
            "Number of processes in states Running, Sleeping, Waiting, Zombie, or Other",
        ),
        attr::STATE,
        attr::STATES,
    ),
    wchan: (
        ns(
            "namedprocess_namegroup_threads_wchan",
            "{thread}",
            "Number of threads in this group waiting on each wchan",
        ),
        attr::WCHAN,
    ),
    thread_name_count: ns(
        "namedprocess_namegroup_thread_count",
        "{thread}",
        "Number of threads in this group with same threadname",
    ),
    thread_name_cpu_time: split(
        ns(
            "namedprocess_namegroup_thread_cpu_seconds_total",
            "s",
            "Cpu user/system usage in seconds",
        ),
        attr::MODE,
        attr::MODES,
    ),
    thread_name_disk_io: split(
        ns(
            "namedprocess_namegroup_thread_io_bytes_total",
            "By",
            "number of bytes read/written by these threads",
        ),
        attr::IOMODE,
        attr::IOMODES,
    ),
    thread_name_paging_faults: Family::Separate([
        ns(
            "namedprocess_namegroup_thread_major_page_faults_total",
            "{fault}",
            "Major page faults for these threads",
        ),
        ns(
            "namedprocess_namegroup_thread_minor_page_faults_total",
            "{fault}",
            "Minor page faults for these threads",
        ),
    ]),
    thread_name_context_switches: split(
        ns(
            "namedprocess_namegroup_thread_context_switches_total",
            "{context_switch}",
            "Context switches for these threads",
        ),
        attr::CTXSWITCHTYPE,
        attr::CTXSWITCHTYPES,
    ),
    // process-exporter's error counters have no `_total`, which the
    // Collector adds to every monotonic sum: exported as non-monotonic
    // sums they keep their names and become gauges (`rate()` and
    // `increase()` still work on them).
    errors: Family::Separate([
        ns(
            "namedprocess_scrape_procread_errors",
            "{error}",
            "incremented each time a proc's metrics collection fails",
        ),
        ns(
            "namedprocess_scrape_partial_errors",
            "{error}",
            "incremented each time a tracked proc's metrics collection fails partially, e.g. unreadable I/O stats",
        ),
    ]),
    errors_kind: Kind::UpDown,
};
