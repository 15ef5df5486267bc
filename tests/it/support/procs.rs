//! Child processes of the tests: the agent binary (with a clean `OTEL_*`
//! environment and its log captured), the `procgroups-workload` process of
//! known shape, and lookup of external tools.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A comm (at most 15 bytes) unique to this test process and call, so that
/// parallel tests and other users of the machine never share a group.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let name = format!("{tag}{}x{n}", std::process::id() % 100_000);
    assert!(name.len() <= 15, "{name} is longer than a comm");
    name
}

/// This process's descriptors that a child inherits besides 0-2: those
/// without close-on-exec, such as a jobserver pipe passed down by cargo or a
/// descriptor leaked by the shell that started the tests. The `flags` line of
/// `fdinfo` includes `O_CLOEXEC` (octal 02000000) when it is set.
pub fn inherited_fds() -> Vec<u32> {
    const O_CLOEXEC: u32 = 0o2000000;
    let mut fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .filter(|fd| {
            // The listing's own descriptor is gone by now: no fdinfo.
            std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
                .ok()
                .and_then(|info| {
                    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
                    u32::from_str_radix(flags.trim(), 8).ok()
                })
                .is_some_and(|flags| flags & O_CLOEXEC == 0)
        })
        .collect();
    fds.sort_unstable();
    fds
}

/// The `procgroups-workload` binary.
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_procgroups-workload");

/// Starts `exe` (the workload binary, or a link to it) with `args`, stdin
/// and stdout piped, and waits for its `ready <pid>` line: its threads are
/// named and its files open by then. Closing the child's stdin ends it.
pub fn start_workload(exe: &Path, args: &[&str]) -> (Child, i32) {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    start_workload_command(cmd)
}

/// [`start_workload`] with a prepared command: the workload binary, or a
/// program that execs it (such as `setpriv`), so that the PID is the
/// workload's.
pub fn start_workload_command(mut cmd: Command) -> (Child, i32) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting procgroups-workload");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("workload said {line:?}"));
    assert_eq!(pid as u32, child.id());
    (child, pid)
}

/// Starts the workload as itself (its command line is known exactly), for
/// tests that read its `/proc` entry directly; end it with [`stop_workload`].
pub fn spawn_workload(args: &[&str]) -> (Child, i32) {
    start_workload(Path::new(WORKLOAD), args)
}

