//! Asking the kernel what a whole thread group has run so far: one
//! taskstats `TASKSTATS_CMD_ATTR_TGID` request and its reply, two system
//! calls and no file kept open. The reply sums the scheduler's run time
//! (nanoseconds) and the context switches of every live thread of the
//! group; when both are where they were a cycle ago, none of its threads
//! has run since, which a reader of `/proc` could otherwise only learn from
//! one `schedstat` per thread. Needs what the exit listener needs
//! (`CAP_NET_ADMIN`, the initial network namespace), and pids are the
//! querying process's own: usable only over a procfs of the same pid
//! namespace.

use std::time::Duration;

use netlink_packet_core::{DefaultNla, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage};
use netlink_packet_generic::GenlMessage;
use rustix::io::Errno;

use super::link::Link;
use super::listener::ListenError;
use super::record::{CMD_GET, Incoming, ParseError, Scope, TaskstatsPayload, parse_incoming};
use crate::proc::{GroupActivity, GroupProbe};

/// `TASKSTATS_CMD_ATTR_TGID`.
const ATTR_TGID: u16 = 2;
/// A reply is one record of about 450 bytes.
const RECV_BUFFER: usize = 8 * 1024;
/// How long one reply may take before the query gives up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// A socket for thread-group queries.
pub struct GroupQuery {
    link: Link,
    family_id: u16,
    /// Set when a reply did not come in time: the probe then answers
    /// nothing, rather than hold up every cycle by the timeout per process.
    gave_up: bool,
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
    pub fn open() -> Result<Self, ListenError> {
        let link = Link::open(RECV_BUFFER)?;
        link.set_timeout(Some(REPLY_TIMEOUT))?;
        let mut me = GroupQuery {
            link,
            family_id: 0,
            gave_up: false,
        };
        me.family_id = me.link.resolve_family()?;
        let own = std::process::id();
        match me.query(own)? {
            Some(a) if a.run_ns > 0 => Ok(me),
            Some(_) => Err(ListenError::NoGroupRunTime),
            None => Err(ListenError::Query(-(Errno::SRCH.raw_os_error()))),
        }
    }

    /// What the group `tgid` has run so far; `None` when there is no such
    /// group (it exited).
    pub fn query(&mut self, tgid: u32) -> Result<Option<GroupActivity>, ListenError> {
        let mut genl = GenlMessage::from_payload(TaskstatsPayload {
            cmd: CMD_GET,
            attrs: vec![DefaultNla::new(ATTR_TGID, tgid.to_ne_bytes().to_vec())],
        });
        genl.set_resolved_family_id(self.family_id);
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = NLM_F_REQUEST;
        let seq = self.link.send(msg)?;
        loop {
            self.link.buf.clear();
            if let Err(e) = self.link.socket.recv(&mut self.link.buf, 0) {
                return Err(match Errno::from_io_error(&e) {
                    Some(Errno::AGAIN) => ListenError::Timeout("taskstats family"),
                    _ => ListenError::Io(e),
                });
            }
            // A reply to an earlier query that timed out: skip it.
            let reply_seq = NetlinkBuffer::new_checked(&self.link.buf[..])
                .map_err(ParseError::from)?
                .sequence_number();
            if reply_seq != seq {
                continue;
            }
            for m in parse_incoming(&self.link.buf)? {
                match m {
                    Incoming::Records(records) => {
                        if let Some(r) = records.iter().find(|r| r.scope == Scope::ThreadGroup) {
                            return Ok(Some(GroupActivity {
                                run_ns: u64::try_from(r.run_time.as_nanos()).unwrap_or(u64::MAX),
                                switches: r.voluntary_switches.wrapping_add(r.involuntary_switches),
                            }));
                        }
                    }
                    Incoming::Ack { code, .. } if code == -Errno::SRCH.raw_os_error() => {
                        return Ok(None);
                    }
                    Incoming::Ack { code, .. } if code != 0 => {
                        return Err(ListenError::Query(code));
                    }
                    Incoming::Ack { .. } | Incoming::Other => {}
                }
            }
            return Err(ListenError::Reply(ParseError::MissingStats("AGGR_TGID")));
        }
    }
}

impl GroupProbe for GroupQuery {
    fn activity(&mut self, tgid: i32) -> Option<GroupActivity> {
        if self.gave_up {
            return None;
        }
        let tgid = u32::try_from(tgid).ok()?;
        match self.query(tgid) {
            Ok(a) => a,
            Err(e @ ListenError::Timeout(_)) => {
                self.gave_up = true;
                tracing::warn!(
                    tgid,
                    error = %e,
                    "taskstats stopped answering thread-group queries: processes are read in full from now on"
                );
                None
            }
            Err(e) => {
                tracing::debug!(tgid, error = %e, "thread group query failed");
                None
            }
        }
    }
}
