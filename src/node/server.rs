//! The HTTP/1.1 accept loop: every route of the node on one listener, with the protections `axum::serve`
//! does not offer.
//!
//! Why a loop of our own and not `axum::serve`: axum's accepts every connection and has no cap, no answer
//! for the one over the cap, and no header read timeout; hyper's connection builder (used here) has the
//! timeout and the graceful shutdown, the semaphore and the -503 answer are the part we add.
//!
//! Invariants:
//! - At most `max_connections` connections are served at once. One more is answered a single -503 envelope
//!   (HTTP 503 outside `/discovery/*`, so health checks see it) and closed (a few of those at a time; beyond that the connection is simply closed), so a flood of
//!   clients cannot exhaust file descriptors or memory.
//! - A client must send a request's headers within `read_timeout` (hyper's header read timeout, which also
//!   closes keep-alive connections idle that long) and its whole body within `read_timeout` of the request
//!   reaching a handler ([`body_deadline`], applied in `node::router`): slow clients cannot hold connections
//!   forever, however they trickle their bytes.
//! - Request lines and headers up to 1 MiB are accepted, longer ones answered 431 (see `long_uri`).
//! - On shutdown the listener closes at once and every connection is asked to finish its in-flight request
//!   and close (hyper's graceful shutdown); waiting long polls answer -304 because `AppState.shutdown` fired.
//!   `stop` cancels `hard_stop` if that takes longer than the grace period, which drops what is left.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::{Extension, Router};
use futures::StreamExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer;

use super::long_uri::{HeadRewriter, HYPER_BUFFER_BYTES};
use super::metrics::NodeMetrics;

/// Connections over the limit that are answered -503 at the same time; more are closed without an answer.
pub const MAX_REJECTING: usize = 64;
/// How long an over-limit client has to send its request before it is closed without an answer.
const REJECT_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most time to send a request's headers (and idle time of a keep-alive connection).
    pub read_timeout: Duration,
    /// The answer to a request on an over-limit connection (`Frontend::refusal`).
    pub refusal: super::health::Refusal,
}

/// Serve `app` on `listener` until `shutdown`, then close connections gracefully (or at once on `hard_stop`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    metrics: Arc<NodeMetrics>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    // Heads up to 1 MiB, as the original accepts (`long_uri`); longer ones overflow hyper's buffer: 431.
    builder.timer(TokioTimer::new()).header_read_timeout(limits.read_timeout).max_buf_size(HYPER_BUFFER_BYTES);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_error(err).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let open = Open::new(permit, &metrics);
                let io = TokioIo::new(HeadRewriter::new(stream));
                // The client's address, for handlers that log who did something (the console's actions).
                let service = Extension(ConnectInfo(peer)).layer(app.clone());
                let conn = graceful.watch(builder.serve_connection(io, TowerToHyperService::new(service)));
                let hard_stop = hard_stop.clone();
                connections.spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        _ = hard_stop.cancelled() => {}
                    }
                    drop(open);
                });
            }
            Err(_) => {
                metrics.connections_rejected.inc();
                if let Ok(slot) = Arc::clone(&rejecting).try_acquire_owned() {
                    connections.spawn(reject(stream, slot, limits.refusal));
                }
            }
        }
    }
    drop(listener);
    connections.close();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = hard_stop.cancelled() => {}
    }
    connections.wait().await;
    Ok(())
}

/// A served connection: holds its permit and keeps the open-connections gauge.
struct Open {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<NodeMetrics>,
}

impl Open {
    fn new(permit: OwnedSemaphorePermit, metrics: &Arc<NodeMetrics>) -> Self {
        metrics.connections.inc();
        Self { _permit: permit, metrics: Arc::clone(metrics) }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

/// Answer one request on an over-limit connection with the -503 envelope, then close it.
async fn reject(stream: TcpStream, _slot: OwnedSemaphorePermit, refusal: super::health::Refusal) {
    let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
        Ok::<_, std::convert::Infallible>(refusal(request.uri().path(), OVER_LIMIT.to_owned(), true))
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(REJECT_READ_TIMEOUT).keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REJECT_READ_TIMEOUT * 2, conn).await;
}

/// Why an over-limit connection is refused (the API's -503 envelope on `/discovery/*`, as the SDKs expect; a
/// real HTTP 503 everywhere else, so that a health check never reads a saturated node as healthy).
const OVER_LIMIT: &str = "too many connections to this node; retry later";

/// Accept failures: a client that went away is nothing; running out of file descriptors (or another
/// resource) is waited out briefly instead of spinning.
async fn accept_error(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %err, "accept failed; pausing before accepting again");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Middleware: the request body must arrive whole within `timeout`; after that, reading it fails (the
/// handler answers its usual bad-request envelope and the connection, its body unread, is closed).
///
/// A total deadline, not an idle timeout between chunks: a client trickling one byte at a time is cut off.
/// That is why this is not tower-http's `RequestBodyTimeoutLayer`: its timeout is reset after every frame
/// (tower-http 0.6 `timeout/body.rs`), so a trickler that sends a byte every few seconds would hold the
/// connection and its handler forever. tower-http's `TimeoutLayer` does not fit either: it bounds the whole
/// request, and a long poll legitimately waits 30 s after its body has arrived.
pub async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let mut data = body.into_data_stream();
    let mut expiry = Box::pin(tokio::time::sleep(timeout));
    let limited = futures::stream::poll_fn(move |cx| {
        if expiry.as_mut().poll(cx).is_ready() {
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body not received in time");
            return std::task::Poll::Ready(Some(Err(axum::Error::new(late))));
        }
        data.poll_next_unpin(cx)
    });
    next.run(Request::from_parts(parts, Body::from_stream(limited))).await
}
