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
