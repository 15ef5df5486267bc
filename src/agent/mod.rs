//! The running agent: a tokio timer runs one collection cycle per interval
//! on a thread of its own (see `worker`), publishes an immutable snapshot
//! that the OpenTelemetry instruments read, and flushes on shutdown;
//! `--once` prints the second of two cycles instead of exporting.
//!
//! Collection and export are decoupled: the timer task only swaps snapshots,
//! and the SDK's reader thread exports whatever snapshot is current at its
//! own interval. A collector that is down, slow or refusing data therefore
//! never delays a cycle; with cumulative counters the next successful export
//! carries the right totals.
//!
//! Shutdown (SIGTERM or SIGINT): stop the timer, run one last cycle, then
//! the SDK's final collection and export, all within [`SHUTDOWN_BUDGET`].
//! SIGHUP, and a change of the configuration file, reload the rules
//! ([`reload`]) before the next cycle.

pub mod accounting;
mod cycle;
pub mod reload;
mod remainder;
mod status;
mod worker;

pub use crate::snapshot::{AccountingMode, ExitMode, NodeCpu, Snapshot, SnapshotCell};
pub use cycle::{Collection, grouper_options};
pub use reload::{ReloadCounts, Reloader};
pub use remainder::{NodeCpuAccount, node_busy_ticks};
pub use status::AgentStatus;

use std::future::Future;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use tokio::time::{Instant, MissedTickBehavior};

use crate::cli::{MetricNames, OutputFormat};
use crate::config::Config;
use crate::proc::{FsSource, SourceError};
use crate::telemetry::{
    self, CardinalityLimits, ExportHealth, ExportSettings, HostFacts, InstrumentOptions,
    PipelineOptions, Telemetry, catalogue,
};

/// Time from the stop signal to the end of the final export, at most. The
/// SDK's own shutdown waits up to 5 s; the agent stops waiting earlier so
/// that the process is gone well within a 6 s grace period.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);
/// Longest wait for the last cycle at shutdown before exporting without it.
const LAST_CYCLE_BUDGET: Duration = Duration::from_secs(2);

/// Runs the agent until SIGTERM/SIGINT, or runs `--once`.
pub fn run(config: Config) -> anyhow::Result<()> {
    run_with(config, None)
}

/// [`run`], reloading the configuration through `reloader` when it says so.
pub fn run_with(config: Config, reloader: Option<Reloader>) -> anyhow::Result<()> {
    if config.interval.is_zero() {
        bail!("the collection interval must be longer than zero");
    }
    // The process source keeps a descriptor per process it remembers (up to
    // the soft limit), which saves CPU on every cycle.
    match crate::proc::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    if let Some(delay) = config.once {
        return run_once(&config, delay);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("procgroups-rt")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let stop = stop_signal().context("installing the SIGTERM/SIGINT handlers")?;
        // Before anything else: a second agent on the same socket stops here.
        let socket = crate::status::bind_configured(&config.status_socket)?;
        let mut agent = Agent::start(config)?;
        agent.reloader = reloader.map(|r| Arc::new(Mutex::new(r)));
        let status = socket.map(|s| agent.serve_status(s));
        let result = agent.run_until(stop).await;
        if let Some(status) = status {
            status.stop().await;
        }
        result
    });
    // A final export or cycle that overran its budget is abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// `--once`: two cycles `delay` apart, the second printed on stdout. No
