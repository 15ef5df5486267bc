//! The taskstats listener: the I/O edge of exit accounting. It opens a
//! generic netlink socket, resolves the `TASKSTATS` family, registers for
//! every possible CPU and receives the records the kernel unicasts to it,
//! stamping each batch with the boot-time clock. A full socket buffer
//! (`ENOBUFS`: records were dropped) is counted, logged once per outage,
//! and receiving carries on.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage};
use netlink_packet_generic::GenlMessage;
use netlink_sys::Socket;
use rustix::io::Errno;

use super::cpus::{CpuListError, read_cpu_list};
use super::link::Link;
use super::record::{CMD_GET, ExitRecord, Incoming, ParseError, TaskstatsPayload, parse_incoming};

/// `TASKSTATS_CMD_ATTR_REGISTER_CPUMASK`.
const ATTR_REGISTER_CPUMASK: u16 = 3;
/// `TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK`.
const ATTR_DEREGISTER_CPUMASK: u16 = 4;
/// A record is about 600 bytes, two in one message at most; the largest
/// datagram the kernel sends here is far below this.
const RECV_BUFFER: usize = 64 * 1024;
/// How long setup waits for each kernel reply.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long setup waits for the record of its probe thread.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// File holding the CPU list to register for (the host's
    /// `/sys/devices/system/cpu/possible`).
    pub cpus_path: PathBuf,
    /// Socket receive buffer asked for, in bytes. Set with
    /// `SO_RCVBUFFORCE` (allowed by the `CAP_NET_ADMIN` the listener needs
    /// anyway), falling back to `SO_RCVBUF`, which `net.core.rmem_max` caps.
    pub receive_buffer: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            cpus_path: PathBuf::from("/sys/devices/system/cpu/possible"),
            // About 6,000 records at the kernel's per-skb accounting: several
            // seconds of a 1,000 exits/s churn if the reader stalls.
            receive_buffer: 8 * 1024 * 1024,
        }
    }
}

/// Why the listener could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("opening a generic netlink socket: {0}")]
    Socket(std::io::Error),
    #[error(
        "the kernel has no taskstats family (built without CONFIG_TASKSTATS, or not in this network namespace)"
    )]
    NoFamily,
    #[error(
        "registered, but the exit of a probe thread was not delivered within {PROBE_TIMEOUT:?}: the kernel delivers exit records only to listeners in the host network namespace (hostNetwork)"
    )]
    NotDelivered,
    #[error("registering for exit records: {}", register_reason(*.0))]
    Register(i32),
    #[error("querying a thread group: {}", register_reason(*.0))]
    Query(i32),
    #[error(
        "the kernel's thread-group query leaves the group's run time zero (older kernels sum it only with delay accounting on)"
    )]
    NoGroupRunTime,
    #[error("CPU list: {0}")]
    Cpus(#[from] CpuListError),
    #[error("no reply from the kernel's {0} within {SETUP_TIMEOUT:?}")]
    Timeout(&'static str),
    #[error("receiving exit records: {0}")]
    Io(std::io::Error),
    #[error("kernel reply: {0}")]
    Reply(#[from] ParseError),
}

fn register_reason(code: i32) -> String {
    let errno = Errno::from_raw_os_error(code.saturating_abs());
    if errno == Errno::PERM {
        "not permitted: needs CAP_NET_ADMIN".to_owned()
    } else if errno == Errno::INVAL {
        "rejected (EINVAL): the agent must run in the initial pid and user namespaces (hostPID), \
         or the CPU list names an impossible CPU"
            .to_owned()
    } else {
        format!("{errno}")
    }
}

impl ListenError {
    /// True when the error says this process lacks the privilege or the
    /// namespaces exit accounting needs (as opposed to a fault).
    pub fn is_not_permitted(&self) -> bool {
        match self {
            ListenError::Register(code) | ListenError::Query(code) => {
                let e = Errno::from_raw_os_error(code.saturating_abs());
                e == Errno::PERM || e == Errno::INVAL
            }
            ListenError::NoFamily | ListenError::NotDelivered | ListenError::NoGroupRunTime => true,
            _ => false,
        }
    }
}

/// One receive: the records of a datagram, and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<ExitRecord>,
    /// `CLOCK_BOOTTIME` at receipt, the clock of `/proc/PID/stat` field 22;
    /// see [`ExitRecord::estimated_start`].
    pub received_boottime: Duration,
}

/// Counters of the listener's health, for self metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    pub records: u64,
    /// Receives that failed with `ENOBUFS`: each means one or more records
    /// were dropped by the kernel.
    pub overflows: u64,
    /// Runs of consecutive overflows (each logged once).
    pub outages: u64,
    /// Datagrams that could not be parsed (skipped).
    pub malformed: u64,
}

/// Tracks overflow outages so that each is logged once: an outage starts
/// with an `ENOBUFS` and ends with the next datagram received.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overflow {
    in_outage: bool,
    in_this_outage: u64,
}

impl Overflow {
    /// Notes an `ENOBUFS`; true when it starts an outage (log it).
    pub fn on_overflow(&mut self) -> bool {
        self.in_this_outage += 1;
        !std::mem::replace(&mut self.in_outage, true)
    }

