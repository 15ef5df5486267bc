//! The status server: `procgroups.v1.Status` and `grpc.health.v1.Health` on
//! one tonic server, listening on a [`StatusSocket`] through tokio's
//! `UnixListener`.
//!
//! Health comes from tonic-health's reporter, kept current two ways: a ticker
//! re-evaluates the [`HealthPolicy`] a few times per interval (for `Watch`
//! streams), and every `Check` re-evaluates it first, so a probe always gets
//! the verdict as of the moment it asks.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_stream::wrappers::UnixListenerStream;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use super::LIVENESS_SERVICE_NAME;
use super::health::{HealthPolicy, Verdict};
use super::pb;
use super::pb::status_server::StatusServer;
use super::{Decision, PidExplanation, StatusProvider, StatusSocket};
use crate::proc::{CollectErrors, Counts, Group, Memory, States, Threads};

/// The name of our service in `grpc.health.v1` requests (besides "", the
/// whole server).
pub const STATUS_SERVICE_NAME: &str = <StatusServer<StatusService> as NamedService>::NAME;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener could not be handed to tokio.
    #[error("status socket: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("status server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves both services on `socket` until `shutdown` completes, then removes
/// the socket file.
pub async fn serve<F>(
    socket: StatusSocket,
    provider: Arc<dyn StatusProvider>,
    policy: HealthPolicy,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send,
{
    let listener = tokio::net::UnixListener::from_std(socket.listener()?)?;
    let incoming = UnixListenerStream::new(listener);

    let reporter = HealthReporter::new();
    let judge = Arc::new(Judge {
        provider: Arc::clone(&provider),
        policy,
        reporter: reporter.clone(),
        last: Mutex::new(None),
    });
    judge.refresh().await;
    let ticker = {
        let judge = Arc::clone(&judge);
        let period = (policy.interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                judge.refresh().await;
            }
        })
    };
    let health = PolicyHealth {
        inner: HealthService::from_health_reporter(reporter),
        judge,
    };
    let status = StatusService { provider, policy };

    tracing::info!(path = %socket.path().display(), "status service listening");
    let result = Server::builder()
        .add_service(HealthServer::new(health))
        .add_service(StatusServer::new(status))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    ticker.abort();
    drop(socket);
    result.map_err(ServeError::from)
}

/// A status server running on the current tokio runtime.
#[derive(Debug)]
pub struct ServerHandle {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

/// Starts [`serve`] as a task of the current runtime.
pub fn spawn(
    socket: StatusSocket,
    provider: Arc<dyn StatusProvider>,
    policy: HealthPolicy,
) -> ServerHandle {
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        let result = serve(socket, provider, policy, stopped).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "status service stopped");
        }
        result
    });
    ServerHandle { stop, task }
}

impl ServerHandle {
    /// Stops the server (open calls are given a moment to finish) and
    /// removes the socket.
    pub async fn stop(self) {
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(1), self.task).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "status service task failed"),
            Err(_) => tracing::warn!("status service did not stop within 1s"),
        }
    }
}

/// Evaluates the policy and publishes the verdict to the health reporter.
struct Judge {
    provider: Arc<dyn StatusProvider>,
    policy: HealthPolicy,
    reporter: HealthReporter,
    /// The last verdict published, to log transitions once.
    last: Mutex<Option<bool>>,
}

impl Judge {
    fn verdict(&self) -> Verdict {
        verdict(&*self.provider, &self.policy, SystemTime::now())
    }

    async fn refresh(&self) {
        let v = self.verdict();
        let changed = match self.last.lock() {
            Ok(mut last) => last.replace(v.serving) != Some(v.serving),
            Err(_) => false,
        };
        if changed {
            if v.serving {
                tracing::info!(reason = %v.reason, "health: SERVING");
            } else {
                tracing::warn!(reason = %v.reason, "health: NOT_SERVING");
            }
        }
        let status = if v.serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter
            .set_service_status(STATUS_SERVICE_NAME, status)
            .await;
        let alive = self
            .policy
            .evaluate_liveness(SystemTime::now(), self.provider.last_cycle().as_ref());
        let alive = if alive.serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter
            .set_service_status(LIVENESS_SERVICE_NAME, alive)
            .await;
    }
}

fn verdict(provider: &dyn StatusProvider, policy: &HealthPolicy, now: SystemTime) -> Verdict {
    policy.evaluate(now, provider.last_cycle().as_ref(), &provider.last_export())
}

/// tonic-health's service, with a fresh evaluation before each `Check`.
struct PolicyHealth {
    inner: HealthService,
    judge: Arc<Judge>,
}

#[tonic::async_trait]
impl Health for PolicyHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.judge.refresh().await;
        self.inner.check(request).await
    }

    type WatchStream = <HealthService as Health>::WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.inner.watch(request).await
    }
}

/// `procgroups.v1.Status` over a [`StatusProvider`].
pub struct StatusService {
    provider: Arc<dyn StatusProvider>,
    policy: HealthPolicy,
}

