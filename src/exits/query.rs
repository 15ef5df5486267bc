//! Asking the kernel what tasks and thread groups have run so far:
//! taskstats `TASKSTATS_CMD_GET` requests, sent many to a datagram, with
//! no file kept open. A task's answer (`TASKSTATS_CMD_ATTR_PID`) carries
//! the three numbers of its `schedstat` and the two context-switch counts
//! of its `status`; a group's (`TASKSTATS_CMD_ATTR_TGID`) sums the
//! scheduler's run time and the context switches over every live thread.
//! When they are where they were a cycle ago, nothing has run since, which
//! a reader of `/proc` could otherwise only learn from one `schedstat` per
//! thread, each opened or kept open. Needs what the exit listener needs
//! (`CAP_NET_ADMIN`, the initial network namespace), and pids are the
//! querying process's own: usable only over a procfs of the same pid
//! namespace.

use std::time::Duration;

use netlink_packet_core::{DefaultNla, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage};
use netlink_packet_generic::GenlMessage;
use rustix::io::Errno;

use super::link::Link;
use super::listener::ListenError;
use super::record::{Activity, CMD_GET, ParseError, Reply, Scope, TaskstatsPayload, parse_reply};
use crate::proc::{GroupActivity, GroupProbe, TaskActivity};

/// `TASKSTATS_CMD_ATTR_PID`.
const ATTR_PID: u16 = 1;
/// `TASKSTATS_CMD_ATTR_TGID`.
const ATTR_TGID: u16 = 2;
/// Requests sent in one datagram. Their replies (about 600 bytes each,
/// some 1.2 KiB of socket memory) wait in the socket's receive queue until
/// read, so a batch must fit in it: 128 need about 160 KiB, within the
/// usual default of 208 KiB, and the queue is raised where it may be.
const BATCH: usize = 128;
/// The receive queue asked for (`SO_RCVBUFFORCE`, allowed with the
/// privilege the queries need anyway).
const QUEUE_BYTES: usize = 1 << 20;
/// A reply is one record of about 600 bytes.
const RECV_BUFFER: usize = 8 * 1024;
/// How long one reply may take before the query gives up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// How long [`GroupQuery::open`] sleeps to have the kernel charge this
/// thread its run time: any sleep switches it out.
const CHARGE_SLEEP: Duration = Duration::from_millis(1);

/// A socket for task and thread-group queries.
pub struct GroupQuery {
    link: Link,
    family_id: u16,
    /// Set when a reply did not come in time: the probe then answers
    /// nothing, rather than hold up every cycle by the timeout.
    gave_up: bool,
    /// The serialized requests of one batch.
    out: Vec<u8>,
}

impl std::fmt::Debug for GroupQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupQuery")
            .field("family_id", &self.family_id)
            .finish_non_exhaustive()
    }
}

impl GroupQuery {
    /// Opens the socket, resolves the family and asks about this process's
    /// own group once: fails unless the kernel answers (privilege) and its
    /// answer carries the group's run time (kernels that sum it only with
    /// delay accounting on leave it zero, and a group cannot then be told
    /// quiet from its context switches alone: a thread spinning on an idle
    /// CPU has none).
    ///
    /// The kernel charges a running thread its run time when it is
    /// switched out or ticked, not as it runs: a process just started,
    /// which has done neither yet, is said to have run nothing. So a zero
    /// is asked again after a short sleep, which switches this thread out
    /// and charges it; only a zero then means a kernel that leaves it so.
    pub fn open() -> Result<Self, ListenError> {
        let link = Link::open(RECV_BUFFER)?;
        link.set_timeout(Some(REPLY_TIMEOUT))?;
        // Without the larger queue the default one still holds a batch.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(&link.socket, QUEUE_BYTES);
        let mut me = GroupQuery {
            link,
            family_id: 0,
            gave_up: false,
            out: Vec::new(),
        };
        me.family_id = me.link.resolve_family()?;
        let own = std::process::id();
        let first = me.query(own)?;
        let answer = charged(first, || {
            std::thread::sleep(CHARGE_SLEEP);
            me.query(own)
        })?;
        match answer {
            Some(a) if a.run_ns > 0 => Ok(me),
            Some(_) => Err(ListenError::NoGroupRunTime),
            None => Err(ListenError::Query(-(Errno::SRCH.raw_os_error()))),
        }
    }

    /// What the group `tgid` has run so far; `None` when there is no such
    /// group (it exited).
    pub fn query(&mut self, tgid: u32) -> Result<Option<GroupActivity>, ListenError> {
        let mut one = None;
        self.ask(ATTR_TGID, &[tgid], |_, r| one = Some(group_activity(r)))?;
        Ok(one)
    }

