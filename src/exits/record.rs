//! The exit record: one `struct taskstats` from the kernel, parsed by its
//! length and version into plain data, plus the framing around it (the
//! generic netlink message carrying `TASKSTATS_TYPE_AGGR_PID` and, when the
//! last thread of a group exits, `TASKSTATS_TYPE_AGGR_TGID`). Pure: bytes in,
//! records out, never a panic on short, long or unknown input.

use std::time::Duration;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkMessage, NetlinkPayload, NlasIterator,
    ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

/// Name under which the kernel registers the taskstats generic netlink family.
pub const FAMILY_NAME: &str = "TASKSTATS";

/// `TASKSTATS_CMD_GET`: the only command userspace sends (registering included).
pub(crate) const CMD_GET: u8 = 1;
/// `TASKSTATS_CMD_NEW`: the command of every record the kernel sends.
pub(crate) const CMD_NEW: u8 = 2;
/// `TASKSTATS_GENL_VERSION`.
pub(crate) const GENL_VERSION: u8 = 1;

// Attribute types of a record (`TASKSTATS_TYPE_*`).
const TYPE_PID: u16 = 1;
const TYPE_TGID: u16 = 2;
const TYPE_STATS: u16 = 3;
const TYPE_AGGR_PID: u16 = 4;
const TYPE_AGGR_TGID: u16 = 5;
/// Attribute type masked of the nested / byte-order flags.
const NLA_TYPE_MASK: u16 = netlink_packet_core::NLA_TYPE_MASK;

/// `AGROUP` in `ac_flag` (since struct version 12): this task was the last
/// of its thread group, i.e. the record closes the process.
pub const FLAG_GROUP_DEAD: u8 = 0x20;

/// Byte offsets in `struct taskstats` (x86-64 and every other Linux ABI:
/// the struct is laid out with explicit 8-byte alignment of its `__u64`s).
mod off {
    pub const VERSION: usize = 0;
    pub const EXITCODE: usize = 4;
    pub const FLAG: usize = 8;
    pub const CPU_COUNT: usize = 16;
    pub const CPU_RUN_REAL_TOTAL: usize = 64;
    pub const CPU_RUN_VIRTUAL_TOTAL: usize = 72;
    pub const COMM: usize = 80;
    pub const COMM_LEN: usize = 32;
    pub const UID: usize = 120;
    pub const GID: usize = 124;
    pub const PID: usize = 128;
    pub const PPID: usize = 132;
    pub const BTIME: usize = 136;
    pub const ETIME: usize = 144;
    pub const UTIME: usize = 152;
    pub const STIME: usize = 160;
    pub const MINFLT: usize = 168;
    pub const MAJFLT: usize = 176;
    pub const READ_BYTES: usize = 248;
    pub const WRITE_BYTES: usize = 256;
    pub const CANCELLED_WRITE_BYTES: usize = 264;
    pub const NVCSW: usize = 272;
    pub const NIVCSW: usize = 280;
    /// Everything this module requires ends here (`nivcsw`); every kernel
    /// of the last fifteen years sends at least this much.
    pub const REQUIRED_END: usize = 288;
    pub const BTIME64: usize = 344;
    pub const TGID: usize = 368;
    pub const TGETIME: usize = 376;
    pub const EXE_DEV: usize = 384;
    pub const EXE_INODE: usize = 392;
}

/// Struct version that added `ac_btime64`.
const V_BTIME64: u16 = 10;
/// Struct version that added `ac_tgid`, `ac_tgetime`, `ac_exe_dev/inode`
/// and the `AGROUP` flag.
const V_TGID: u16 = 12;

/// What a record accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `TASKSTATS_TYPE_AGGR_PID`: one task (thread) that exited, with its own
    /// counters only. Sent for every exiting task, the main thread included.
    Task,
    /// `TASKSTATS_TYPE_AGGR_TGID`: the thread group, sent together with the
    /// task record of its last exiting thread, and only for groups that had
    /// more than one thread at some exit. The kernel fills just the fields it
    /// sums over the exited threads: on Linux 6.18 elapsed, user and system
    /// CPU, context switches and the delay-accounting totals
    /// (`cpu_run_*_total`); older kernels only the delay-accounting totals.
    /// Identity, faults and I/O are zero in it: take those from the task
    /// records.
    ThreadGroup,
}