    /// Notes a datagram received; when it ends an outage, returns how many
    /// overflows that outage had (log the recovery).
    pub fn on_data(&mut self) -> Option<u64> {
        if std::mem::replace(&mut self.in_outage, false) {
            Some(std::mem::take(&mut self.in_this_outage))
        } else {
            None
        }
    }
}

/// A registered taskstats listener. Blocking: run it on its own thread
/// and hand the batches to the tracker.
pub struct ExitListener {
    link: Link,
    family_id: u16,
    cpus: String,
    pending: VecDeque<ExitRecord>,
    overflow: Overflow,
    stats: ListenerStats,
    receive_buffer: usize,
}

impl std::fmt::Debug for ExitListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitListener")
            .field("family_id", &self.family_id)
            .field("cpus", &self.cpus)
            .field("receive_buffer", &self.receive_buffer)
            .field("stats", &self.stats)
            .finish()
    }
}

impl ExitListener {
    /// Opens, resolves, registers. Fails with [`ListenError::Register`]
    /// when not permitted (see [`ListenError::is_not_permitted`]).
    pub fn open(config: &ListenerConfig) -> Result<Self, ListenError> {
        let cpus = read_cpu_list(&config.cpus_path)?;
        let link = Link::open(RECV_BUFFER)?;
        let receive_buffer = set_receive_buffer(&link.socket, config.receive_buffer);
        let mut me = Self {
            link,
            family_id: 0,
            cpus,
            pending: VecDeque::new(),
            overflow: Overflow::default(),
            stats: ListenerStats::default(),
            receive_buffer,
        };
        me.set_timeout(Some(SETUP_TIMEOUT))?;
        me.family_id = me.link.resolve_family()?;
        me.register()?;
        me.probe_delivery()?;
        me.set_timeout(None)?;
        tracing::info!(
            family_id = me.family_id,
            cpus = %me.cpus,
            receive_buffer = me.receive_buffer,
            "listening for taskstats exit records"
        );
        Ok(me)
    }

    /// The receive buffer the kernel granted (it reports twice the value
    /// set, for its bookkeeping; this is what `SO_RCVBUF` reads back).
    pub fn receive_buffer(&self) -> usize {
        self.receive_buffer
    }

    /// The CPU list registered for.
    pub fn cpus(&self) -> &str {
        &self.cpus
    }

    pub fn stats(&self) -> ListenerStats {
        self.stats
    }

