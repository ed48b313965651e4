//! Ops endpoints every service serves — `/healthz` (the process is alive),
//! `/readyz` (its database and broker links are up) and `/metrics` — plus the
//! shutdown signal that starts a graceful stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Named readiness flags; the service is ready when every registered part is up.
#[derive(Clone, Default)]
pub struct Readiness {
    parts: Arc<Mutex<BTreeMap<&'static str, Arc<AtomicBool>>>>,
}

impl Readiness {
    /// Registers a part (initially not ready) and returns its flag.
    pub fn part(&self, name: &'static str) -> ReadyFlag {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().insert(name, flag.clone());
        ReadyFlag(flag)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, bool> {
        self.lock()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn is_ready(&self) -> bool {
        self.snapshot().values().all(|up| *up)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Arc<AtomicBool>>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still valid.
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    pub fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct OpsState {
    readiness: Readiness,
    metrics: Metrics,
}

/// `/healthz`, `/readyz` and `/metrics`, to merge into a service's router or serve alone.
pub fn router(readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState { readiness, metrics })
}

/// `/readyz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Readiness)]
pub struct ReadinessReport {
    /// Every part is up.
    pub ready: bool,
    /// Each part (database, broker consumers, relays …) and whether it is up.
    pub parts: BTreeMap<&'static str, bool>,
    /// The process id: lets a supervisor tell this process from another one
    /// that holds the port it was told to use.
    pub pid: u32,
}

#[utoipa::path(get, path = "/healthz", tag = "ops", operation_id = "healthz",
    summary = "Liveness", security(()),
    responses((status = 200, description = "The process is alive", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "ops", operation_id = "readyz",
    summary = "Readiness: every part of the service is up", security(()),
    responses(
        (status = 200, description = "Ready", body = ReadinessReport),
        (status = 503, description = "Not ready", body = ReadinessReport),
    ))]
pub async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
    let parts = s.readiness.snapshot();
    let ready = parts.values().all(|up| *up);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let report = ReadinessReport {
        ready,
        parts,
        pid: std::process::id(),
    };
    (code, axum::Json(report))
}

#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics",
    summary = "Prometheus metrics", security(()),
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics_text(State(s): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// Serves `app` on `addr` until `shutdown` is cancelled; see [`serve_on`].
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "listening");
    serve_on(listener, app, idle_timeout, shutdown).await;
    Ok(())
}

/// Serves `app` (HTTP/1.1) on connections from `listener` until `shutdown` is
/// cancelled, then lets every open connection finish its request and waits
/// for them to close.
///
/// A connection that takes longer than `idle_timeout` to send a request's
/// headers — on a keep-alive connection, counted from the previous
/// response — is closed. `axum::serve` sets no such limit, so a client that
/// opens connections and leaves them idle (or sends its headers a byte at a
/// time) kept each one for good: 500 idle connections held 24 MiB of
/// ingest's memory (measured; ~16 KiB each here, and only until the
/// timeout).
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(idle_timeout);
    let connections = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection closed with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    const IDLE: Duration = Duration::from_millis(300);

    /// `serve_on` with `/healthz` on a free port; its address and task.
    async fn start(stop: &CancellationToken) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(IDLE / 2).await;
                    "ok"
                }),
            );
        let task = tokio::spawn(serve_on(listener, app, IDLE, stop.clone()));
        (addr, task)
    }

    /// Sends one keep-alive request to `/healthz` and reads its whole response.
    async fn ask(conn: &mut TcpStream) -> String {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        read_response(conn).await
    }

    /// Reads a response whose body is `ok`.
    async fn read_response(conn: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"ok") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    /// Waits for the server to close `conn`; how long that took.
    async fn closed_after(conn: &mut TcpStream) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the server kept the idle connection open")
            .unwrap_or(0);
        assert_eq!(n, 0, "expected the connection closed");
        start.elapsed()
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let stop = CancellationToken::new();
        let (addr, task) = start(&stop).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut conn).await.starts_with("HTTP/1.1 200"));
        // Well inside the timeout the connection is still served.
        tokio::time::sleep(IDLE / 3).await;
        assert!(ask(&mut conn).await.starts_with("HTTP/1.1 200"));
        let waited = closed_after(&mut conn).await;
        assert!(waited >= IDLE / 2, "closed too early: {waited:?}");

        // One that never sends a byte, and one that sends half a header.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
            .await
            .unwrap();
        closed_after(&mut silent).await;
        closed_after(&mut slow).await;
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let stop = CancellationToken::new();
        let (addr, task) = start(&stop).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut conn).await.starts_with("HTTP/1.1 200"));
        stop.cancel();
        tokio::time::timeout(IDLE / 2, task)
            .await
            .expect("serve_on returns without waiting for idle connections")
            .unwrap();
        closed_after(&mut conn).await;
        assert!(TcpStream::connect(addr).await.is_err(), "stopped listening");
    }

    /// A request being handled when shutdown starts still gets its answer
    /// (a sale being stored is not cut off), then its connection closes.
    #[tokio::test]
    async fn shutdown_lets_a_request_in_progress_finish() {
        let stop = CancellationToken::new();
        let (addr, task) = start(&stop).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(IDLE / 6).await;
        stop.cancel();
        assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
        closed_after(&mut conn).await;
        task.await.unwrap();
    }
}