    /// What task `tid` has run so far; `None` when there is no such task.
    pub fn query_task(&mut self, tid: u32) -> Result<Option<TaskActivity>, ListenError> {
        let mut one = None;
        self.ask(ATTR_PID, &[tid], |_, r| one = Some(task_activity(r)))?;
        Ok(one)
    }

    /// Asks about every id in `ids` (pids or tgids, as `attr` says), in
    /// batches of [`BATCH`] requests per datagram, and hands what each
    /// reply received says to `take` with the index of its id. An id with no such task
    /// gets no call; nor does one whose reply was lost to a full queue.
    fn ask(
        &mut self,
        attr: u16,
        ids: &[u32],
        mut take: impl FnMut(usize, &Activity),
    ) -> Result<(), ListenError> {
        let scope = if attr == ATTR_PID {
            Scope::Task
        } else {
            Scope::ThreadGroup
        };
        for (n, chunk) in ids.chunks(BATCH).enumerate() {
            let first = self.send_batch(attr, chunk)?;
            let mut left = chunk.len();
            while left > 0 {
                self.link.buf.clear();
                match self.link.socket.recv(&mut self.link.buf, 0) {
                    Ok(_) => {}
                    Err(e) => match Errno::from_io_error(&e) {
                        Some(Errno::AGAIN) => return Err(ListenError::Timeout("taskstats family")),
                        // The queue overflowed: some replies are lost, and
                        // which is not known. Take what is left queued.
                        Some(Errno::NOBUFS) => {
                            self.drain(first, chunk.len(), n * BATCH, scope, &mut take);
                            break;
                        }
                        _ => return Err(ListenError::Io(e)),
                    },
                }
                // Replies to an earlier batch that timed out: skip them.
                let seq = NetlinkBuffer::new_checked(&self.link.buf[..])
                    .map_err(ParseError::from)?
                    .sequence_number();
                let Some(i) = index_of(seq, first, chunk.len()) else {
                    continue;
                };
                left -= 1;
                answer(&self.link.buf, scope, |r| take(n * BATCH + i, r));
            }
        }
        Ok(())
    }

    /// Numbers the requests for `ids` and sends them in one datagram;
    /// returns the first sequence number.
    fn send_batch(&mut self, attr: u16, ids: &[u32]) -> Result<u32, ListenError> {
        self.out.clear();
        let mut first = None;
        for &id in ids {
            let mut genl = GenlMessage::from_payload(TaskstatsPayload {
                cmd: CMD_GET,
                attrs: vec![DefaultNla::new(attr, id.to_ne_bytes().to_vec())],
            });
            genl.set_resolved_family_id(self.family_id);
            let mut msg = NetlinkMessage::from(genl);
            msg.header.flags = NLM_F_REQUEST;
            let seq = self.link.number(&mut msg);
            first.get_or_insert(seq);
            let at = self.out.len();
            self.out.resize(at + msg.buffer_len(), 0);
            msg.serialize(&mut self.out[at..]);
        }
        self.link
            .socket
            .send(&self.out, 0)
            .map_err(ListenError::Io)?;
        Ok(first.unwrap_or_default())
    }

    /// After an overflow, takes the replies still queued without waiting.
    fn drain(
        &mut self,
        first: u32,
        len: usize,
        base: usize,
        scope: Scope,
        take: &mut impl FnMut(usize, &Activity),
    ) {
        tracing::debug!("taskstats reply queue overflowed: some processes are read in full");
        loop {
            self.link.buf.clear();
            if self
                .link
                .socket
                .recv(&mut self.link.buf, libc_dontwait())
                .is_err()
            {
                return;
            }
            let Ok(b) = NetlinkBuffer::new_checked(&self.link.buf[..]) else {
                continue;
            };
            if let Some(i) = index_of(b.sequence_number(), first, len) {
                answer(&self.link.buf, scope, |r| take(base + i, r));
            }
        }
    }

    /// Marks the probe as given up after `e`, when it is a timeout.
    fn failed(&mut self, e: &ListenError, what: &str) {
        if matches!(e, ListenError::Timeout(_)) {
            self.gave_up = true;
            tracing::warn!(
                error = %e,
                "taskstats stopped answering {what} queries: processes are read in full from now on"
            );
        } else {
            tracing::debug!(error = %e, "taskstats {what} query failed");
        }
    }
}

/// `MSG_DONTWAIT`, for one receive that must not block.
fn libc_dontwait() -> i32 {
    rustix::net::RecvFlags::DONTWAIT.bits() as i32
}

