//! `procgroups-workload`: a process with a known shape, for the tests, the
//! benchmarks and the comparison script. It names itself (comm), starts a
//! given number of named threads, holds a given number of open files, can
//! burn CPU and touch memory, can start copies of itself as children, prints
//! `ready <pid>` once all of that is in place, and lives until its standard
//! input closes, its lifetime ends, or it is killed.
//!
//! By default it is idle once ready: nothing in it runs again, which a
//! collector can answer from memory. With `--wake-every-ms` it behaves like
//! a daemon with a timer: its main thread (with `--wake-threads`, every
//! thread) wakes on a fixed period, does a little work and sleeps again, so
//! that its scheduler statistics, CPU time and context switches move.
//!
//! With `--churn N` it is instead a supervisor that keeps N copies of itself
//! alive, each living a random time around N / `--exits-per-sec` and
//! replaced when it exits: a population with a set rate of exits.
//!
//! With `--short-children N` it runs, once ready, N short-lived children (copies
//! of itself that burn 2 to 100 ms of CPU and exit), a few at a time, reaps
//! them, and prints `children-cpu <seconds>`: the CPU they used, from its own
//! `cutime` + `cstime`, the figure exit accounting must find.
//!
//! With `--orphans N` it is a subreaper (`PR_SET_CHILD_SUBREAPER`, as
//! `systemd --user` or `containerd-shim` are) that, once ready and told on
//! stdin, starts N intermediate children named `--orphan-parent-name`;
//! each starts one busy child (`--child-name`, `--orphan-busy-ms` of CPU)
//! and exits after `--orphan-after-ms`, before it, so the busy child is
//! orphaned, adopted by this process and reaped here. It then prints
//! `children-cpu <seconds>` as above: the CPU of both generations.

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
    /// Exit after this many ms (0: see --lifetime-secs); added to it.
    #[arg(long, default_value_t = 0)]
    lifetime_ms: u64,
    /// Do not wait for stdin to close (for detached runs); needs a lifetime or a kill.
    #[arg(long)]
    ignore_stdin: bool,
    /// Once ready, wake the main thread every this many ms to do a little
    /// work (0: never wake, stay idle). The first wake is at a phase set by
    /// the PID, so that many copies do not all wake at once.
    #[arg(long, default_value_t = 0)]
    wake_every_ms: u64,
    /// With `--wake-every-ms`, every thread wakes on that period, not only
    /// the main one.
    #[arg(long, requires = "wake_every_ms")]
    wake_threads: bool,
    /// Be a supervisor that keeps this many copies alive (0: be a workload).
    /// They are started with --ignore-stdin, a lifetime, and this process's
    /// --thread-name, --wake-every-ms and --wake-threads.
    #[arg(long, default_value_t = 0)]
    churn: usize,
    /// With --churn: copies that exit, and are replaced, per second on
    /// average. Each lives a time drawn evenly from 0.5 to 1.5 times
    /// churn / exits-per-sec.
    #[arg(long, default_value_t = 100)]
    exits_per_sec: u64,
    /// With --churn: comms of the copies, comma-separated, taken in turn.
    #[arg(long, default_value = "pgchurn")]
    churn_names: String,
    /// With --churn: extra threads of the copies, comma-separated, taken in
    /// turn.
    #[arg(long, default_value = "0")]
    churn_threads: String,
    /// After `ready`, run this many short-lived busy children, then print
    /// `children-cpu <seconds>`.
    #[arg(long, default_value_t = 0)]
    short_children: usize,
    /// Wait this long after `ready` before the short-lived children start,
    /// in ms.
    #[arg(long, default_value_t = 0)]
    short_children_delay_ms: u64,
    /// Start the short-lived children only once a line arrives on stdin.
    #[arg(long)]
    short_children_on_input: bool,
    /// Short-lived children running at once.
    #[arg(long, default_value_t = 2)]
    short_children_parallel: usize,
    /// Be a subreaper; after `ready` and a line on stdin, run this many
    /// intermediate children whose busy children are orphaned and adopted
    /// here, reap them all, then print `children-cpu <seconds>`.
    #[arg(long, default_value_t = 0)]
    orphans: usize,
    /// With --orphans: comm of the intermediate children.
    #[arg(long, default_value = "pgorphanparent")]
    orphan_parent_name: String,
    /// CPU each orphaned child burns, in ms.
    #[arg(long, default_value_t = 600)]
    orphan_busy_ms: u64,
    /// Be an intermediate child: start one child burning --orphan-busy-ms
    /// of CPU, named --child-name, and exit this many ms later without
    /// waiting for it (0: not an intermediate).
    #[arg(long, default_value_t = 0)]
    orphan_after_ms: u64,
}

/// How a thread spends its time once the process is ready.
#[derive(Debug, Clone, Copy)]
enum Idle {
    /// Sleeps an hour at a time.
    Sleep,
    /// Spins (CPU load).
    Spin,
    /// Wakes every `period` (first after `phase`) to do a little work.
    Wake { period: Duration, phase: Duration },
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.churn > 0 {
        return supervise(&args);
    }
    if args.orphan_after_ms > 0 {
        return leave_an_orphan(&args);
    }
    if args.orphans > 0 {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .context("becoming a child subreaper")?;
    }
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