/// One exit record, as plain data. Times are as the kernel reports them;
/// `id` is the pid (task scope) or tgid (group scope) the record is
/// addressed by, in the initial pid namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    pub scope: Scope,
    /// The pid or tgid from the `TASKSTATS_TYPE_PID/TGID` attribute.
    pub id: u32,
    /// `version` of the struct as sent (0 when the kernel left it unset).
    pub version: u16,
    /// Bytes of struct the kernel sent (its `sizeof(struct taskstats)`).
    pub struct_len: usize,
    /// `ac_pid`; for a group record the tgid (the kernel leaves it zero).
    pub pid: u32,
    /// `ac_tgid` (struct version 12 on); for a group record its id.
    pub tgid: Option<u32>,
    /// `ac_ppid`: tgid of the real parent at exit (0 for a group record).
    pub ppid: u32,
    /// `ac_comm`, lossily decoded up to the first NUL.
    pub comm: String,
    pub uid: u32,
    pub gid: u32,
    /// `ac_exitcode`: the wait status (`exit_code`), meaningful for the
    /// thread group leader.
    pub exit_code: u32,
    /// `ac_flag`: `AFORK`, `ASU`, `ACORE`, `AXSIG`, [`FLAG_GROUP_DEAD`].
    pub flags: u8,
    /// Start in seconds since the epoch: `ac_btime64` when the struct has
    /// it, else `ac_btime`. Derived by the kernel from the wall clock minus
    /// `elapsed`, truncated to whole seconds.
    pub begin_time_secs: u64,
    /// `ac_etime`: monotonic time from start to exit, in µs. For a group
    /// record, the sum over its exited threads.
    pub elapsed: Duration,
    /// `ac_tgetime` (version 12 on): time since the group leader started.
    pub group_elapsed: Option<Duration>,
    /// `ac_utime`, `ac_stime` (µs).
    pub user_time: Duration,
    pub system_time: Duration,
    /// `cpu_run_virtual_total`: the scheduler's exact run time
    /// (`sum_exec_runtime`, ns), the figure `/proc/PID/stat` scales its
    /// utime/stime to. Zero on a kernel without `CONFIG_TASK_DELAY_ACCT`.
    pub run_time: Duration,
    /// `cpu_run_real_total`: utime + stime as sampled (ns), same condition.
    pub run_time_sampled: Duration,
    /// `cpu_count`: how many times the task was scheduled in
    /// (`sched_info.pcount`, the third number of its `schedstat`), same
    /// condition.
    pub cpu_count: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    /// Storage I/O (`read_bytes`, `write_bytes`, `cancelled_write_bytes`),
    /// the fields `/proc/PID/io` reports under the same names.
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// `(ac_exe_dev, ac_exe_inode)` of the executable at exit (version 12
    /// on; zeros for kernel threads).
    pub exe: Option<(u64, u64)>,
}

impl ExitRecord {
    /// True when this task record ends its thread group (`AGROUP`).
    /// `None` for kernels before struct version 12, which do not say.
    pub fn closes_group(&self) -> Option<bool> {
        match self.scope {
            Scope::ThreadGroup => Some(true),
            Scope::Task if self.has(V_TGID) => Some(self.flags & FLAG_GROUP_DEAD != 0),
            Scope::Task => None,
        }
    }

    fn has(&self, since: u16) -> bool {
        self.version == 0 || self.version >= since
    }

    /// User and system CPU split the way the kernel splits them for
    /// `/proc/PID/stat` (`cputime_adjust`): the exact run time, divided in
    /// the ratio of the sampled utime and stime. `/proc` samples of a live
    /// process sum to the same exact run time, so a delta between the last
    /// sample and this record never mixes two accountings. Falls back to
    /// the sampled values when the kernel did not report the run time.
    pub fn cpu_adjusted(&self) -> (Duration, Duration) {
        let rtime = self.run_time.as_nanos();
        if rtime == 0 {
            return (self.user_time, self.system_time);
        }
        let utime = self.user_time.as_nanos();
        let stime = self.system_time.as_nanos();
        let system = if stime == 0 {
            0
        } else if utime == 0 {
            rtime
        } else {
            rtime * stime / (stime + utime)
        };
        let user = rtime - system;
        (nanos(user), nanos(system))
    }

