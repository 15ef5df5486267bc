//! The parsers on real kernel output (copied from a live `/proc`) and on
//! the malformed and truncated forms they must refuse without panicking.

use super::*;

const STAT_14804: &[u8] = b"14804 (process-exporte) S 10884 14804 10884 34834 14895 1077936128 1603 0 767 0 10 4 0 0 20 0 7 0 324219 17174528 1969 18446744073709551615 4194304 7971236 140736389529632 140736389529064 4564099 0 0 0 2143420159 0 0 0 17 4 0 0 2 0 0 10805248 11036864 42311680 140736389534279 140736389534314 140736389534314 140736389537765 0\n";

fn stat_with_comm(comm: &[u8]) -> Vec<u8> {
    let mut v = b"77 (".to_vec();
    v.extend_from_slice(comm);
    v.extend_from_slice(
        b") R 1 77 77 0 -1 4194560 11 0 2 0 3 5 0 0 20 0 1 0 900 4096 7 18446744073709551615 0 0\n",
    );
    v
}

#[test]
fn btime_of_the_system_stat() {
    let stat = b"cpu  1 2 3 4\nctxt 30119844\nbtime 1508450329\nprocesses 28048\n";
    assert_eq!(parse_btime(stat), Ok(1508450329));
    assert_eq!(parse_btime(b"btime 7"), Ok(7));
    for bad in [
        &b""[..],
        b"cpu 1 2 3\n",
        b"btime soon\n",
        b"btime \n",
        b"xbtime 5\n",
    ] {
        assert!(
            parse_btime(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn stat_fields_by_number() {
    let mut comm = String::from("left over");
    let s = parse_stat(STAT_14804, &mut comm).unwrap();
    assert_eq!(comm, "process-exporte");
    assert_eq!(
        s,
        StatFields {
            state: b'S',
            ppid: 10884,
            flags: 1077936128,
            minflt: 1603,
            majflt: 767,
            utime: 10,
            stime: 4,
            num_threads: 7,
            starttime: 324219,
            vsize: 17174528,
            rss: 1969,
            ..StatFields::default()
        }
    );
}

#[test]
fn stat_children_totals_are_fields_11_13_16_17() {
    // A shell that has reaped children: cminflt 5120, cmajflt 3,
    // cutime 250, cstime 40.
    let line = b"900 (bash) S 1 900 900 0 -1 4194560 1200 5120 2 3 30 8 250 40 20 0 1 0 5000 9000000 800 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
    let s = parse_stat(line, &mut String::new()).unwrap();
    assert_eq!(
        (s.minflt, s.cminflt, s.majflt, s.cmajflt),
        (1200, 5120, 2, 3)
    );
    assert_eq!((s.utime, s.stime, s.cutime, s.cstime), (30, 8, 250, 40));
    assert_eq!((s.num_threads, s.starttime), (1, 5000));
    // Cut before the children's CPU: an error, not zeros.
    let cut = b"900 (bash) S 1 900 900 0 -1 4194560 1200 5120 2 3 30 8 250";
    assert!(parse_stat(cut, &mut String::new()).is_err());
}

#[test]
fn comm_with_parentheses_spaces_and_newlines() {
    for comm in [
        &b"a) b"[..],
        b"(sd-pam)",
        b"x) R 1 2 (",
        b"two\nlines)",
        b"",
        b" ",
    ] {
        let mut got = String::new();
        let s = parse_stat(&stat_with_comm(comm), &mut got).unwrap();
        assert_eq!(got.as_bytes(), comm);
        assert_eq!(s.state, b'R');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.starttime, 900);
        assert_eq!(s.rss, 7);
    }
}

#[test]
fn comm_that_is_not_utf8_is_replaced() {
    let mut got = String::new();
    parse_stat(&stat_with_comm(b"w\xffx"), &mut got).unwrap();
    assert_eq!(got, "w\u{fffd}x");
}

#[test]
fn truncated_stat_is_an_error_at_every_length() {
    let full = STAT_14804;
    // Everything up to and including field 24 (rss) is needed, and a
    // separator after it to know that it is complete.
    let needed = full
        .windows(6)
        .position(|w| w == b" 1969 ")
        .map(|i| i + 6)
        .unwrap();
    let mut comm = String::new();
    for len in 0..needed {
        assert!(
            parse_stat(&full[..len], &mut comm).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(&full[..len])
        );
    }
    assert!(parse_stat(&full[..needed], &mut comm).is_ok());
}

#[test]
fn garbled_stat_is_an_error() {
    let mut comm = String::new();
    for bad in [
        &b")(a"[..],
        b"1 (a) S x 1",
        b"1 (a) SS 1",
        b"1 (a) S 1 1 1 1 1 1 -5 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
        b"1 (a) S 99999999999 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
    ] {
        assert!(parse_stat(bad, &mut comm).is_err(), "{bad:?}");
    }
}

#[test]
fn cmdline_split_on_nul_with_trailing_nuls_trimmed() {
    assert_eq!(
        parse_cmdline(b"./process-exporter\0-procnames\0bash\0"),
        ["./process-exporter", "-procnames", "bash"]
    );
    assert_eq!(parse_cmdline(b"a\0\0b\0\0\0"), ["a", "", "b"]);
    // setproctitle-style: one string with spaces.
    assert_eq!(
        parse_cmdline(b"nginx: worker process"),
        ["nginx: worker process"]
    );
}

#[test]
fn empty_cmdline_is_an_empty_list() {
    assert!(parse_cmdline(b"").is_empty());
    assert!(parse_cmdline(b"\0").is_empty());
    assert!(parse_cmdline(b"\0\0\0").is_empty());
}

#[test]
fn cmdline_that_is_not_utf8_is_replaced() {
    assert_eq!(
        parse_cmdline(b"/bin/caf\xe9\0--x=\xff\xfe\0"),
        ["/bin/caf\u{fffd}", "--x=\u{fffd}\u{fffd}"]
    );
}

#[test]
fn cgroup_paths_keep_their_colons() {
    assert_eq!(
        parse_cgroup(b"12:pids:/user.slice/a:b\n1:name=systemd:/x\n0::/\n\ngarbage\n"),
        ["/user.slice/a:b", "/x", "/"]
    );
    assert!(parse_cgroup(b"").is_empty());
}

#[test]
fn status_fields() {
    let s = parse_status(
        b"Name:\tx\nUid:\t1000\t1001\t1002\t1003\nVmPeak:\t 9000 kB\nVmSize:\t    8748 kB\nVmHWM:\t 5000 kB\nVmRSS:\t    4912 kB\nRssAnon:\t 512 kB\nVmSwap:\t      10 kB\nvoluntary_ctxt_switches:\t72\nnonvoluntary_ctxt_switches:\t6\n",
    )
    .unwrap();
    assert_eq!(
        s,
        StatusFields {
            euid: 1001,
            ctx_voluntary: 72,
            ctx_nonvoluntary: 6,
            vm_swap_kb: 10,
            vm_size_kb: 8748,
            vm_rss_kb: 4912,
        }
    );
    // A kernel thread has no Vm lines.
    let kthread = parse_status(b"Uid:\t0\t0\t0\t0\n").unwrap();
    assert_eq!(
        (kthread.vm_swap_kb, kthread.vm_size_kb, kthread.vm_rss_kb),
        (0, 0, 0)
    );
    assert!(parse_status(b"Uid:\t0\t0\t0\t0\nVmRSS:\t? kB\n").is_err());
    assert!(parse_status(b"Name:\tx\n").is_err());
    assert!(parse_status(b"Uid:\t0\n").is_err());
    assert!(parse_status(b"Uid:\t0\tx\t0\t0\n").is_err());
    assert!(parse_status(b"Uid:\t0\t0\nVmSwap:\tlots kB\n").is_err());
}

#[test]
fn io_needs_both_byte_counts() {
    assert_eq!(
        parse_io(b"rchar: 1\nread_bytes: 1814455\nwrite_bytes: 0\n").unwrap(),
        (1814455, 0)
    );
    assert!(parse_io(b"read_bytes: 1\n").is_err());
    assert!(parse_io(b"read_bytes: -1\nwrite_bytes: 0\n").is_err());
    // cancelled_write_bytes must not be taken for write_bytes.
    assert!(parse_io(b"read_bytes: 1\ncancelled_write_bytes: 3\n").is_err());
}

#[test]
fn limits_soft_max_open_files() {
    let limits =
        b"Limit                     Soft Limit           Hard Limit           Units     \n\
Max processes             31421                31421                processes \n\
Max open files            1024                 65536                files     \n";
    assert_eq!(parse_max_open_files(limits).unwrap(), 1024);
}

#[test]
fn limits_unlimited_is_u64_max() {
    let limits =
        b"Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            unlimited            unlimited            files     \n";
    assert_eq!(parse_max_open_files(limits).unwrap(), u64::MAX);
    assert!(parse_max_open_files(b"Max open files\n").is_err());
    assert!(parse_max_open_files(b"Max open files   many  many files\n").is_err());
    assert!(parse_max_open_files(b"").is_err());
}

#[test]
fn wchan_zero_or_empty_means_not_waiting() {
    assert_eq!(parse_wchan(b"0"), "");
    assert_eq!(parse_wchan(b""), "");
    assert_eq!(parse_wchan(b"do_epoll_wait"), "do_epoll_wait");
}

#[test]
fn smaps_sums_exact_keys_only() {
    let rollup = b"00400000-7ffc [rollup]\nRss:  100 kB\nPss:  40 kB\nPss_Anon:  30 kB\nPss_File: 10 kB\nSwap: 9 kB\nSwapPss:  7 kB\n";
    assert_eq!(
        SmapsSum::parse(rollup).unwrap(),
        SmapsSum {
            pss_kb: 40,
            swap_pss_kb: 7
        }
    );
    let mut twice = rollup.to_vec();
    twice.extend_from_slice(rollup);
    assert_eq!(SmapsSum::parse(&twice).unwrap().pss_kb, 80);
    assert!(SmapsSum::parse(b"Pss: x kB\n").is_err());
}

#[test]
fn schedstat_triple() {
    assert_eq!(
        parse_schedstat(b"3493157 125520 11\n").unwrap(),
        Schedstat {
            run_ns: 3493157,
            slices: 11
        }
    );
    assert!(!parse_schedstat(b"0 0 0\n").unwrap().is_counting());
    assert!(parse_schedstat(b"1 2\n").is_err());
    assert!(parse_schedstat(b"1 x 3\n").is_err());
}

#[test]
fn statm_size_and_resident() {
    assert_eq!(parse_statm(b"765 430 382 5 0 90 0\n").unwrap(), (765, 430));
    assert_eq!(parse_statm(b"0 0 0 0 0 0 0\n").unwrap(), (0, 0));
    assert!(parse_statm(b"765\n").is_err());
}

#[test]
fn swaps_header_alone_means_no_swap() {
    let header = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
    assert!(!swaps_in_use(header));
    assert!(!swaps_in_use(b""));
    let mut one = header.to_vec();
    one.extend_from_slice(b"/swapfile   file\t\t1048572\t\t0\t\t-2\n");
    assert!(swaps_in_use(&one));
}

#[test]
fn pids_are_positive_decimal_names() {
    assert_eq!(parse_pid(b"14804"), Some(14804));
    for bad in [&b"self"[..], b"0", b"-1", b"", b"1a", b"99999999999", b"."] {
        assert_eq!(parse_pid(bad), None);
    }
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let mut comm = String::new();
        let _ = parse_stat(&bytes, &mut comm);
        let _ = parse_status(&bytes);
        let _ = parse_io(&bytes);
        let _ = parse_max_open_files(&bytes);
        let _ = SmapsSum::parse(&bytes);
        let _ = parse_cmdline(&bytes);
        let _ = parse_cgroup(&bytes);
        let _ = parse_wchan(&bytes);
        let _ = parse_pid(&bytes);
        let _ = parse_schedstat(&bytes);
        let _ = parse_statm(&bytes);
        let _ = swaps_in_use(&bytes);
    }

    #[test]
    fn stat_mutations_never_panic(cut in 0usize..400, flip in 0usize..400, byte in proptest::num::u8::ANY) {
        let mut v = STAT_14804.to_vec();
        if let Some(b) = v.get_mut(flip) { *b = byte; }
        v.truncate(cut);
        let mut comm = String::new();
        let _ = parse_stat(&v, &mut comm);
    }
}

/// The parsers as they were written first, on the standard library's
/// splitting alone: the faster ones above must give the same answer, error
/// or value, for any input.
mod reference {
    use super::super::{ParseError, StatFields, StatusFields, int, num, parse_u64};

    fn words(b: &[u8]) -> impl Iterator<Item = &[u8]> {
        b.split(|c| c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
    }

    fn first_number(rest: &[u8], what: &'static str) -> Result<u64, ParseError> {
        words(rest)
            .next()
            .and_then(parse_u64)
            .ok_or(ParseError(what))
    }

    pub(super) fn parse_stat(buf: &[u8], comm: &mut String) -> Result<StatFields, ParseError> {
        let open = buf
            .iter()
            .position(|&b| b == b'(')
            .ok_or(ParseError("no '(' before the comm"))?;
        let close = buf
            .iter()
            .rposition(|&b| b == b')')
            .ok_or(ParseError("no ')' after the comm"))?;
        if close < open {
            return Err(ParseError("')' before '('"));
        }
        comm.clear();
        comm.push_str(&String::from_utf8_lossy(&buf[open + 1..close]));
        let mut s = StatFields::default();
        let mut fields = words(&buf[close + 1..]);
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
        if fields.next().is_none() && !buf.last().is_some_and(u8::is_ascii_whitespace) {
            return Err(ParseError("stat is truncated in field 24 (rss)"));
        }
        Ok(s)
    }

    pub(super) fn parse_status(buf: &[u8]) -> Result<StatusFields, ParseError> {
        let mut s = StatusFields::default();
        let mut have_uid = false;
        for line in buf.split(|&b| b == b'\n') {
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
            } else if let Some(rest) = line.strip_prefix(b"voluntary_ctxt_switches:") {
                s.ctx_voluntary = first_number(rest, "voluntary_ctxt_switches is not a number")?;
            } else if let Some(rest) = line.strip_prefix(b"nonvoluntary_ctxt_switches:") {
                s.ctx_nonvoluntary =
                    first_number(rest, "nonvoluntary_ctxt_switches is not a number")?;
            } else if let Some(rest) = line.strip_prefix(b"VmSwap:") {
                s.vm_swap_kb = first_number(rest, "VmSwap is not a number")?;
            } else if let Some(rest) = line.strip_prefix(b"VmSize:") {
                s.vm_size_kb = first_number(rest, "VmSize is not a number")?;
            } else if let Some(rest) = line.strip_prefix(b"VmRSS:") {
                s.vm_rss_kb = first_number(rest, "VmRSS is not a number")?;
            }
        }
        if !have_uid {
            return Err(ParseError("no Uid: line"));
        }
        Ok(s)
    }

    pub(super) fn parse_io(buf: &[u8]) -> Result<(u64, u64), ParseError> {
        let mut read = None;
        let mut write = None;
        for line in buf.split(|&b| b == b'\n') {
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
}

/// `stat`, `status` and `io` of live tasks (this process's, and init's
/// when readable): the parsers agree with the reference ones on them.
#[test]
fn parsers_agree_with_the_reference_on_live_files() {
    let mut read = 0;
    for pid in ["self", "thread-self", "1"] {
        for (file, check) in [("stat", 0), ("status", 1), ("io", 2)] {
            let Ok(buf) = std::fs::read(format!("/proc/{pid}/{file}")) else {
                continue;
            };
            read += 1;
            assert_same(&buf, check);
        }
    }
    assert!(read >= 4, "{read} files read");
}

/// Checks one parser (0 stat, 1 status, 2 io) against its reference.
fn assert_same(buf: &[u8], which: u8) {
    let text = String::from_utf8_lossy(buf);
    match which {
        0 => {
            let (mut a, mut b) = (String::from("x"), String::from("y"));
            let got = parse_stat(buf, &mut a);
            assert_eq!(got, reference::parse_stat(buf, &mut b), "{text:?}");
            if got.is_ok() {
                assert_eq!(a, b, "{text:?}");
            }
        }
        1 => assert_eq!(parse_status(buf), reference::parse_status(buf), "{text:?}"),
        _ => assert_eq!(parse_io(buf), reference::parse_io(buf), "{text:?}"),
    }
}

const STATUS_SAMPLE: &[u8] = b"Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t15923\nPid:\t15923\nPPid:\t1\nUid:\t0\t33\t0\t0\nGid:\t0\t0\t0\t0\nVmPeak:\t   12000 kB\nVmSize:\t   11436 kB\nVmRSS:\t    4100 kB\nVmSwap:\t       0 kB\nThreads:\t3\nvoluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t17\n";
const IO_SAMPLE: &[u8] = b"rchar: 7525\nwchar: 12\nsyscr: 12\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";

proptest::proptest! {
    #[test]
    fn parsers_agree_with_the_reference_on_any_bytes(
        tokens in proptest::collection::vec(proptest::sample::select(vec![
            &b"Uid:"[..], b"VmRSS:", b"VmSize:", b"VmSwap:", b"voluntary_ctxt_switches:",
            b"nonvoluntary_ctxt_switches:", b"read_bytes:", b"write_bytes:", b"\t", b" ",
            b"\n", b"12", b"0", b"18446744073709551616", b"x", b"(", b")", b"S", b"-", b"\xff",
        ]), 0..80)
    ) {
        let bytes = tokens.concat();
        for which in 0..3 {
            assert_same(&bytes, which);
        }
    }

    #[test]
    fn parsers_agree_with_the_reference_on_mutated_files(
        which in 0u8..3,
        cut in 0usize..600,
        flip in 0usize..600,
        byte in proptest::sample::select(b" \t\n0123456789x():-".to_vec()),
    ) {
        let mut v = match which {
            0 => STAT_14804.to_vec(),
            1 => STATUS_SAMPLE.to_vec(),
            _ => IO_SAMPLE.to_vec(),
        };
        if let Some(b) = v.get_mut(flip) { *b = byte; }
        v.truncate(cut);
        assert_same(&v, which);
    }
}