    /// Bounds how long [`ExitListener::recv`] blocks (`None`: forever), so
    /// that its thread can notice a shutdown.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ListenError> {
        self.link.set_timeout(timeout)
    }

    /// Waits for the next datagram and returns its records; `Ok(None)`
    /// when the timeout passed. An overflow or a malformed datagram is
    /// counted and yields an empty batch: the caller just calls again.
    pub fn recv(&mut self) -> Result<Option<Batch>, ListenError> {
        if !self.pending.is_empty() {
            // Records that came in during setup (a few milliseconds ago).
            let records: Vec<ExitRecord> = self.pending.drain(..).collect();
            self.stats.records += records.len() as u64;
            return Ok(Some(Batch {
                records,
                received_boottime: boottime(),
            }));
        }
        let incoming = match self.recv_datagram() {
            Ok(Some(incoming)) => incoming,
            Ok(None) => return Ok(None),
            Err(RecvError::Overflow) => {
                return Ok(Some(Batch {
                    records: Vec::new(),
                    received_boottime: boottime(),
                }));
            }
            Err(RecvError::Io(e)) => return Err(ListenError::Io(e)),
        };
        let received_boottime = boottime();
        let mut records = Vec::new();
        for m in incoming {
            if let Incoming::Records(r) = m {
                records.extend(r);
            }
        }
        self.stats.records += records.len() as u64;
        Ok(Some(Batch {
            records,
            received_boottime,
        }))
    }

    fn recv_datagram(&mut self) -> Result<Option<Vec<Incoming>>, RecvError> {
        self.link.buf.clear();
        match self.link.socket.recv(&mut self.link.buf, 0) {
            Ok(_) => {}
            Err(e) => {
                return match Errno::from_io_error(&e) {
                    Some(Errno::NOBUFS) => {
                        self.stats.overflows += 1;
                        if self.overflow.on_overflow() {
                            self.stats.outages += 1;
                            tracing::warn!(
                                receive_buffer = self.receive_buffer,
                                "taskstats socket buffer full: exit records are being dropped"
                            );
                        }
                        Err(RecvError::Overflow)
                    }
                    Some(Errno::AGAIN) | Some(Errno::INTR) => Ok(None),
                    _ => Err(RecvError::Io(e)),
                };
            }
        }
        if let Some(overflows) = self.overflow.on_data() {
            tracing::info!(overflows, "taskstats exit records flow again");
        }
        match parse_incoming(&self.link.buf) {
            Ok(incoming) => Ok(Some(incoming)),
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(error = %e, len = self.link.buf.len(), "skipping a malformed taskstats datagram");
                Ok(Some(Vec::new()))
            }
        }
    }

    fn cpumask_message(&self, attr: u16) -> NetlinkMessage<GenlMessage<TaskstatsPayload>> {
        let mut mask = self.cpus.clone().into_bytes();
        mask.push(0);
        let mut genl = GenlMessage::from_payload(TaskstatsPayload {
            cmd: CMD_GET,
            attrs: vec![DefaultNla::new(attr, mask)],
        });
        genl.set_resolved_family_id(self.family_id);
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        msg
    }

    /// Starts and ends a thread and waits for an exit record. The kernel
    /// acknowledges a registration from any network namespace but delivers
    /// records only in the initial one, so this is the one reliable check
    /// that records will arrive. Any record proves it, the probe's or
    /// another process's, and so does a full buffer (records were delivered
    /// and dropped): on a busy node with a small buffer the probe's own
    /// record may be lost again and again.
    fn probe_delivery(&mut self) -> Result<(), ListenError> {
        let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
        self.set_timeout(Some(PROBE_TIMEOUT))?;
        probe_thread()?;
        loop {
            if !self.pending.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(ListenError::NotDelivered);
            }
            match self.recv_datagram() {
                Ok(Some(incoming)) => {
                    for m in incoming {
                        if let Incoming::Records(r) = m {
                            self.pending.extend(r);
                        }
                    }
                }
                Ok(None) => return Err(ListenError::NotDelivered),
                Err(RecvError::Overflow) => {
                    return Ok(());
                }
                Err(RecvError::Io(e)) => return Err(ListenError::Io(e)),
            }
        }
    }

    fn register(&mut self) -> Result<(), ListenError> {
        let msg = self.cpumask_message(ATTR_REGISTER_CPUMASK);
        let seq = self.link.send(msg)?;
        loop {
            let incoming = match self.recv_datagram() {
                Ok(Some(incoming)) => incoming,
                Ok(None) => return Err(ListenError::Timeout("taskstats family")),
                Err(RecvError::Overflow) => continue,
                Err(RecvError::Io(e)) => return Err(ListenError::Io(e)),
            };
            for m in incoming {
                match m {
                    // Records of tasks exiting while the registration is
                    // acknowledged: keep them for the first recv.
                    Incoming::Records(r) => self.pending.extend(r),
                    Incoming::Ack { seq: s, code } if s == seq => {
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(ListenError::Register(code))
                        };
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Drop for ExitListener {
    /// Deregisters, so that the kernel stops preparing records for this
    /// socket at once (it would otherwise drop the listener at the first
    /// failed delivery).
    fn drop(&mut self) {
        let msg = self.cpumask_message(ATTR_DEREGISTER_CPUMASK);
        if let Err(e) = self.link.send(msg) {
            tracing::debug!(error = %e, "deregistering the taskstats listener");
        }
    }
}

/// Starts a thread that ends at once; returns its thread id.
fn probe_thread() -> Result<u32, ListenError> {
    let tid = std::thread::Builder::new()
        .name("exit-probe".to_owned())
        .spawn(|| rustix::thread::gettid().as_raw_nonzero().get())
        .map_err(ListenError::Io)?
        .join()
        .map_err(|_| ListenError::Io(std::io::Error::other("probe thread panicked")))?;
    Ok(u32::try_from(tid).unwrap_or(0))
}

enum RecvError {
    Overflow,
    Io(std::io::Error),
}

/// Asks for `wanted` bytes of receive buffer, forcing past
/// `net.core.rmem_max` when allowed; returns what the socket got.
fn set_receive_buffer(socket: &Socket, wanted: usize) -> usize {
    use rustix::net::sockopt;
    if let Err(force) = sockopt::set_socket_recv_buffer_size_force(socket, wanted) {
        tracing::debug!(error = %force, "SO_RCVBUFFORCE refused, trying SO_RCVBUF");
        if let Err(e) = sockopt::set_socket_recv_buffer_size(socket, wanted) {
            tracing::warn!(error = %e, "could not enlarge the taskstats receive buffer");
        }
    }
    sockopt::socket_recv_buffer_size(socket).unwrap_or(0)
}

/// `CLOCK_BOOTTIME` now.
fn boottime() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_outage_is_reported_once() {
        let mut o = Overflow::default();
        assert_eq!(o.on_data(), None);
        assert!(o.on_overflow());
        assert!(!o.on_overflow());
        assert!(!o.on_overflow());
        assert_eq!(o.on_data(), Some(3));
        assert_eq!(o.on_data(), None);
        assert!(o.on_overflow());
        assert_eq!(o.on_data(), Some(1));
    }

    #[test]
    fn register_errors_explain_themselves() {
        let perm = ListenError::Register(-1);
        assert!(perm.is_not_permitted());
        assert!(perm.to_string().contains("CAP_NET_ADMIN"), "{perm}");
        let inval = ListenError::Register(-22);
        assert!(inval.is_not_permitted());
        assert!(inval.to_string().contains("pid"), "{inval}");
        assert!(!ListenError::Register(-12).is_not_permitted());
    }
}