    /// Start of the task on the boot-time clock (`CLOCK_BOOTTIME`, what
    /// `/proc/PID/stat` field 22 counts in clock ticks), estimated as the
    /// moment the record was received minus `elapsed`.
    ///
    /// The estimate is never early: it is late by the delivery delay of the
    /// record (normally well under a millisecond, longer when the agent
    /// falls behind its socket buffer) plus any time the machine spent
    /// suspended while the task lived (`elapsed` is monotonic, field 22
    /// boot-time). Compare with [`ExitRecord::started_at_tick`].
    pub fn estimated_start(&self, received_boottime: Duration) -> Duration {
        received_boottime.saturating_sub(self.elapsed)
    }

    /// Whether a process seen with start time `start_ticks` (field 22 of
    /// `/proc/PID/stat`) can be the task of this record received at
    /// `received_boottime`: its start lies between `slack` before the
    /// estimate (rounding to ticks) and the estimate itself plus one tick.
    pub fn started_at_tick(
        &self,
        start_ticks: u64,
        ticks_per_second: u64,
        received_boottime: Duration,
        slack: Duration,
    ) -> bool {
        if ticks_per_second == 0 {
            return false;
        }
        let estimate = self.estimated_start(received_boottime).as_nanos();
        let tick = 1_000_000_000u128 / u128::from(ticks_per_second);
        let start = u128::from(start_ticks) * tick;
        start + slack.as_nanos() + tick >= estimate && start <= estimate + tick
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Why a datagram or a record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("bad netlink framing: {0}")]
    Framing(String),
    #[error("taskstats struct of {len} bytes is shorter than the {need} bytes needed")]
    Truncated { len: usize, need: usize },
    #[error("{0} attribute without its taskstats struct")]
    MissingStats(&'static str),
    #[error("netlink error {0} from the kernel")]
    Kernel(i32),
}

impl From<DecodeError> for ParseError {
    fn from(e: DecodeError) -> Self {
        ParseError::Framing(e.to_string())
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_ne_bytes)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// A field introduced in struct version `since` and ending at byte `end`
/// is there when the struct is long enough and its version not older
/// (version 0, left unset in some group records, is judged by length).
fn present(b: &[u8], version: u16, since: u16, end: usize) -> bool {
    b.len() >= end && (version == 0 || version >= since)
}

/// Parses one `struct taskstats` (the value of a `TASKSTATS_TYPE_STATS`
/// attribute) of any version. Fields a newer kernel appended are ignored;
/// fields an older kernel lacks are `None` (or, for the always-present
/// core, the struct is rejected as truncated).
pub fn parse_stats(scope: Scope, id: u32, b: &[u8]) -> Result<ExitRecord, ParseError> {
    if b.len() < off::REQUIRED_END {
        return Err(ParseError::Truncated {
            len: b.len(),
            need: off::REQUIRED_END,
        });
    }
    let version = u16_at(b, off::VERSION);
    let comm_bytes = &b[off::COMM..off::COMM + off::COMM_LEN];
    let comm_end = comm_bytes
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(off::COMM_LEN);
    let comm = String::from_utf8_lossy(&comm_bytes[..comm_end]).into_owned();
    let btime64 = present(b, version, V_BTIME64, off::BTIME64 + 8)
        .then(|| u64_at(b, off::BTIME64))
        .filter(|&t| t != 0);
    let has_tgid = present(b, version, V_TGID, off::TGID + 4);
    let mut tgid = has_tgid.then(|| u32_at(b, off::TGID));
    let mut pid = u32_at(b, off::PID);
    if scope == Scope::ThreadGroup {
        pid = id;
        tgid = Some(id);
    }
    Ok(ExitRecord {
        scope,
        id,
        version,
        struct_len: b.len(),
        pid,
        tgid,
        ppid: u32_at(b, off::PPID),
        comm,
        uid: u32_at(b, off::UID),
        gid: u32_at(b, off::GID),
        exit_code: u32_at(b, off::EXITCODE),
        flags: b[off::FLAG],
        begin_time_secs: btime64.unwrap_or_else(|| u64::from(u32_at(b, off::BTIME))),
        elapsed: Duration::from_micros(u64_at(b, off::ETIME)),
        group_elapsed: present(b, version, V_TGID, off::TGETIME + 8)
            .then(|| Duration::from_micros(u64_at(b, off::TGETIME))),
        user_time: Duration::from_micros(u64_at(b, off::UTIME)),
        system_time: Duration::from_micros(u64_at(b, off::STIME)),
        run_time: Duration::from_nanos(u64_at(b, off::CPU_RUN_VIRTUAL_TOTAL)),
        run_time_sampled: Duration::from_nanos(u64_at(b, off::CPU_RUN_REAL_TOTAL)),
        cpu_count: u64_at(b, off::CPU_COUNT),
        minor_faults: u64_at(b, off::MINFLT),
        major_faults: u64_at(b, off::MAJFLT),
        read_bytes: u64_at(b, off::READ_BYTES),
        write_bytes: u64_at(b, off::WRITE_BYTES),
        cancelled_write_bytes: u64_at(b, off::CANCELLED_WRITE_BYTES),
        voluntary_switches: u64_at(b, off::NVCSW),
        involuntary_switches: u64_at(b, off::NIVCSW),
        exe: present(b, version, V_TGID, off::EXE_INODE + 8)
            .then(|| (u64_at(b, off::EXE_DEV), u64_at(b, off::EXE_INODE))),
    })
}

/// The generic netlink payload of a taskstats message: its attributes,
/// undecoded. Outgoing (registration) and incoming (records) share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskstatsPayload {
    pub cmd: u8,
    pub attrs: Vec<netlink_packet_core::DefaultNla>,
}

impl GenlFamily for TaskstatsPayload {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        GENL_VERSION
    }
}

