//! An in-process OTLP/gRPC metrics receiver: the `MetricsService` server of
//! the `opentelemetry-proto` crate on a loopback port, storing every
//! `ExportMetricsServiceRequest` it accepts. It can be told to refuse
//! exports (`UNAVAILABLE`) or to stall them (never answer), to test how the
//! agent behaves when the collector is down or slow.
//!
//! The server runs on its own thread and runtime, so sync and async tests
//! can both use it; it stops when the `Receiver` is dropped.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::otlp::{Point, points_of};

/// How the receiver answers exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store the request and answer OK.
    Accept,
    /// Answer `UNAVAILABLE` without storing.
    Unavailable,
    /// Never answer (until the mode changes or the receiver stops).
    Stall,
}

/// One accepted export.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request as decoded.
    pub request: ExportMetricsServiceRequest,
    /// The `grpc-encoding` the client used, if any (e.g. `gzip`).
    pub encoding: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

struct Shared {
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
    attempts: AtomicUsize,
    mode: tokio::sync::watch::Sender<Mode>,
}

struct Service(Arc<Shared>);

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        let mut mode = self.0.mode.subscribe();
        let current = *mode.borrow_and_update();
        let current = if current == Mode::Stall {
            match mode.wait_for(|m| *m != Mode::Stall).await {
                Ok(m) => *m,
                Err(_) => return Err(Status::unavailable("receiver stopped")),
            }
        } else {
            current
        };
        if current == Mode::Unavailable {
            return Err(Status::unavailable("receiver told to refuse"));
        }
        let encoding = request
            .metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let received = Received {
            request: request.into_inner(),
            encoding,
            at: Instant::now(),
        };
        self.0.received.lock().unwrap().push(received);
        self.0.arrived.notify_all();
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free loopback port.
    pub fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Starts on `addr` (retrying for a few seconds while it is in use).
    pub fn start_on(addr: SocketAddr) -> Receiver {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("receiver: bind {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("receiver: cannot bind {addr}: {e}"),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = tokio::sync::watch::channel(Mode::Accept);
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            attempts: AtomicUsize::new(0),
            mode,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = Service(shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let server = tonic::transport::Server::builder()
                        .add_service(
                            MetricsServiceServer::new(service)
                                .accept_compressed(CompressionEncoding::Gzip),
                        )
                        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                            listener,
                        ));
                    tokio::select! {
                        r = server => r.unwrap(),
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cancels open connections and stalled calls.
            })
            .unwrap();
        Receiver {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes how exports are answered from now on (a stalled call is
    /// released when the mode leaves `Stall`).
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Export calls seen, accepted or not.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// Every accepted export so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `check` returns `Some` over the accepted exports, or
    /// `timeout` passes.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[Received]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut received = self.shared.received.lock().unwrap();
        loop {
            if let Some(t) = check(&received) {
                return Some(t);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            received = self
                .shared
                .arrived
                .wait_timeout(received, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits for `n` accepted exports in total.
    pub fn wait_for_exports(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |r| (r.len() >= n).then_some(()))
            .is_some()
    }

    /// The points of the last accepted export that satisfies `check`.
    pub fn wait_for_points(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[Point]) -> bool,
    ) -> Option<Vec<Point>> {
        self.wait_for(timeout, |r| {
            r.iter().rev().find_map(|x| {
                let points = points_of(&x.request);
                check(&points).then_some(points)
            })
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.mode.send_replace(Mode::Unavailable);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
