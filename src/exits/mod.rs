//! Exit accounting from the kernel's taskstats interface: what every task
//! did, delivered when it exits, so that work done between two `/proc`
//! samples (short-lived processes, the last interval of every process) is
//! not lost. This module owns the netlink side only and hands out plain
//! [`ExitRecord`]s; the tracker decides what each record closes.
//!
//! - [`record`]: parsing `struct taskstats` and its netlink framing (pure).
//! - [`cpus`]: the CPU list to register for, read from a path given.
//! - [`account`]: records into one [`ProcExit`](crate::proc::ProcExit) per
//!   exited process, thread records summed into their group's (pure).
//! - [`listener`]: the socket (I/O edge): resolve the `TASKSTATS` family,
//!   register on every possible CPU, receive, count overflows.
//! - [`query`]: what a live thread group has run so far, asked by tgid
//!   (the process source's [`GroupProbe`](crate::proc::GroupProbe)).
//!
//! # What the kernel requires (measured on Linux 6.18, matching its source)
//!
//! - **`CAP_NET_ADMIN`** in the initial user namespace: registering is a
//!   `GENL_ADMIN_PERM` operation (`EPERM` without it). `SO_RCVBUFFORCE`
//!   needs the same capability; without it the buffer is capped by
//!   `net.core.rmem_max`.
//! - **The initial pid and user namespaces**: the kernel rejects a
//!   registration from any other with `EINVAL`. A container needs
//!   `hostPID: true` (and no user namespace).
//! - **The host network namespace**: the family resolves and registration
//!   is acknowledged from another network namespace, but the records are
//!   delivered to the registered port in the *initial* network namespace
//!   only, so a listener in a container's own network namespace receives
//!   nothing (the kernel silently drops the registration at its first
//!   failed delivery). A container needs `hostNetwork: true`. The
//!   listener therefore checks delivery when it starts: it ends a probe
//!   thread and waits for its record ([`ListenError::NotDelivered`]).
//! - Pids (`id`, `pid`, `tgid`, `ppid`) and uid/gid are those of the
//!   initial namespaces, the same as the host's `/proc`.
//!
//! # What a record says
//!
//! One message per exiting task, carrying a [`Scope::Task`] record with the
//! task's own counters; when the last thread of a group that had more than
//! one thread exits, the same message also carries a [`Scope::ThreadGroup`]
//! record. On 6.18 that group record sums elapsed, user/system CPU, context
//! switches and the scheduler run time over all exited threads, and leaves
//! identity, faults and I/O zero; older kernels fill only the scheduler and
//! delay totals. A single-threaded process gets only its task record, with
//! [`FLAG_GROUP_DEAD`](record::FLAG_GROUP_DEAD) set (struct version 12 on).
//! `/proc/PID/stat` of a live process already includes its dead threads, so
//! the tracker must not add thread records of a process it samples.
//!
//! CPU: `ac_utime`/`ac_stime` are the raw (sampled) split, while
//! `/proc/PID/stat` scales the split to the scheduler's exact run time;
//! [`ExitRecord::cpu_adjusted`] does the same with `cpu_run_virtual_total`,
//! so that a last sample and an exit record are comparable.
//!
//! Threads: the kernel sends the records of a group's threads as they exit,
//! each with that thread's own counters; `/proc/PID/stat`, `io` and
//! `status` of the live process already include its exited threads. So for
//! a process the tracker samples, only the record that closes the group
//! ([`ExitRecord::closes_group`]) matters, and its totals are the group
//! record's CPU (where the kernel sums it) or the sum of the thread records
//! the listener saw; faults and I/O of a multi-threaded process are not in
//! the group record and must be summed from its thread records.
//!
//! Start time: `ac_btime` (and `ac_btime64`) is wall-clock seconds, no
//! better than ±1 s and moved by clock steps. `ac_etime` is the monotonic
//! run time in µs, so [`ExitRecord::estimated_start`] (receipt on
//! `CLOCK_BOOTTIME` minus `ac_etime`) gives the start on the clock of
//! `/proc/PID/stat` field 22, late only by the delivery delay (plus time
//! suspended while the task lived); [`ExitRecord::started_at_tick`] matches
//! it against a tracked process's start in clock ticks. Measured here: the
//! estimate lay 4 to 9 ms after field 22, which truncates to 10 ms ticks.
//!
//! # Rate
//!
//! Each record is one datagram of about 600 bytes (1,200 with the group
//! record). The kernel drops records when the socket buffer is full and
//! says so with `ENOBUFS` on the next receive; the listener asks for 8 MiB
//! (`SO_RCVBUFFORCE`, the kernel then reports 16 MiB), several seconds of a
//! 1,000 exits/s churn if its thread stalls.

pub mod account;
pub mod cpus;
mod link;
pub mod listener;
pub mod query;
pub mod record;

pub use account::ExitAssembler;
pub use cpus::{CpuListError, parse_cpu_list, read_cpu_list};
pub use listener::{Batch, ExitListener, ListenError, ListenerConfig, ListenerStats, Overflow};
pub use query::GroupQuery;
pub use record::{ExitRecord, ParseError, Scope, parse_datagram, parse_stats};
