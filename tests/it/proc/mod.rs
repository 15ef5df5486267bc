//! Reading processes from procfs, and tracking and grouping them.

mod accounting;
mod cardinality;
mod churn;
mod fixture;
mod grouper;
pub(crate) mod live_group;
mod live_kept;
mod live_quiet;
mod live_read;
mod malformed;
mod scenario;
mod tracker;
mod tracker_unchanged;