/// Ends a workload started by [`spawn_workload`] (closing its stdin) and
/// checks that it exited cleanly.
pub fn stop_workload(mut child: Child) {
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// A Python process of three threads: the main thread and one more wait
/// for ever, a worker waits on standard input and, for each byte it reads,
/// burns 60 ms of CPU; end of input ends the process (status 0).
const WORKER: &str = r#"
import os, threading, time
def work():
    while os.read(0, 1):
        end = time.thread_time() + 0.06
        while time.thread_time() < end:
            pass
    os._exit(0)
threading.Thread(target=work, daemon=True).start()
threading.Thread(target=threading.Event().wait, daemon=True).start()
print("ready", os.getpid(), flush=True)
threading.Event().wait()
"#;

/// Starts the process of [`WORKER`]; [`wake_worker`] makes its worker
/// thread (not its main thread) run, [`stop_workload`] ends it.
pub fn spawn_worker() -> (Child, i32) {
    let mut python = Command::new("python3");
    python.args(["-c", WORKER]);
    start_workload_command(python)
}

/// Makes the worker thread of [`spawn_worker`] burn 60 ms of CPU, and
/// waits until it has (its main thread stays asleep).
pub fn wake_worker(child: &mut Child, pid: i32) {
    let before = group_run_ns(pid);
    child.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_run_ns(pid) < before + 55_000_000 {
        assert!(Instant::now() < deadline, "the worker of {pid} never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run time of each task of `pid` so far, in ns (the first field of
/// its `schedstat`), by TID.
pub fn task_run_ns(pid: i32) -> std::collections::HashMap<i32, u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| {
            let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
            Some((tid, text.split_whitespace().next()?.parse::<u64>().ok()?))
        })
        .collect()
}

/// The run time of every task of `pid` so far, in ns.
pub fn group_run_ns(pid: i32) -> u64 {
    task_run_ns(pid).values().sum()
}

/// The numeric fields `numbers` of `/proc/PID/stat`, numbered as in
/// proc(5) (from 4 on: after the comm and the state); `None` once the
/// process is gone.
pub fn stat_fields<const N: usize>(pid: u32, numbers: [usize; N]) -> Option<[u64; N]> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (the state).
    Some(numbers.map(|n| fields[n - 3].parse().unwrap()))
}

/// Clock ticks (the unit of CPU times in `stat`) as seconds.
pub fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// A running `procgroups-workload`; it exits when dropped (stdin closes).
pub struct Workload {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Holds the link the workload was started through (see `spawn`).
    _exe_dir: Option<tempfile::TempDir>,
    /// Its PID.
    pub pid: u32,
    /// Descriptors it inherited from the test process besides 0-2: its
    /// open fds are `3 + --files + inherited`.
    pub inherited_fds: usize,
}

impl Workload {
    /// Starts the workload with `args` and waits for its `ready` line.
    ///
    /// With `--name N` the binary is started through a symlink called `N`,
    /// so that the kernel gives the process that comm at exec. The workload
    /// also sets it itself, but only once running: an agent already
    /// running could otherwise catch it under the binary's own name in that
    /// gap, find no rule for it and, as process-exporter does, never look at
    /// it again.
    pub fn spawn(args: &[&str]) -> Workload {
        let binary = Path::new(WORKLOAD);
        let name = args.windows(2).find(|w| w[0] == "--name").map(|w| w[1]);
        let (exe, exe_dir) = match name {
            Some(name) => {
                let dir = tempfile::tempdir().expect("a directory for the workload's link");
                let link = dir.path().join(name);
                std::os::unix::fs::symlink(binary, &link).expect("linking the workload");
                (link, Some(dir))
            }
            None => (binary.to_path_buf(), None),
        };
        let mut cmd = Command::new(exe);
        cmd.args(args);
        Workload::start_in(cmd, exe_dir)
    }

    /// Starts the workload through `cmd` (see [`start_workload_command`]).
    pub fn start(cmd: Command) -> Workload {
        Workload::start_in(cmd, None)
    }

    fn start_in(cmd: Command, exe_dir: Option<tempfile::TempDir>) -> Workload {
        let inherited_fds = inherited_fds().len();
        let (mut child, pid) = start_workload_command(cmd);
        let pid = pid as u32;
        let stdin = child.stdin.take();
        Workload {
            child,
            stdin,
            _exe_dir: exe_dir,
            pid,
            inherited_fds,
        }
    }

    /// Writes `line` and a newline to the workload's stdin.
    pub fn send_line(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    /// The next line the workload prints after `ready` (without the
    /// newline); empty once its output ends.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        if let Some(out) = self.child.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        line.trim_end().to_string()
    }

    /// Open fds of the process now (from its /proc entry).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .unwrap()
            .count()
    }

    /// Threads of the process now.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .unwrap()
            .count()
    }

    /// Stops the workload and waits for it.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workload's options by name, for [`Workload::named`].
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    args: Vec<String>,
}

