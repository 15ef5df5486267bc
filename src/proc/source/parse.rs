//! Parsers for the per-process files of a procfs, free of I/O: each takes the
//! bytes of one file and returns the few values the agent uses.
//!
//! They are written by hand rather than taken from `procfs-core` for three
//! reasons, each checked against procfs-core 0.18:
//! - robustness: its `Stat` parser slices past the end of a `stat` truncated
//!   right after the comm, and its `Limits` parser subtracts below zero on a
//!   short line, so garbled input can panic instead of returning an error;
//! - strictness: its `Status` and `Io` parsers require every line a current
//!   kernel prints (`Groups`, `FDSize`, `cancelled_write_bytes`, …), while the
//!   agent needs four lines of `status` and two of `io`;
//! - cost: those parsers build a `HashMap` of owned strings (about 110
//!   allocations for one `status`), once per process per cycle.
//!
//! Every parser works on bytes (comm, cmdline and cgroup paths need not be
//! UTF-8; they are converted lossily), never panics, and reports garbage as a
//! [`ParseError`] naming what was wrong.

/// What was wrong with a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// `PF_KTHREAD` of `stat` field 9: the task is a kernel thread.
pub(crate) const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `stat` the agent uses (numbering as in proc(5)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatFields {
    /// Field 3.
    pub state: u8,
    /// Field 4.
    pub ppid: i32,
    /// Field 9, the kernel's `PF_*` flags.
    pub flags: u64,
    /// Field 10.
    pub minflt: u64,
    /// Field 11: minor faults of reaped children.
    pub cminflt: u64,
    /// Field 12.
    pub majflt: u64,
    /// Field 13: major faults of reaped children.
    pub cmajflt: u64,
    /// Field 14, clock ticks.
    pub utime: u64,
    /// Field 15, clock ticks.
    pub stime: u64,
    /// Field 16, clock ticks: user CPU of reaped children.
    pub cutime: u64,
    /// Field 17, clock ticks: system CPU of reaped children.
    pub cstime: u64,
    /// Field 20.
    pub num_threads: u64,
    /// Field 22, clock ticks after boot.
    pub starttime: u64,
    /// Field 23, bytes.
    pub vsize: u64,
    /// Field 24, pages.
    pub rss: u64,
}

impl StatFields {
    /// Whether the task has a memory map to measure: zombies have released
    /// theirs and kernel threads never had one (the kernel answers ESRCH for
    /// their smaps).
    pub(crate) fn has_memory_map(&self) -> bool {
        self.state != b'Z' && self.flags & PF_KTHREAD == 0
    }
}

/// Parses `stat` (of a process or of a task). The comm (field 2) is written
/// into `comm`, replacing its content, so that its allocation can be reused.
///
/// The comm is the text between the first `(` and the *last* `)`: a comm may
/// itself contain parentheses, spaces and newlines (`(sd-pam)`, `a) b`), but
/// no field after it contains a `)`.
pub(crate) fn parse_stat(buf: &[u8], comm: &mut String) -> Result<StatFields, ParseError> {
    let open = memchr::memchr(b'(', buf).ok_or(ParseError("no '(' before the comm"))?;
    let close = memchr::memrchr(b')', buf).ok_or(ParseError("no ')' after the comm"))?;
    if close < open {
        return Err(ParseError("')' before '('"));
    }
    comm.clear();
    comm.push_str(&String::from_utf8_lossy(&buf[open + 1..close]));

    let mut s = StatFields::default();
    let mut fields = Fields(&buf[close + 1..]);
    let mut next = |what: &'static str| fields.next().ok_or(ParseError(what));

    let state = next("missing field 3 (state)")?;
    s.state = match state {
        [c] if c.is_ascii_alphabetic() => *c,
        _ => return Err(ParseError("field 3 (state) is not a letter")),
    };
    s.ppid = int(
        next("missing field 4 (ppid)")?,
        "field 4 (ppid) is not a number",
    )?;
    for _ in 5..9 {
        next("stat is truncated before field 9 (flags)")?;
    }
    s.flags = num(next("missing field 9 (flags)")?, "field 9 (flags)")?;
    s.minflt = num(next("missing field 10 (minflt)")?, "field 10 (minflt)")?;
    s.cminflt = num(next("missing field 11 (cminflt)")?, "field 11 (cminflt)")?;
    s.majflt = num(next("missing field 12 (majflt)")?, "field 12 (majflt)")?;
    s.cmajflt = num(next("missing field 13 (cmajflt)")?, "field 13 (cmajflt)")?;
    s.utime = num(next("missing field 14 (utime)")?, "field 14 (utime)")?;
    s.stime = num(next("missing field 15 (stime)")?, "field 15 (stime)")?;
    s.cutime = num(next("missing field 16 (cutime)")?, "field 16 (cutime)")?;
    s.cstime = num(next("missing field 17 (cstime)")?, "field 17 (cstime)")?;
    for _ in 18..20 {
        next("stat is truncated before field 20 (num_threads)")?;
    }
    s.num_threads = num(
        next("missing field 20 (num_threads)")?,
        "field 20 (num_threads)",
    )?;
    next("missing field 21 (itrealvalue)")?;
    s.starttime = num(
        next("missing field 22 (starttime)")?,
        "field 22 (starttime)",
    )?;
    s.vsize = num(next("missing field 23 (vsize)")?, "field 23 (vsize)")?;
    s.rss = num(next("missing field 24 (rss)")?, "field 24 (rss)")?;
    // A number cut short still parses: the kernel ends every line with a
    // newline, so field 24 must be followed by more fields or whitespace.
    if fields.next().is_none() && !buf.last().is_some_and(u8::is_ascii_whitespace) {
        return Err(ParseError("stat is truncated in field 24 (rss)"));
    }
    Ok(s)
}

/// The fields of a line separated by runs of ASCII whitespace (what
/// `split(is_ascii_whitespace)` without the empty pieces gives), by a
/// plain loop: `stat` is parsed for every process that ran, every cycle.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.0;
        let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = &rest[start..];
        let end = rest
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(rest.len());
        let (field, tail) = rest.split_at(end);
        self.0 = tail;
        Some(field)
    }
}

