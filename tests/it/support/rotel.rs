//! rotel, a real OpenTelemetry collector (`pip install rotel`, binary
//! `rotel-agent`), as a child process of a test: started on a loopback port
//! with the blackhole exporter and its detailed debug log of metrics, which
//! is captured and parsed into data points, one batch per export received.
//! It can be killed (a crash), stopped and continued (a collector that hangs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One data point of rotel's detailed debug log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DebugPoint {
    /// Metric name.
    pub metric: String,
    /// Point attributes, values without their `Str(...)` wrapper.
    pub attrs: Vec<(String, String)>,
    /// The value.
    pub value: Option<f64>,
}

impl DebugPoint {
    /// Whether the point has attribute `key` = `value`.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.attrs.iter().any(|(k, v)| k == key && v == value)
    }
}

/// Parses rotel's `--debug-log-verbosity detailed` output (the collector's
/// debug exporter format) into one list of points per export: a batch
/// starts at `ResourceMetrics #0`; `Metric #`, `-> Name: X`,
/// `NumberDataPoints #`, `-> key: Str(value)` and `Value: N` describe points.
pub fn parse_exports(text: &str) -> Vec<Vec<DebugPoint>> {
    let mut exports: Vec<Vec<DebugPoint>> = Vec::new();
    let mut metric = String::new();
    let mut current: Option<DebugPoint> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("ResourceMetrics #") {
            if let (Some(p), Some(last)) = (current.take(), exports.last_mut()) {
                last.push(p);
            }
            if line == "ResourceMetrics #0" {
                exports.push(Vec::new());
            }
        } else if line.starts_with("Metric #") {
            if let (Some(p), Some(last)) = (current.take(), exports.last_mut()) {
                last.push(p);
            }
        } else if let Some(name) = line.strip_prefix("-> Name: ") {
            metric = name.to_owned();
        } else if line.starts_with("NumberDataPoints #") {
            if let (Some(p), Some(last)) = (current.take(), exports.last_mut()) {
                last.push(p);
            }
            current = Some(DebugPoint {
                metric: metric.clone(),
                ..DebugPoint::default()
            });
        } else if let Some(v) = line.strip_prefix("Value: ") {
            if let Some(p) = current.as_mut() {
                p.value = v.trim().parse().ok();
            }
        } else if let (Some(kv), Some(p)) = (line.strip_prefix("-> "), current.as_mut())
            && let Some((k, v)) = kv.split_once(": ")
        {
            let v = v
                .strip_prefix("Str(")
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or(v);
            p.attrs.push((k.to_owned(), v.to_owned()));
        }
    }
    if let (Some(p), Some(last)) = (current, exports.last_mut()) {
        last.push(p);
    }
    exports
}

/// Removes the terminal colour sequences rotel writes.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running rotel; killed when dropped.
pub struct Rotel {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Rotel {
    /// Starts `binary` receiving OTLP/gRPC on `127.0.0.1:port` (its files in
    /// `dir`) and waits until the port accepts connections.
    pub fn start(binary: &Path, port: u16, dir: &Path) -> Rotel {
        let http_port = super::procs::free_port();
        let mut child = Command::new(binary)
            .args([
                "start",
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{port}"),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http_port}"),
                "--exporter",
                "blackhole",
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ])
            .arg("--pid-file")
            .arg(dir.join(format!("rotel-{port}.pid")))
            .arg("--log-file")
            .arg(dir.join(format!("rotel-{port}.log")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rotel-agent");
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut o = sink.lock().unwrap();
                    o.push_str(&strip_ansi(&line));
                    o.push('\n');
                }
            });
        }
        let rotel = Rotel { child, out };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rotel does not listen on {port}: {}",
                rotel.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rotel
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The exports it printed so far, in order.
    pub fn exports(&self) -> Vec<Vec<DebugPoint>> {
        parse_exports(&self.output())
    }

    /// Waits until `check` holds for the exports printed so far.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[Vec<DebugPoint>]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if check(&self.exports()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal)
            .expect("signalling rotel");
    }

    /// SIGKILL, as a crash: no flush, no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: connections stay open and nothing is answered.
    pub fn stop(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// SIGCONT after [`Rotel::stop`].
    pub fn cont(&self) {
        self.signal(rustix::process::Signal::CONT);
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::CONT,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
