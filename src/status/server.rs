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
use std::time::{Duration, SystemTime};

use tokio_stream::wrappers::UnixListenerStream;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use super::LIVENESS_SERVICE_NAME;
use super::convert::{explanation_to_pb, snapshot_response};
use super::health::{HealthPolicy, Verdict};
use super::pb;
use super::pb::status_server::StatusServer;
use super::{StatusProvider, StatusSocket};

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
