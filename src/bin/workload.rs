//! `procgroups-workload`: a process with a known shape, for the tests, the
//! benchmarks and the comparison script. It names itself (comm), starts a
//! given number of named threads, holds a given number of open files, can
//! burn CPU and touch memory, can start copies of itself as children, prints
//! `ready <pid>` once all of that is in place, and lives until its standard
//! input closes, its lifetime ends, or it is killed.
//!
//! With `--churn N` it then runs N short-lived children (copies of itself
//! that burn 2 to 100 ms of CPU and exit), a few at a time, reaps them,
//! and prints `children-cpu <seconds>`: the CPU they used, from its own
//! `cutime` + `cstime`, the figure exit accounting must find.

use std::ffi::CString;
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

/// A process with a known name, thread count and open files.
#[derive(Debug, Parser)]
#[command(name = "procgroups-workload")]
struct Args {
    /// comm of the process (at most 15 bytes are kept by the kernel).
    #[arg(long, default_value = "pgworkload")]
    name: String,
    /// Threads started besides the main one.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// comm of those threads.
    #[arg(long, default_value = "worker")]
    thread_name: String,
    /// Files held open besides stdin/stdout/stderr.
    #[arg(long, default_value_t = 0)]
    files: usize,
    /// CPU to burn in the main thread before reporting ready, in ms.
    #[arg(long, default_value_t = 0)]
    busy_ms: u64,
    /// Keep the extra threads spinning (CPU load) instead of sleeping.
    #[arg(long)]
    spin: bool,
    /// Memory to allocate and touch before reporting ready, in KiB.
    #[arg(long, default_value_t = 0)]
    touch_kib: usize,
    /// Children started as copies of this process, named `--child-name`.
    #[arg(long, default_value_t = 0)]
    children: usize,
    /// comm of the children.
    #[arg(long, default_value = "pgchild")]
    child_name: String,
    /// Exit after this many seconds (0: live until stdin closes).
    #[arg(long, default_value_t = 0)]
    lifetime_secs: u64,
    /// Do not wait for stdin to close (for detached runs); needs a lifetime or a kill.
    #[arg(long)]
    ignore_stdin: bool,
    /// After `ready`, run this many short-lived busy children, then print
    /// `children-cpu <seconds>`.
    #[arg(long, default_value_t = 0)]
    churn: usize,
    /// Wait this long after `ready` before the churn starts, in ms.
    #[arg(long, default_value_t = 0)]
    churn_delay_ms: u64,
    /// Start the churn only once a line arrives on stdin.
    #[arg(long)]
    churn_on_input: bool,
    /// Churn children running at once.
    #[arg(long, default_value_t = 2)]
    churn_parallel: usize,
}

/// CPU each churn child burns, in ms, in turn: a few ms to 100 ms.
const CHURN_BUSY_MS: [u64; 6] = [2, 5, 10, 20, 40, 100];

/// Runs `n` children of `me` named `name`, `parallel` at a time, each
/// burning CPU then exiting; returns the CPU all of them used, as the
/// kernel added it to this process's children totals.
fn churn(me: &std::path::Path, name: &str, n: usize, parallel: usize) -> Result<f64> {
    let before = children_cpu()?;
    let mut running: std::collections::VecDeque<Child> = std::collections::VecDeque::new();
    for i in 0..n {
        if running.len() >= parallel.max(1)
            && let Some(mut c) = running.pop_front()
        {
            c.wait().context("reaping a churn child")?;
        }
        let busy = CHURN_BUSY_MS[i % CHURN_BUSY_MS.len()];
        let child = Command::new(me)
            .arg("--name")
            .arg(name)
            .arg("--busy-ms")
            .arg(busy.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting a churn child")?;
        running.push_back(child);
    }
    for mut c in running {
        c.wait().context("reaping a churn child")?;
    }
    Ok(children_cpu()? - before)
}

/// `cutime` + `cstime` of this process (fields 16 and 17 of its `stat`),
/// in seconds.
fn children_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no comm in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm, field 3 is at index 0: cutime (16) is index 13.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("stat too short")?
            .parse::<u64>()
            .context("stat field not a number")
    };
    let hz = rustix::param::clock_ticks_per_second() as f64;
    Ok((tick(13)? + tick(14)?) as f64 / hz)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let comm = CString::new(args.name.as_bytes()).context("--name contains a NUL byte")?;
    rustix::thread::set_name(&comm).context("setting comm")?;

    let mut files = Vec::with_capacity(args.files);
    for _ in 0..args.files {
        files.push(std::fs::File::open("/dev/null").context("opening /dev/null")?);
    }

    let mut memory: Vec<u8> = Vec::new();
    if args.touch_kib > 0 {
        memory = vec![0u8; args.touch_kib * 1024];
        for i in (0..memory.len()).step_by(4096) {
            memory[i] = 1;
        }
    }

    if args.busy_ms > 0 {
        burn(Duration::from_millis(args.busy_ms));
    }

    // Every thread names itself on start; wait until all have, so that
    // `ready` means the thread names are visible in /proc.
    let started = std::sync::Arc::new(std::sync::Barrier::new(args.threads + 1));
    for _ in 0..args.threads {
        let spin = args.spin;
        let started = started.clone();
        std::thread::Builder::new()
            .name(args.thread_name.clone())
            .spawn(move || {
                started.wait();
                loop {
                    if spin {
                        burn(Duration::from_millis(50));
                    } else {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
            })
            .context("starting a thread")?;
    }

    started.wait();

    let mut children: Vec<Child> = Vec::with_capacity(args.children);
    let me = std::env::current_exe().context("finding own executable")?;
    for _ in 0..args.children {
        let mut cmd = Command::new(&me);
        cmd.arg("--name")
            .arg(&args.child_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if args.lifetime_secs > 0 {
            cmd.arg("--lifetime-secs")
                .arg(args.lifetime_secs.to_string());
        }
        let mut child = cmd.spawn().context("starting a child")?;
        if let Some(out) = child.stdout.take() {
            let mut line = String::new();
            std::io::BufReader::new(out)
                .read_line(&mut line)
                .context("waiting for a child")?;
        }
        children.push(child);
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", std::process::id())?;
    out.flush()?;
    drop(out);

    if args.churn > 0 {
        std::thread::sleep(Duration::from_millis(args.churn_delay_ms));
        if args.churn_on_input {
            let mut go = String::new();
            std::io::stdin()
                .read_line(&mut go)
                .context("waiting for the go line")?;
        }
        let cpu = churn(&me, &args.child_name, args.churn, args.churn_parallel)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "children-cpu {cpu:.3}")?;
        out.flush()?;
    }

    if args.ignore_stdin {
        let life = if args.lifetime_secs > 0 {
            args.lifetime_secs
        } else {
            u64::MAX / 4
        };
        std::thread::sleep(Duration::from_secs(life));
    } else if args.lifetime_secs > 0 {
        let deadline = Instant::now() + Duration::from_secs(args.lifetime_secs);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    } else {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    }

    for mut c in children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    drop(files);
    std::hint::black_box(&memory);
    Ok(())
}

/// Spins for `d` of wall time (close to `d` of CPU on an idle core).
fn burn(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
}
