//! [`CycleThread`]: the one thread that runs the collection cycles.
//!
//! Tokio's blocking pool would run them too, but it starts another thread
//! when a task arrives while none of its threads is idle, which cycles that
//! overrun their interval make likely; the cycles then run on either thread,
//! each allocating from a malloc arena of its own that comes to hold the
//! cycle's working memory (about 0.5 MiB more resident at 5,000 processes,
//! BENCHMARKS.md). One long-lived thread keeps it in one arena.

use std::sync::mpsc;

use anyhow::{Context as _, anyhow};

type Job = Box<dyn FnOnce() + Send>;

/// The collection thread; it ends when this is dropped.
pub(super) struct CycleThread {
    jobs: mpsc::Sender<Job>,
}

impl CycleThread {
    pub(super) fn start() -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("procgroups-scan".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .context("starting the collection thread")?;
        Ok(CycleThread { jobs })
    }

    /// Runs `f` on the thread, after what was given to it before. An error
    /// when `f` panicked (a bug, which also ends the thread) or the thread
    /// has ended.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The receiver is gone only when the caller gave up waiting.
                let _ = reply.send(f());
            }))
            .map_err(|_| anyhow!("the collection thread has ended"))?;
        answer
            .await
            .map_err(|_| anyhow!("the collection cycle panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    #[test]
    fn every_job_runs_on_the_same_named_thread_in_order() {
        let rt = runtime();
        let thread = CycleThread::start().expect("thread");
        let mut seen = Vec::new();
        for i in 0..5 {
            let (n, id, name) = rt
                .block_on(thread.run(move || {
                    let t = std::thread::current();
                    (i, t.id(), t.name().map(str::to_string))
                }))
                .expect("job");
            assert_eq!(n, i);
            assert_eq!(name.as_deref(), Some("procgroups-scan"));
            seen.push(id);
        }
        assert!(seen.iter().all(|id| *id == seen[0]));
        assert_ne!(seen[0], std::thread::current().id());
    }

    #[test]
    fn a_job_that_panics_is_an_error_and_so_is_every_later_one() {
        let rt = runtime();
        let thread = CycleThread::start().expect("thread");
        let err = rt
            .block_on(thread.run(|| -> u32 { panic!("a bug in a cycle") }))
            .expect_err("panicked");
        assert!(err.to_string().contains("panicked"), "{err}");
        // The thread has ended: a later job is refused or never answered.
        let later = rt.block_on(thread.run(|| 1u32));
        assert!(later.is_err());
    }
}