/// The position in a batch of the reply numbered `seq`, when it is one of
/// the `len` requests numbered from `first`.
fn index_of(seq: u32, first: u32, len: usize) -> Option<usize> {
    let i = seq.wrapping_sub(first) as usize;
    (i < len).then_some(i)
}

/// Hands what the record of `scope` in the reply `datagram` says to
/// `take`. Nothing
/// when the kernel answered that there is no such task, or with another
/// error (logged), or the reply cannot be read: that id is unanswered and
/// its process read from its files.
fn answer(datagram: &[u8], scope: Scope, take: impl FnOnce(&Activity)) {
    match parse_reply(datagram, scope) {
        Ok(Reply::Activity(a)) => take(&a),
        Ok(Reply::Error(code)) if code != 0 && code != -Errno::SRCH.raw_os_error() => {
            tracing::debug!(code, "taskstats query refused");
        }
        Ok(Reply::Error(_) | Reply::Other) => {}
        Err(e) => tracing::debug!(error = %e, "taskstats reply unreadable"),
    }
}

/// The answer about this process's own group that tells whether the
/// kernel reports run times: `first`, unless it says the group has run
/// nothing, which a thread not yet charged for its run also gets; then
/// what `again` says (asked once it has been).
fn charged(
    first: Option<GroupActivity>,
    again: impl FnOnce() -> Result<Option<GroupActivity>, ListenError>,
) -> Result<Option<GroupActivity>, ListenError> {
    match first {
        Some(a) if a.run_ns == 0 => again(),
        _ => Ok(first),
    }
}

fn group_activity(a: &Activity) -> GroupActivity {
    GroupActivity {
        run_ns: a.run_ns,
        switches: a.voluntary_switches.wrapping_add(a.involuntary_switches),
    }
}

fn task_activity(a: &Activity) -> TaskActivity {
    TaskActivity {
        run_ns: a.run_ns,
        slices: a.slices,
        ctx_voluntary: a.voluntary_switches,
        ctx_nonvoluntary: a.involuntary_switches,
    }
}

/// The ids as the kernel takes them; a negative one (never a real pid)
/// as 0, which no task has.
fn unsigned(ids: &[i32]) -> Vec<u32> {
    ids.iter().map(|&i| u32::try_from(i).unwrap_or(0)).collect()
}

impl GroupQuery {
    /// Fills `out` with one answer per id of `ids` (as `attr` says), each
    /// record turned by `of`; `None` where there is none. A failure is
    /// logged, and a timeout gives the probe up.
    fn answer_all<T: Copy>(
        &mut self,
        attr: u16,
        ids: &[i32],
        out: &mut Vec<Option<T>>,
        of: fn(&Activity) -> T,
    ) {
        out.clear();
        out.resize(ids.len(), None);
        if self.gave_up {
            return;
        }
        let ids = unsigned(ids);
        if let Err(e) = self.ask(attr, &ids, |i, r| out[i] = Some(of(r))) {
            self.failed(
                &e,
                if attr == ATTR_PID {
                    "task"
                } else {
                    "thread group"
                },
            );
        }
    }
}

impl GroupProbe for GroupQuery {
    fn tasks(&mut self, tids: &[i32], out: &mut Vec<Option<TaskActivity>>) {
        self.answer_all(ATTR_PID, tids, out, task_activity);
    }

    fn groups(&mut self, tgids: &[i32], out: &mut Vec<Option<GroupActivity>>) {
        self.answer_all(ATTR_TGID, tgids, out, group_activity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(run_ns: u64) -> Option<GroupActivity> {
        Some(GroupActivity {
            run_ns,
            switches: 0,
        })
    }

    #[test]
    fn a_group_said_to_have_run_nothing_is_asked_again_once() {
        // Not yet charged: the second answer decides.
        let mut asked = 0;
        let answer = charged(ran(0), || {
            asked += 1;
            Ok(ran(2_000))
        });
        assert_eq!((answer.unwrap(), asked), (ran(2_000), 1));
        // A kernel that leaves it zero says so twice.
        assert_eq!(charged(ran(0), || Ok(ran(0))).unwrap(), ran(0));
        // A run time, or no answer at all, is taken as it is.
        let never = || -> Result<Option<GroupActivity>, ListenError> { panic!("asked again") };
        assert_eq!(charged(ran(5), never).unwrap(), ran(5));
        assert_eq!(charged(None, never).unwrap(), None);
        assert!(charged(ran(0), || Err(ListenError::NoGroupRunTime)).is_err());
    }
}