    let period = Duration::from_millis(args.wake_every_ms);
    start_threads(&args, period)?;
    let me = std::env::current_exe().context("finding own executable")?;
    let children = start_children(&args, &me)?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", std::process::id())?;
    out.flush()?;
    drop(out);

    if args.short_children > 0 {
        short_children(&args, &me)?;
    }
    if args.orphans > 0 {
        adopt_orphans(&args, &me)?;
    }
    live(&args, period);

    for mut c in children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    drop(files);
    std::hint::black_box(&memory);
    Ok(())
}

/// Starts the named threads and waits until every one has named itself,
/// so that `ready` means the thread names are visible in /proc.
fn start_threads(args: &Args, period: Duration) -> Result<()> {
    let started = std::sync::Arc::new(std::sync::Barrier::new(args.threads + 1));
    for i in 0..args.threads {
        let idle = if args.spin {
            Idle::Spin
        } else if args.wake_threads && !period.is_zero() {
            Idle::Wake {
                period,
                phase: phase(period, i + 1),
            }
        } else {
            Idle::Sleep
        };
        let started = started.clone();
        std::thread::Builder::new()
            .name(args.thread_name.clone())
            .spawn(move || {
                started.wait();
                match idle {
                    Idle::Spin => loop {
                        burn(Duration::from_millis(50));
                    },
                    Idle::Sleep => loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    },
                    Idle::Wake { period, phase } => {
                        wake_until(period, phase, None, None);
                    }
                }
            })
            .context("starting a thread")?;
    }
    started.wait();
    Ok(())
}