#[tonic::async_trait]
impl pb::status_server::Status for StatusService {
    async fn get_snapshot(
        &self,
        _request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::GetSnapshotResponse>, Status> {
        let provider = Arc::clone(&self.provider);
        let policy = self.policy;
        let response = tokio::task::spawn_blocking(move || {
            snapshot_response(&*provider, &policy, SystemTime::now())
        })
        .await
        .map_err(|e| Status::internal(format!("building the snapshot failed: {e}")))?;
        Ok(Response::new(response))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let pid = request.get_ref().pid;
        if pid <= 0 {
            return Err(Status::invalid_argument(format!(
                "pid must be a positive number, not {pid}"
            )));
        }
        let provider = Arc::clone(&self.provider);
        let explanation = tokio::task::spawn_blocking(move || provider.explain(pid))
            .await
            .map_err(|e| Status::internal(format!("explaining pid {pid} failed: {e}")))?;
        Ok(Response::new(explanation_to_pb(explanation)))
    }
}

/// The whole `GetSnapshot` answer at `now`.
pub fn snapshot_response(
    provider: &dyn StatusProvider,
    policy: &HealthPolicy,
    now: SystemTime,
) -> pb::GetSnapshotResponse {
    let cycle = provider.last_cycle();
    let export = provider.last_export();
    let health = policy.evaluate(now, cycle.as_ref(), &export);
    let groups = provider.groups();
    pb::GetSnapshotResponse {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        agent_start_time_unix_nano: unix_nanos(Some(policy.start_time)),
        interval_nanos: nanos(policy.interval),
        last_cycle: cycle.map(|c| pb::Cycle {
            end_time_unix_nano: unix_nanos(Some(c.end_time)),
            duration_nanos: nanos(c.duration),
            count: c.count,
            errors: Some(errors_to_pb(c.errors)),
            tracked_processes: c.tracked_processes,
        }),
        export: Some(pb::Export {
            enabled: export.enabled,
            interval_nanos: nanos(export.interval),
            last_attempt_time_unix_nano: unix_nanos(
                export.last_attempt.as_ref().map(|a| a.end_time),
            ),
            last_attempt_ok: export
                .last_attempt
                .as_ref()
                .is_some_and(|a| a.error.is_none()),
            last_error: export
                .last_attempt
                .and_then(|a| a.error)
                .unwrap_or_default(),
            last_success_time_unix_nano: unix_nanos(export.last_success),
            failures_total: export.failures_total,
            endpoint: export.endpoint,
        }),
        health: Some(pb::Health {
            serving: health.serving,
            reason: health.reason,
        }),
        groups: groups
            .iter()
            .map(|(name, g)| group_to_pb(name, g))
            .collect(),
    }
}

fn errors_to_pb(e: CollectErrors) -> pb::CollectErrors {
    pb::CollectErrors {
        read: e.read,
        partial: e.partial,
    }
}

/// One group, with the fields of the `--once` JSON.
pub fn group_to_pb(name: &str, g: &Group) -> pb::Group {
    pb::Group {
        name: name.to_string(),
        procs: g.procs,
        threads: g.num_threads,
        cpu_user_seconds: g.counts.cpu_user_time,
        cpu_system_seconds: g.counts.cpu_system_time,
        read_bytes: g.counts.read_bytes,
        write_bytes: g.counts.write_bytes,
        major_page_faults: g.counts.major_page_faults,
        minor_page_faults: g.counts.minor_page_faults,
        voluntary_context_switches: g.counts.ctx_switch_voluntary,
        nonvoluntary_context_switches: g.counts.ctx_switch_nonvoluntary,
        resident_bytes: g.memory.resident_bytes,
        virtual_bytes: g.memory.virtual_bytes,
        swap_bytes: g.memory.swap_bytes,
        proportional_resident_bytes: g.memory.proportional_bytes,
        proportional_swap_bytes: g.memory.proportional_swap_bytes,
        open_fds: g.open_fds,
        worst_fd_ratio: g.worst_fd_ratio,
        oldest_start_time_unix_nano: unix_nanos(g.oldest_start_time),
        states: Some(pb::States {
            running: g.states.running,
            sleeping: g.states.sleeping,
            waiting: g.states.waiting,
            zombie: g.states.zombie,
            other: g.states.other,
        }),
        wchans: g.wchans.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        thread_names: g
            .threads
            .iter()
            .map(|t| pb::ThreadName {
                name: t.name.clone(),
                threads: t.num_threads,
                cpu_user_seconds: t.counts.cpu_user_time,
                cpu_system_seconds: t.counts.cpu_system_time,
                read_bytes: t.counts.read_bytes,
                write_bytes: t.counts.write_bytes,
                major_page_faults: t.counts.major_page_faults,
                minor_page_faults: t.counts.minor_page_faults,
                voluntary_context_switches: t.counts.ctx_switch_voluntary,
                nonvoluntary_context_switches: t.counts.ctx_switch_nonvoluntary,
            })
            .collect(),
    }
}

/// The group back from the wire: the inverse of [`group_to_pb`], so that
/// the client renders it with the `--once` functions.
pub fn group_from_pb(g: &pb::Group) -> (String, Group) {
    let counts =
        |cpu_user_time, cpu_system_time, read_bytes, write_bytes, major, minor, vol, inv| Counts {
            cpu_user_time,
            cpu_system_time,
            read_bytes,
            write_bytes,
            major_page_faults: major,
            minor_page_faults: minor,
            ctx_switch_voluntary: vol,
            ctx_switch_nonvoluntary: inv,
        };
    let states = g.states.unwrap_or_default();
    let group = Group {
        counts: counts(
            g.cpu_user_seconds,
            g.cpu_system_seconds,
            g.read_bytes,
            g.write_bytes,
            g.major_page_faults,
            g.minor_page_faults,
            g.voluntary_context_switches,
            g.nonvoluntary_context_switches,
        ),
        states: States {
            running: states.running,
            sleeping: states.sleeping,
            waiting: states.waiting,
            zombie: states.zombie,
            other: states.other,
        },
        wchans: g.wchans.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        procs: g.procs,
        memory: Memory {
            resident_bytes: g.resident_bytes,
            virtual_bytes: g.virtual_bytes,
            swap_bytes: g.swap_bytes,
            proportional_bytes: g.proportional_resident_bytes,
            proportional_swap_bytes: g.proportional_swap_bytes,
        },
        oldest_start_time: (g.oldest_start_time_unix_nano != 0)
            .then(|| UNIX_EPOCH + Duration::from_nanos(g.oldest_start_time_unix_nano)),
        open_fds: g.open_fds,
        worst_fd_ratio: g.worst_fd_ratio,
        num_threads: g.threads,
        threads: g
            .thread_names
            .iter()
            .map(|t| Threads {
                name: t.name.clone(),
                num_threads: t.threads,
                counts: counts(
                    t.cpu_user_seconds,
                    t.cpu_system_seconds,
                    t.read_bytes,
                    t.write_bytes,
                    t.major_page_faults,
                    t.minor_page_faults,
                    t.voluntary_context_switches,
                    t.nonvoluntary_context_switches,
                ),
            })
            .collect(),
    };
    (g.name.clone(), group)
}

/// An explanation on the wire.
pub fn explanation_to_pb(e: PidExplanation) -> pb::ExplainResponse {
    use pb::explain_response::Decision as D;
    let decision = match e.decision {
        Decision::Matched => D::Matched,
        Decision::Inherited => D::Inherited,
        Decision::NotMatched => D::NotMatched,
        Decision::NotFound => D::NotFound,
    };
    let (found, name, cmdline, uid) = match e.process {
        Some(p) => (true, p.name, p.cmdline, p.uid),
        None => (false, String::new(), Vec::new(), 0),
    };
    pb::ExplainResponse {
        pid: e.pid,
        found,
        name,
        cmdline,
        uid,
        group: e.group.unwrap_or_default(),
        decision: decision as i32,
        rule: e.rule.unwrap_or_default(),
        reason: e.reason,
        ancestor_pid: e.ancestor_pid.unwrap_or(0),
    }
}

/// Unix nanoseconds, 0 for unknown (or before 1970).
fn unix_nanos(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, nanos)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_survives_the_wire_unchanged() {
        let mut g = Group {
            counts: Counts {
                cpu_user_time: 1.5,
                cpu_system_time: 0.25,
                read_bytes: 1,
                write_bytes: 2,
                major_page_faults: 3,
                minor_page_faults: 4,
                ctx_switch_voluntary: 5,
                ctx_switch_nonvoluntary: 6,
            },
            states: States {
                running: 1,
                sleeping: 2,
                waiting: 3,
                zombie: 4,
                other: 5,
            },
            procs: 2,
            memory: Memory {
                resident_bytes: 7,
                virtual_bytes: 8,
                swap_bytes: 9,
                proportional_bytes: 10,
                proportional_swap_bytes: 11,
            },
            oldest_start_time: Some(UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789)),
            open_fds: 12,
            worst_fd_ratio: 0.5,
            num_threads: 13,
            threads: vec![
                Threads {
                    name: "a".into(),
                    num_threads: 1,
                    counts: Counts {
                        cpu_user_time: 0.5,
                        read_bytes: 14,
                        ..Counts::default()
                    },
                },
                Threads {
                    name: "b".into(),
                    num_threads: 12,
                    counts: Counts {
                        ctx_switch_nonvoluntary: 15,
                        ..Counts::default()
                    },
                },
            ],
            ..Group::default()
        };
        g.wchans.insert("futex_wait".into(), 2);
        g.wchans.insert("do_epoll_wait".into(), 11);
        assert_eq!(
            group_from_pb(&group_to_pb("web", &g)),
            ("web".to_owned(), g)
        );

        let empty = Group::default();
        assert_eq!(
            group_from_pb(&group_to_pb("idle", &empty)),
            ("idle".to_owned(), empty)
        );
    }
}