impl Emitable for TaskstatsPayload {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for TaskstatsPayload {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            attrs.push(netlink_packet_core::DefaultNla::new(
                nla.kind(),
                nla.value().to_vec(),
            ));
        }
        Ok(TaskstatsPayload {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// What one incoming message was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    Records(Vec<ExitRecord>),
    /// An `NLMSG_ERROR`: 0 is an acknowledgement, else a negative errno.
    Ack {
        seq: u32,
        code: i32,
    },
    /// Anything else (another command, `NLMSG_NOOP`, ...).
    Other,
}

/// Parses every netlink message in a received datagram.
pub(crate) fn parse_incoming(datagram: &[u8]) -> Result<Vec<Incoming>, ParseError> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let len = NetlinkBuffer::new_checked(rest)?.length() as usize;
        let msg = NetlinkMessage::<GenlMessage<TaskstatsPayload>>::deserialize(&rest[..len])?;
        let seq = msg.header.sequence_number;
        out.push(match msg.payload {
            NetlinkPayload::InnerMessage(genl) if genl.payload.cmd == CMD_NEW => {
                Incoming::Records(records_of(&genl.payload)?)
            }
            NetlinkPayload::Error(e) => Incoming::Ack {
                seq,
                code: e.raw_code(),
            },
            _ => Incoming::Other,
        });
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Parses the exit records of one datagram received from the kernel.
/// Messages that are not records (acknowledgements, other commands) are
/// skipped; a kernel error message is reported as [`ParseError::Kernel`].
pub fn parse_datagram(datagram: &[u8]) -> Result<Vec<ExitRecord>, ParseError> {
    let mut records = Vec::new();
    for incoming in parse_incoming(datagram)? {
        match incoming {
            Incoming::Records(r) => records.extend(r),
            Incoming::Ack { code, .. } if code != 0 => return Err(ParseError::Kernel(code)),
            Incoming::Ack { .. } | Incoming::Other => {}
        }
    }
    Ok(records)
}

fn records_of(payload: &TaskstatsPayload) -> Result<Vec<ExitRecord>, ParseError> {
    use netlink_packet_core::Nla;
    let mut records = Vec::new();
    for attr in &payload.attrs {
        let (scope, id_type, name) = match attr.kind() & NLA_TYPE_MASK {
            TYPE_AGGR_PID => (Scope::Task, TYPE_PID, "AGGR_PID"),
            TYPE_AGGR_TGID => (Scope::ThreadGroup, TYPE_TGID, "AGGR_TGID"),
            // TASKSTATS_TYPE_NULL (alignment padding) and unknown types.
            _ => continue,
        };
        let mut value = vec![0u8; attr.value_len()];
        attr.emit_value(&mut value);
        let mut id = None;
        let mut stats = None;
        for nla in NlasIterator::new(&value[..]) {
            let nla = nla?;
            match nla.kind() & NLA_TYPE_MASK {
                k if k == id_type => id = Some(u32_at(nla.value(), 0)),
                TYPE_STATS => stats = Some(nla.value().to_vec()),
                _ => {}
            }
        }
        let stats = stats.ok_or(ParseError::MissingStats(name))?;
        records.push(parse_stats(scope, id.unwrap_or(0), &stats)?);
    }
    Ok(records)
}

/// What a reply to a `TASKSTATS_CMD_GET` says a task or a thread group has
/// run: the only fields a cycle's questions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activity {
    /// `cpu_run_virtual_total`: the scheduler's run time, in ns.
    pub run_ns: u64,
    /// `cpu_count`: times scheduled in.
    pub slices: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// What one reply datagram says: the counters of its record of `scope`,
/// the kernel's error code, or nothing of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    Activity(Activity),
    /// An `NLMSG_ERROR` (0 is an acknowledgement, else a negative errno).
    Error(i32),
    Other,
}

/// Reads the reply to one question in place, where [`parse_incoming`]
/// would decode every attribute into owned records: a cycle asks
/// thousands of them and needs four numbers of each. The same struct
/// offsets and attribute types.
pub(crate) fn parse_reply(datagram: &[u8], scope: Scope) -> Result<Reply, ParseError> {
    use netlink_packet_core::NLMSG_ERROR;
    let message = NetlinkBuffer::new_checked(datagram)?;
    let payload = message.payload();
    if message.message_type() == NLMSG_ERROR {
        return Ok(Reply::Error(u32_at(payload, 0) as i32));
    }
    // After the generic netlink header: command, version, two reserved.
    let (Some(&cmd), Some(attrs)) = (payload.first(), payload.get(4..)) else {
        return Ok(Reply::Other);
    };
    if cmd != CMD_NEW {
        return Ok(Reply::Other);
    }
    let aggregate = match scope {
        Scope::Task => TYPE_AGGR_PID,
        Scope::ThreadGroup => TYPE_AGGR_TGID,
    };
    for attr in NlasIterator::new(attrs) {
        let attr = attr?;
        if attr.kind() & NLA_TYPE_MASK != aggregate {
            continue;
        }
        for nla in NlasIterator::new(attr.value()) {
            let nla = nla?;
            if nla.kind() & NLA_TYPE_MASK != TYPE_STATS {
                continue;
            }
            let b = nla.value();
            if b.len() < off::REQUIRED_END {
                return Err(ParseError::Truncated {
                    len: b.len(),
                    need: off::REQUIRED_END,
                });
            }
            return Ok(Reply::Activity(Activity {
                run_ns: u64_at(b, off::CPU_RUN_VIRTUAL_TOTAL),
                slices: u64_at(b, off::CPU_COUNT),
                voluntary_switches: u64_at(b, off::NVCSW),
                involuntary_switches: u64_at(b, off::NIVCSW),
            }));
        }
    }
    Ok(Reply::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(version: u16, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0..2].copy_from_slice(&version.to_ne_bytes());
        b[off::COMM..off::COMM + 4].copy_from_slice(b"abcd");
        b[off::PID..off::PID + 4].copy_from_slice(&42u32.to_ne_bytes());
        if len >= off::TGID + 4 {
            b[off::TGID..off::TGID + 4].copy_from_slice(&40u32.to_ne_bytes());
        }
        b
    }

    #[test]
    fn version_decides_optional_fields() {
        let old = parse_stats(Scope::Task, 42, &stats(9, 344)).expect("v9");
        assert_eq!(old.tgid, None);
        assert_eq!(old.closes_group(), None);
        assert_eq!(old.comm, "abcd");
        // A v11 struct long enough to hold v12 fields must not be read as v12.
        let v11 = parse_stats(Scope::Task, 42, &stats(11, 416)).expect("v11");
        assert_eq!(v11.tgid, None);
        let v12 = parse_stats(Scope::Task, 42, &stats(12, 416)).expect("v12");
        assert_eq!(v12.tgid, Some(40));
        assert_eq!(v12.closes_group(), Some(false));
    }

    #[test]
    fn short_struct_is_an_error_not_a_panic() {
        for len in [0, 1, 8, 100, off::REQUIRED_END - 1] {
            assert_eq!(
                parse_stats(Scope::Task, 1, &vec![0; len]),
                Err(ParseError::Truncated {
                    len,
                    need: off::REQUIRED_END
                })
            );
        }
    }

    #[test]
    fn cpu_adjusted_splits_run_time_in_sampled_ratio() {
        let mut r = parse_stats(Scope::Task, 42, &stats(16, 560)).expect("v16");
        r.user_time = Duration::from_millis(30);
        r.system_time = Duration::from_millis(10);
        r.run_time = Duration::from_millis(80);
        assert_eq!(
            r.cpu_adjusted(),
            (Duration::from_millis(60), Duration::from_millis(20))
        );
        r.user_time = Duration::ZERO;
        r.system_time = Duration::ZERO;
        assert_eq!(
            r.cpu_adjusted(),
            (Duration::from_millis(80), Duration::ZERO)
        );
        r.run_time = Duration::ZERO;
        r.system_time = Duration::from_millis(4);
        assert_eq!(r.cpu_adjusted(), (Duration::ZERO, Duration::from_millis(4)));
    }

    #[test]
    fn start_matching_is_one_sided() {
        let mut r = parse_stats(Scope::Task, 42, &stats(16, 560)).expect("v16");
        r.elapsed = Duration::from_millis(2_500);
        // Received at boot time 12.5 s: the task started at or before 10.0 s.
        let recv = Duration::from_millis(12_500);
        let slack = Duration::from_millis(50);
        assert!(r.started_at_tick(1000, 100, recv, slack));
        assert!(r.started_at_tick(996, 100, recv, slack));
        assert!(!r.started_at_tick(990, 100, recv, slack));
        assert!(!r.started_at_tick(1002, 100, recv, slack));
        assert!(!r.started_at_tick(1000, 0, recv, slack));
    }

    #[test]
    fn a_reply_read_in_place_says_what_the_full_parse_says() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/taskstats");
        let mut compared = 0;
        for name in [
            "single_thread_v16.bin",
            "thread_v16.bin",
            "group_last_v16.bin",
            "single_thread_v9.bin",
            "single_thread_v99.bin",
        ] {
            let datagram = std::fs::read(dir.join(name)).expect(name);
            let records = parse_datagram(&datagram).expect(name);
            for scope in [Scope::Task, Scope::ThreadGroup] {
                let full = records.iter().find(|r| r.scope == scope);
                let lean = parse_reply(&datagram, scope).expect(name);
                match (full, lean) {
                    (Some(r), Reply::Activity(a)) => {
                        assert_eq!(
                            a,
                            Activity {
                                run_ns: u64::try_from(r.run_time.as_nanos()).unwrap(),
                                slices: r.cpu_count,
                                voluntary_switches: r.voluntary_switches,
                                involuntary_switches: r.involuntary_switches,
                            },
                            "{name} {scope:?}"
                        );
                        compared += 1;
                    }
                    (None, Reply::Other) => {}
                    (full, lean) => panic!("{name} {scope:?}: {full:?} against {lean:?}"),
                }
            }
        }
        // Every file has a task record, one a group record too.
        assert_eq!(compared, 6);
        for name in ["truncated_struct.bin", "truncated_datagram.bin"] {
            let datagram = std::fs::read(dir.join(name)).expect(name);
            assert!(parse_reply(&datagram, Scope::Task).is_err(), "{name}");
        }
    }
}
