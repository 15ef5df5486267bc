//! `procgroups-workload`: a process with a known shape, for the tests, the
//! benchmarks and the comparison script. It names itself (comm), starts a
//! given number of named threads, holds a given number of open files, can
//! burn CPU and touch memory, can start copies of itself as children, prints
//! `ready <pid>` once all of that is in place, and lives until its standard
//! input closes, its lifetime ends, or it is killed.

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