/// Starts the long-lived children (copies of this program, `me`), each
/// waited for until it is ready, so that `ready` means the whole tree is
/// in place. They live until their standard input closes.
fn start_children(args: &Args, me: &std::path::Path) -> Result<Vec<Child>> {
    let mut children: Vec<Child> = Vec::with_capacity(args.children);
    for _ in 0..args.children {
        let mut cmd = Command::new(me);
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
    Ok(children)
}

/// Runs the short-lived children (after the delay, and the go line when
/// asked) and prints the CPU they used, as its own children totals count
/// it: the figure the tests compare exit accounting with.
fn short_children(args: &Args, me: &std::path::Path) -> Result<()> {
    std::thread::sleep(Duration::from_millis(args.short_children_delay_ms));
    if args.short_children_on_input {
        let mut go = String::new();
        std::io::stdin()
            .read_line(&mut go)
            .context("waiting for the go line")?;
    }
    let cpu = run_children(
        me,
        &args.child_name,
        args.short_children,
        args.short_children_parallel,
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "children-cpu {cpu:.3}")?;
    out.flush()?;
    Ok(())
}

/// Starts `--orphans` intermediate children, two at a time, and reaps
/// every process that ends below this one (the intermediates and the
/// orphans they leave, adopted here) until none is left; prints the CPU
/// they all used, from this process's children totals.
fn adopt_orphans(args: &Args, me: &std::path::Path) -> Result<()> {
    use rustix::process::{WaitOptions, wait};
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .context("waiting for the go line")?;
    let before = children_cpu()?;
    let mut alive = 0usize;
    for _ in 0..args.orphans {
        while alive >= 4 {
            match wait(WaitOptions::empty()) {
                Ok(Some(_)) => alive -= 1,
                Ok(None) | Err(rustix::io::Errno::CHILD) => alive = 0,
                Err(e) => return Err(e).context("reaping below the subreaper"),
            }
        }
        // The intermediate is reaped through `wait` below, with its orphan.
        drop(
            Command::new(me)
                .arg("--name")
                .arg(&args.orphan_parent_name)
                .arg("--child-name")
                .arg(&args.child_name)
                .arg("--orphan-busy-ms")
                .arg(args.orphan_busy_ms.to_string())
                .arg("--orphan-after-ms")
                .arg((args.orphan_busy_ms / 2).max(1).to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .context("starting an intermediate child")?,
        );
        alive += 2;
    }
    loop {
        match wait(WaitOptions::empty()) {
            Ok(Some(_)) => {}
            Ok(None) | Err(rustix::io::Errno::CHILD) => break,
            Err(e) => return Err(e).context("reaping below the subreaper"),
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "children-cpu {:.3}", children_cpu()? - before)?;
    out.flush()?;
    Ok(())
}

/// An intermediate child: starts one busy child and exits before it,
/// without waiting for it, so that it is orphaned.
fn leave_an_orphan(args: &Args) -> Result<()> {
    let comm = CString::new(args.name.as_bytes()).context("--name contains a NUL byte")?;
    rustix::thread::set_name(&comm).context("setting comm")?;
    let me = std::env::current_exe().context("finding own executable")?;
    drop(
        Command::new(me)
            .arg("--name")
            .arg(&args.child_name)
            .arg("--busy-ms")
            .arg(args.orphan_busy_ms.to_string())
            .args(["--ignore-stdin", "--lifetime-ms", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the child to orphan")?,
    );
    std::thread::sleep(Duration::from_millis(args.orphan_after_ms));
    Ok(())
}

/// Lives until the lifetime ends or standard input closes (unless told to
/// ignore it), waking on its period when it has one.
fn live(args: &Args, period: Duration) {
    let life = Duration::from_secs(args.lifetime_secs) + Duration::from_millis(args.lifetime_ms);
    let deadline = (!life.is_zero()).then(|| Instant::now() + life);
    if !period.is_zero() {
        let stdin_closed = (!args.ignore_stdin).then(watch_stdin);
        wake_until(period, phase(period, 0), deadline, stdin_closed.as_ref());
    } else if args.ignore_stdin {
        let life = deadline.map_or(Duration::from_secs(u64::MAX / 4), |d| {
            d.saturating_duration_since(Instant::now())
        });
        std::thread::sleep(life);
    } else if let Some(deadline) = deadline {
        let rx = watch_stdin();
        let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    } else {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    }
}

/// Keeps `args.churn` copies of this program alive, each for a random
/// lifetime, starting a new one as soon as one has exited; prints `ready
/// <pid>` once the first ones are started, and runs until killed.
fn supervise(args: &Args) -> Result<()> {
    use rustix::process::{WaitOptions, wait};
    let names: Vec<&str> = args.churn_names.split(',').collect();
    let threads: Vec<&str> = args.churn_threads.split(',').collect();
    let me = std::env::current_exe().context("finding own executable")?;
    // Mean lifetime in ms for the asked rate of exits.
    let mean_ms = (args.churn as u64 * 1000 / args.exits_per_sec.max(1)).max(2);
    let mut seed = u64::from(std::process::id()) | 1;
    let mut alive = 0usize;
    let mut started = 0usize;
    let mut ready = false;
    loop {
        while alive < args.churn {
            // xorshift64: lifetimes need only be spread, not unpredictable.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let life_ms = mean_ms / 2 + seed % mean_ms.max(1);
            let mut cmd = Command::new(&me);
            cmd.arg("--name")
                .arg(names[started % names.len()])
                .arg("--threads")
                .arg(threads[started % threads.len()])
                .arg("--thread-name")
                .arg(&args.thread_name)
                .arg("--ignore-stdin")
                .arg("--lifetime-ms")
                .arg(life_ms.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            if args.wake_every_ms > 0 {
                cmd.arg("--wake-every-ms")
                    .arg(args.wake_every_ms.to_string());
                if args.wake_threads {
                    cmd.arg("--wake-threads");
                }
            }
            // Reaped below by waiting for any child, not through the handle.
            drop(cmd.spawn().context("starting a copy")?);
            alive += 1;
            started += 1;
        }
        if !ready {
            println!("ready {}", std::process::id());
            std::io::stdout().flush()?;
            ready = true;
        }
        while let Ok(Some(_)) = wait(WaitOptions::NOHANG) {
            alive = alive.saturating_sub(1);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A thread that reads stdin to its end, then says so on the channel.
fn watch_stdin() -> std::sync::mpsc::Receiver<()> {
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
    rx
}

/// When thread `index` (0: the main one) of this process first wakes, within
/// one `period`: spread by PID and index, so that thousands of copies
/// started together do not all wake in the same millisecond.
fn phase(period: Duration, index: usize) -> Duration {
    let ms = period.as_millis().max(1) as u64;
    let seed = u64::from(std::process::id()).wrapping_mul(7919) + index as u64 * 104_729;
    Duration::from_millis(seed % ms)
}

/// Wakes every `period` (the first time after `phase`) to do a little
/// work, until `deadline` or until `stdin_closed` fires (never, for
/// `None`). Wakes are on a fixed schedule, not a fixed gap: a late wake
/// does not shift the ones after it, and missed ones are skipped.
fn wake_until(
    period: Duration,
    phase: Duration,
    deadline: Option<Instant>,
    stdin_closed: Option<&std::sync::mpsc::Receiver<()>>,
) {
    let mut next = Instant::now() + phase;
    loop {
        let until = deadline.map_or(next, |d| d.min(next));
        let wait = until.saturating_duration_since(Instant::now());
        match stdin_closed {
            Some(rx) => match rx.recv_timeout(wait) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            },
            None => std::thread::sleep(wait),
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return;
        }
        if now >= next {
            little_work();
            while next <= now {
                next += period;
            }
        }
    }
}

/// What a timer of a daemon does when it fires: a few microseconds of CPU.
fn little_work() {
    let mut x = 0u64;
    for i in 0..2_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    std::hint::black_box(x);
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

/// CPU each churn child burns, in ms, in turn: a few ms to 100 ms.
const CHURN_BUSY_MS: [u64; 6] = [2, 5, 10, 20, 40, 100];

/// Runs `n` children of `me` named `name`, `parallel` at a time, each
/// burning CPU then exiting; returns the CPU all of them used, as the
/// kernel added it to this process's children totals.
fn run_children(me: &std::path::Path, name: &str, n: usize, parallel: usize) -> Result<f64> {
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