/// The lines of `buf` split on `\n`, the last one possibly empty (what
/// `split(|&b| b == b'\n')` gives), the newlines found by a vectorised
/// search: a `status` has about 60 lines, of which six are used.
struct Lines<'a> {
    buf: &'a [u8],
    start: usize,
    ends: memchr::Memchr<'a>,
    done: bool,
}

fn lines(buf: &[u8]) -> Lines<'_> {
    Lines {
        buf,
        start: 0,
        ends: memchr::memchr_iter(b'\n', buf),
        done: false,
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self.ends.next() {
            Some(end) => {
                let line = self.buf.get(self.start..end).unwrap_or_default();
                self.start = end + 1;
                Some(line)
            }
            None if !self.done => {
                self.done = true;
                Some(self.buf.get(self.start..).unwrap_or_default())
            }
            None => None,
        }
    }
}

fn num(field: &[u8], what: &'static str) -> Result<u64, ParseError> {
    parse_u64(field).ok_or(ParseError(what))
}

fn int(field: &[u8], what: &'static str) -> Result<i32, ParseError> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError(what))
}

/// A decimal `u64` made only of ASCII digits (no sign, no spaces).
pub(crate) fn parse_u64(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// A positive PID or TID from a directory name; `None` for every other name
/// (`self`, `net`, `.`, …).
pub(crate) fn parse_pid(name: &[u8]) -> Option<i32> {
    parse_u64(name)
        .and_then(|v| i32::try_from(v).ok())
        .filter(|&v| v > 0)
}

/// argv from `cmdline`: trailing NULs trimmed, then split on NUL; an empty
/// file (kernel thread, zombie) gives an empty list.
pub(crate) fn parse_cmdline(buf: &[u8]) -> Vec<String> {
    let end = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let buf = &buf[..end];
    if buf.is_empty() {
        return Vec::new();
    }
    buf.split(|&b| b == 0).map(lossy).collect()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The cgroup path (third colon-separated field, which may itself contain
/// colons) of each line of `cgroup`, in file order. Lines without two colons
/// are skipped: the list is informational and never an error.
pub(crate) fn parse_cgroup(buf: &[u8]) -> Vec<String> {
    buf.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut parts = line.splitn(3, |&b| b == b':');
            let _id = parts.next()?;
            let _controllers = parts.next()?;
            parts.next().map(lossy)
        })
        .collect()
}

/// The fields of `status` the agent uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatusFields {
    /// Second number of `Uid:`.
    pub euid: u32,
    /// `voluntary_ctxt_switches`.
    pub ctx_voluntary: u64,
    /// `nonvoluntary_ctxt_switches`.
    pub ctx_nonvoluntary: u64,
    /// `VmSwap`, kB; 0 when absent (kernel threads have no `Vm*` lines).
    pub vm_swap_kb: u64,
    /// `VmSize`, kB; 0 when absent. The same count as `statm`'s size.
    pub vm_size_kb: u64,
    /// `VmRSS`, kB; 0 when absent. The same count as `statm`'s resident.
    pub vm_rss_kb: u64,
}