/// collection, no runtime.
pub fn run_once(config: &Config, delay: Duration) -> anyhow::Result<()> {
    let mut collection = Collection::from_config(config)
        .with_context(|| format!("opening procfs at {}", config.procfs.display()))?;
    collection
        .cycle(SystemTime::now())
        .context("first collection cycle")?;
    std::thread::sleep(delay);
    let snapshot = collection
        .cycle(SystemTime::now())
        .context("second collection cycle")?;
    let text = match config.output {
        OutputFormat::Table => {
            crate::output::table(&snapshot) + &crate::output::once_window_note(delay)
        }
        OutputFormat::Json => crate::output::json(&snapshot) + "\n",
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed
/// before this returns, so a signal that arrives during startup is not lost.
pub fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// A started agent: the pipeline is built and the instruments registered;
/// [`Agent::run_until`] drives the cycles.
pub struct Agent {
    config: Config,
    cell: SnapshotCell,
    telemetry: Telemetry,
    collection: Arc<Mutex<Collection<FsSource>>>,
    /// When the agent started, and how often it exports (for health).
    started: SystemTime,
    export_interval: Duration,
    /// Looked at before each cycle, when the configuration may be reloaded.
    reloader: Option<Arc<Mutex<Reloader>>>,
    /// Where the cycles run.
    cycles: worker::CycleThread,
}

impl Agent {
    /// Opens the procfs mount and builds the OTLP pipeline. Must be called
    /// inside the tokio runtime that will run the agent.
    pub fn start(config: Config) -> anyhow::Result<Self> {
        let collection = Collection::from_config(&config)
            .with_context(|| format!("opening procfs at {}", config.procfs.display()))?;
        let env = |k: &str| std::env::var(k).ok();
        let facts = HostFacts::gather(&config.procfs, env);
        let options = PipelineOptions {
            export: ExportSettings::from_env(&env, config.interval)?,
            instruments: InstrumentOptions {
                threads: config.threads,
                smaps: config.gather_smaps,
                table: match config.metric_names {
                    MetricNames::Otel => &catalogue::OTEL,
                    MetricNames::ProcessExporter => &catalogue::PROCESS_EXPORTER,
                },
            },
            limits: CardinalityLimits {
                groups: config.max_groups,
                thread_names: config.max_thread_names,
            },
            remove_empty_groups: config.remove_empty_groups,
        };
        let export_interval = options.export.export_interval;
        let cell = SnapshotCell::new();
        let telemetry = Telemetry::start(&options, telemetry::resource::build(&facts), &cell)?;
        let mut collection = collection;
        if telemetry.is_delta() && config.empty_group_ttl.is_some() {
            if config.empty_group_ttl_explicit {
                return Err(telemetry::TelemetryError::DeltaWithForgottenGroups.into());
            }
            tracing::info!(
                "delta temporality: empty groups are kept (a forgotten group that came back \
                 would be exported twice)"
            );
            collection.keep_empty_groups();
        }
        tracing::info!(
            procfs = %config.procfs.display(),
            interval = %humantime::format_duration(config.interval),
            host = facts.host_name.as_deref().unwrap_or("-"),
            threads = config.threads,
            gather_smaps = config.gather_smaps,
            "procgroups started"
        );
        Ok(Agent {
            config,
            cell,
            telemetry,
            collection: Arc::new(Mutex::new(collection)),
            started: SystemTime::now(),
            export_interval,
            reloader: None,
            cycles: worker::CycleThread::start()?,
        })
    }

    /// Serves the status and health service on `socket`, over this agent's
    /// snapshots, export record and tracker, until the handle is stopped.
    pub fn serve_status(&self, socket: crate::status::StatusSocket) -> crate::status::ServerHandle {
        let provider = AgentStatus::new(
            self.cell.clone(),
            self.telemetry.health(),
            self.export_interval,
            self.collection.clone(),
            self.config.procfs.clone(),
        );
        let policy = crate::status::HealthPolicy {
            interval: self.config.interval,
            export_intervals: self.config.health_export_intervals,
            start_time: self.started,
        };
        crate::status::server::spawn(socket, Arc::new(provider), policy)
    }

    /// The latest snapshot, shared (for status reporting).
    pub fn snapshot(&self) -> SnapshotCell {
        self.cell.clone()
    }

    /// The export outcome record (for status and health reporting).
    pub fn export_health(&self) -> Arc<ExportHealth> {
        self.telemetry.health()
    }

    /// Runs a cycle every interval until `stop` resolves, then the last
    /// cycle and the final export within [`SHUTDOWN_BUDGET`].
    pub async fn run_until(self, stop: impl Future<Output = &'static str>) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut failing = false;
        tokio::pin!(stop);
        let signal = loop {
            tokio::select! {
                biased;
                signal = &mut stop => break signal,
                _ = ticker.tick() => {
                    self.cycle(&mut failing).await?;
                }
            }
        };

        let deadline = Instant::now() + SHUTDOWN_BUDGET;
        tracing::info!(signal, "stopping: last cycle and final export");
        match tokio::time::timeout(LAST_CYCLE_BUDGET, self.cycle(&mut failing)).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!(
                budget = %humantime::format_duration(LAST_CYCLE_BUDGET),
                "last cycle did not finish in time; exporting the previous one"
            ),
        }
        self.telemetry.health().mark_stopping();
        if !self.telemetry.health().status().enabled {
            // OTEL_METRICS_EXPORTER=none: there is no final export to wait for.
            tracing::info!("export disabled, nothing to export; stopped");
            return Ok(());
        }
        let telemetry = self.telemetry.clone();
        let flush = tokio::task::spawn_blocking(move || telemetry.shutdown());
        match tokio::time::timeout_at(deadline, flush).await {
            Ok(Ok(Ok(()))) => tracing::info!("final export done; stopped"),
            Ok(Ok(Err(e))) => {
                // The SDK's shutdown error only says that it failed; the
                // exporter recorded why.
                let status = self.telemetry.health().status();
                let cause = match (status.last_ok, status.last_error) {
                    (Some(false), Some(last)) => last,
                    _ => e.to_string(),
                };
                tracing::warn!(
                    endpoint = %status.endpoint,
                    error = %cause,
                    "final export failed; stopped"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "final export task failed; stopped"),
            Err(_) => tracing::warn!(
                budget = %humantime::format_duration(SHUTDOWN_BUDGET),
                "final export did not finish within the shutdown budget; stopped"
            ),
        }
        Ok(())
    }

    /// One cycle on the collection thread, publishing its snapshot. A
    /// source that cannot be listed keeps the previous snapshot and is
    /// logged once until it recovers. A panic in the cycle is a bug and
    /// stops the agent.
    async fn cycle(&self, failing: &mut bool) -> anyhow::Result<()> {
        let collection = self.collection.clone();
        let reloader = self.reloader.clone();
        let result = self
            .cycles
            .run(move || {
                let mut collection = collection.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(new) =
                    reloader.and_then(|r| r.lock().unwrap_or_else(PoisonError::into_inner).poll())
                {
                    collection.set_namer(new.namer);
                }
                collection.cycle(SystemTime::now())
            })
            .await?;
        self.publish(result, failing);
        Ok(())
    }

    fn publish(&self, result: Result<Snapshot, SourceError>, failing: &mut bool) {
        match result {
            Ok(snapshot) => {
                if std::mem::take(failing) {
                    tracing::info!("process listing recovered");
                }
                tracing::debug!(
                    cycle = snapshot.cycles,
                    started = %snapshot
                        .taken_at
                        .map(|t| humantime::format_rfc3339_micros(t).to_string())
                        .unwrap_or_default(),
                    groups = snapshot.group_count(),
                    tracked = snapshot.tracked_processes,
                    duration_ms = snapshot.cycle_duration.as_secs_f64() * 1e3,
                    "cycle done"
                );
                self.cell.publish(snapshot);
            }
            Err(e) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(
                        error = %e,
                        "cannot list processes; keeping the last snapshot (logged once until it recovers)"
                    );
                }
            }
        }
    }
}