impl WorkloadSpec {
    fn with(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// `n` threads besides the main one, with comm `name`.
    pub fn threads(self, n: usize, name: &str) -> Self {
        self.with(&["--threads", &n.to_string(), "--thread-name", name])
    }

    /// `n` open files besides stdin, stdout and stderr.
    pub fn files(self, n: usize) -> Self {
        self.with(&["--files", &n.to_string()])
    }

    /// `n` children started as copies of the workload, with comm `name`.
    pub fn children(self, n: usize, name: &str) -> Self {
        self.with(&["--children", &n.to_string(), "--child-name", name])
    }

    /// Burns `ms` of CPU on the main thread before it reports ready.
    pub fn busy_ms(self, ms: u64) -> Self {
        self.with(&["--busy-ms", &ms.to_string()])
    }

    /// Allocates and touches `kib` KiB of memory before it reports ready.
    pub fn touch_kib(self, kib: u64) -> Self {
        self.with(&["--touch-kib", &kib.to_string()])
    }

    /// Keeps the extra threads spinning (CPU load) instead of sleeping.
    pub fn spin(self) -> Self {
        self.with(&["--spin"])
    }

    /// Starts it (see [`Workload::spawn`]).
    pub fn spawn(self) -> Workload {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Workload::spawn(&args)
    }
}

impl Workload {
    /// A workload with comm `name`, its other options to be given by name.
    pub fn named(name: &str) -> WorkloadSpec {
        WorkloadSpec {
            args: vec!["--name".into(), name.into()],
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The agent binary with the variables that could leak in from the test
/// environment removed, and its status socket off, so that agents of
/// parallel tests do not compete for the default socket (a test of the
/// socket gives `--status-socket`, which wins over the variable).
pub fn agent_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procgroups"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OTEL_") || k.starts_with("PROCGROUPS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("PROCGROUPS_STATUS_SOCKET", "none");
    cmd
}

/// A client command (`status`, `explain`, `health`) against the status
/// socket at `socket`, with the variable that names a socket removed.
pub fn status_client(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procgroups"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("PROCGROUPS_STATUS_SOCKET")
        .output()
        .expect("running a procgroups client command")
}

/// Runs `procgroups --once` with `args` and returns its output.
pub fn run_once(args: &[&str]) -> Output {
    agent_command()
        .arg("--once")
        .args(args)
        .output()
        .expect("running procgroups --once")
}

/// The value of field `key` (`name=`) in a line of the agent's text log.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// A running agent whose stderr (the log) is collected.
pub struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts `cmd` with stderr captured.
    pub fn spawn(mut cmd: Command) -> Agent {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting procgroups");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("agent: {line}");
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Agent { child, log }
    }

    /// PID of the agent.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .expect("sending SIGTERM");
    }

    /// Waits for the exit, at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago, for a server a test starts.
///
/// Not one the kernel hands out for port 0: those come from the ephemeral
/// range, which every outgoing connection (a test's own HTTP client, the
/// agent's export) also draws from, so between this call and the server's
/// bind another socket could take it. Ports are taken instead in turn
/// below that range, from a start that differs between test binaries, and
/// never twice in one; each is checked free before it is handed out.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1_000));
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(first + (start + n) % span).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}");
}

/// What the agent did when started with `args` and `env`: its exit code
/// (`None` when it was still running after a few seconds, i.e. it accepted
/// the configuration) and everything it wrote on stderr.
pub fn start_agent(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = agent_command();
    cmd.args(["--interval", "200ms"])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "procgroups=info");
    let mut agent = Agent::spawn(cmd);
    let code = agent
        .wait_timeout(Duration::from_secs(3))
        .map(|s| s.code().unwrap_or(-1));
    if code.is_none() {
        agent.terminate();
        agent.wait_timeout(Duration::from_secs(20));
    }
    // The log is read by a thread: wait until it has everything.
    let mut log = agent.log();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = agent.log();
        if now == log && !now.is_empty() {
            return (code, now);
        }
        log = now;
    }
}

/// `procgroups --check-config` with `args`, `env` and, when given, a file
/// holding `yaml`: the exit code, stdout and stderr.
pub fn check_config(
    args: &[&str],
    env: &[(&str, &str)],
    yaml: Option<&str>,
) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agent_command();
    cmd.arg("--check-config")
        .args(args)
        .envs(env.iter().copied());
    if let Some(yaml) = yaml {
        let file = dir.path().join("procgroups.yaml");
        std::fs::write(&file, yaml).unwrap();
        cmd.arg("--config").arg(file);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