/// Parses `status`. A `Uid:` line is required (every status has one); the
/// context-switch and `Vm*` lines count as 0 when absent, but a present
/// line with a value that is not a number is an error.
pub(crate) fn parse_status(buf: &[u8]) -> Result<StatusFields, ParseError> {
    let mut s = StatusFields::default();
    let mut have_uid = false;
    for line in lines(buf) {
        // The keys differ in their first byte: every other line is passed
        // over on it, and a used one is compared with its own key only.
        match line.first() {
            Some(b'U') => {
                if let Some(rest) = line.strip_prefix(b"Uid:") {
                    let mut ids = words(rest);
                    ids.next().ok_or(ParseError("Uid: line without ids"))?;
                    let euid = ids
                        .next()
                        .and_then(parse_u64)
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or(ParseError("Uid: line without a numeric effective uid"))?;
                    s.euid = euid;
                    have_uid = true;
                }
            }
            Some(b'v') => {
                if let Some(rest) = line.strip_prefix(b"voluntary_ctxt_switches:") {
                    s.ctx_voluntary =
                        first_number(rest, "voluntary_ctxt_switches is not a number")?;
                }
            }
            Some(b'n') => {
                if let Some(rest) = line.strip_prefix(b"nonvoluntary_ctxt_switches:") {
                    s.ctx_nonvoluntary =
                        first_number(rest, "nonvoluntary_ctxt_switches is not a number")?;
                }
            }
            Some(b'V') => {
                if let Some(rest) = line.strip_prefix(b"VmSwap:") {
                    s.vm_swap_kb = first_number(rest, "VmSwap is not a number")?;
                } else if let Some(rest) = line.strip_prefix(b"VmSize:") {
                    s.vm_size_kb = first_number(rest, "VmSize is not a number")?;
                } else if let Some(rest) = line.strip_prefix(b"VmRSS:") {
                    s.vm_rss_kb = first_number(rest, "VmRSS is not a number")?;
                }
            }
            _ => {}
        }
    }
    if !have_uid {
        return Err(ParseError("no Uid: line"));
    }
    Ok(s)
}

fn words(b: &[u8]) -> Fields<'_> {
    Fields(b)
}

fn first_number(rest: &[u8], what: &'static str) -> Result<u64, ParseError> {
    words(rest)
        .next()
        .and_then(parse_u64)
        .ok_or(ParseError(what))
}

/// `btime` (boot time, Unix seconds) of the system-wide `stat`.
pub(crate) fn parse_btime(buf: &[u8]) -> Result<u64, ParseError> {
    let rest = buf
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"btime "))
        .ok_or(ParseError("no btime line"))?;
    first_number(rest, "btime is not a number")
}

/// `read_bytes` and `write_bytes` of `io`; both are required.
pub(crate) fn parse_io(buf: &[u8]) -> Result<(u64, u64), ParseError> {
    let mut read = None;
    let mut write = None;
    for line in lines(buf) {
        if let Some(rest) = line.strip_prefix(b"read_bytes:") {
            read = Some(first_number(rest, "read_bytes is not a number")?);
        } else if let Some(rest) = line.strip_prefix(b"write_bytes:") {
            write = Some(first_number(rest, "write_bytes is not a number")?);
        }
    }
    match (read, write) {
        (Some(r), Some(w)) => Ok((r, w)),
        _ => Err(ParseError("no read_bytes or write_bytes line")),
    }
}

