//! [`Reading`]: the last reading of one set of counters, process or thread,
//! and the non-negative increase from it to the next.

use crate::proc::{Counts, Delta};

/// The last reading of one set of counters. `io` is kept apart because it can
/// be unreadable in one cycle and readable in the next: it holds the last
/// *good* (read_bytes, write_bytes), so that an unreadable cycle neither feeds
/// a zero into a difference nor loses what happened meanwhile.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    /// The counters; `read_bytes` and `write_bytes` are the last *good* io
    /// values (kept while io is unreadable), meaningful once `io_seen`.
    counts: Counts,
    /// Whether io has ever been readable.
    io_seen: bool,
}

impl Reading {
    /// Whether io has ever been readable: until then the io counters are
    /// unknown, not zero.
    pub(super) fn io_seen(&self) -> bool {
        self.io_seen
    }

    pub(super) fn first(counts: &Counts, io_known: bool) -> Reading {
        Reading {
            counts: *counts,
            io_seen: io_known,
        }
    }

    /// The counters as last read (io: the last good values).
    pub(super) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The whole of `counts` as an increase (first sight of something born
    /// while the tracker runs); io counts only when it is known.
    pub(super) fn whole(counts: &Counts, io_known: bool) -> Delta {
        let mut d = counts.as_delta();
        if !io_known {
            d.read_bytes = 0;
            d.write_bytes = 0;
        }
        d
    }

    /// The increase since the stored reading, which `counts` then replaces.
    /// io is differenced from the last good value, or not at all this cycle
    /// when it is unknown now (or has never been known: the first known value
    /// becomes the baseline).
    pub(super) fn advance(&mut self, counts: &Counts, io_known: bool) -> Delta {
        let mut d = counts.since(&self.counts);
        if !(io_known && self.io_seen) {
            (d.read_bytes, d.write_bytes) = (0, 0);
        }
        let (read, write) = (self.counts.read_bytes, self.counts.write_bytes);
        self.counts = *counts;
        if io_known {
            self.io_seen = true;
        } else {
            (self.counts.read_bytes, self.counts.write_bytes) = (read, write);
        }
        d
    }
}
