//! The health and metrics endpoint: `/healthz`, `/readyz` and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use connector_core::config::HttpSettings;
use connector_core::{Error, ErrorKind, Health, Metrics};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// A running endpoint; stops when dropped or [`Endpoint::stop`]ped.
pub struct Endpoint {
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The address it listens on.
    pub address: std::net::SocketAddr,
}

impl Endpoint {
    /// Stop serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Bind `settings.address` and serve in the background.
pub async fn serve(
    settings: &HttpSettings,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<Endpoint, Error> {
    let listener = tokio::net::TcpListener::bind(&settings.address)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("key `http.address`: cannot listen on {}", settings.address),
            )
            .with_source(e)
            .with_hint("choose a free address, or set `http.enabled: false`")
        })?;
    let address = listener.local_addr().map_err(Error::from)?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { metrics, health });
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    });
    info!(%address, "serving /healthz, /readyz and /metrics");
    Ok(Endpoint {
        stop,
        task,
        address,
    })
}

async fn healthz(State(s): State<Shared>) -> impl IntoResponse {
    let phase = s.health.phase().as_str();
    if s.health.is_live() {
        (StatusCode::OK, format!("ok: {phase}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ok: {phase}\n"),
        )
    }
}

async fn readyz(State(s): State<Shared>) -> impl IntoResponse {
    let phase = s.health.phase().as_str();
    if s.health.is_ready() {
        (StatusCode::OK, format!("ready: {phase}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {phase}\n"),
        )
    }
}

async fn metrics_text(State(s): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