/// The soft "Max open files" limit of `limits`; `unlimited` is `u64::MAX`.
pub(crate) fn parse_max_open_files(buf: &[u8]) -> Result<u64, ParseError> {
    let line = buf
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Max open files"))
        .ok_or(ParseError("no \"Max open files\" line"))?;
    match words(line).next() {
        Some(b"unlimited") => Ok(u64::MAX),
        Some(w) => parse_u64(w).ok_or(ParseError("soft \"Max open files\" is not a number")),
        None => Err(ParseError("\"Max open files\" line without a soft limit")),
    }
}

/// The content of `wchan`: the symbol a task sleeps in, or empty when it is
/// not waiting (the kernel prints `0` then).
pub(crate) fn parse_wchan(buf: &[u8]) -> String {
    let w = buf.trim_ascii();
    if w.is_empty() || w == b"0" {
        String::new()
    } else {
        lossy(w)
    }
}

/// Two of the three numbers of `schedstat`: time on the CPU (ns) and the
/// number of times the task was scheduled in. Both only change when the
/// task runs, which makes the pair a cheap "has this task run since" check.
/// (The third, time spent waiting on a run queue, only changes when the
/// task is scheduled in, with the count.) A kernel without scheduler
/// statistics prints zeros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Schedstat {
    /// `se.sum_exec_runtime`, ns.
    pub run_ns: u64,
    /// `sched_info.pcount`.
    pub slices: u64,
}

impl Schedstat {
    /// Whether the kernel keeps these statistics for the task: a task that
    /// has never been scheduled in (or a kernel without them) shows zero
    /// slices, and proves nothing by not changing.
    pub(crate) fn is_counting(&self) -> bool {
        self.slices > 0
    }
}

/// Parses `schedstat`.
pub(crate) fn parse_schedstat(buf: &[u8]) -> Result<Schedstat, ParseError> {
    let mut w = words(buf);
    let mut next = |what: &'static str| w.next().and_then(parse_u64).ok_or(ParseError(what));
    let run_ns = next("schedstat: no run time")?;
    next("schedstat: no wait time")?;
    Ok(Schedstat {
        run_ns,
        slices: next("schedstat: no slice count")?,
    })
}

/// `size` and `resident` of `statm`, in pages: the same values as `stat`'s
/// vsize (in pages here) and rss, from a file the kernel writes faster, and
/// the same counts as `status`'s `VmSize` and `VmRSS` (in kB there).
pub(crate) fn parse_statm(buf: &[u8]) -> Result<(u64, u64), ParseError> {
    let mut w = words(buf);
    let size = w
        .next()
        .and_then(parse_u64)
        .ok_or(ParseError("statm: no size"))?;
    let resident = w
        .next()
        .and_then(parse_u64)
        .ok_or(ParseError("statm: no resident size"))?;
    Ok((size, resident))
}

/// Whether `swaps` lists any swap area (a header line, then one line per
/// area). With none, no process has swapped memory.
pub(crate) fn swaps_in_use(buf: &[u8]) -> bool {
    buf.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| !line.trim_ascii().is_empty())
}

/// Sums of `Pss:` and `SwapPss:` over the lines of `smaps_rollup` (one of
/// each) or `smaps` (one per mapping), in kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SmapsSum {
    /// Sum of `Pss:`, kB.
    pub pss_kb: u64,
    /// Sum of `SwapPss:`, kB.
    pub swap_pss_kb: u64,
}

impl SmapsSum {
    /// Adds one line. Only the exact keys count (`Pss_Anon:` and friends do
    /// not); a value that is not a number is an error.
    pub(crate) fn add_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        if let Some(rest) = line.strip_prefix(b"Pss:") {
            let v = first_number(rest, "Pss is not a number")?;
            self.pss_kb = self.pss_kb.saturating_add(v);
        } else if let Some(rest) = line.strip_prefix(b"SwapPss:") {
            let v = first_number(rest, "SwapPss is not a number")?;
            self.swap_pss_kb = self.swap_pss_kb.saturating_add(v);
        }
        Ok(())
    }

    /// Sums a whole file held in memory.
    pub(crate) fn parse(buf: &[u8]) -> Result<SmapsSum, ParseError> {
        let mut s = SmapsSum::default();
        for line in buf.split(|&b| b == b'\n') {
            s.add_line(line)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
