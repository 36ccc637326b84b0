//! Serving the router: hyper's HTTP/1.1 connection builder (from `hyper-util`, with a timer),
//! TLS with rustls, a connection cap and a graceful shutdown.
//!
//! `axum::serve` gives hyper no timer, and hyper's header-read timeout needs one (without it
//! the default 30 s timeout silently never fires), nor a connection cap, nor TLS. So the
//! appliance runs its own accept loop around hyper's server connection builder instead:
//!
//! * **header-read timeout** — hyper's `header_read_timeout` with `TokioTimer`: a client must
//!   send a whole request head within [`ServerConfig::header_timeout`] of the connection's
//!   start (after the TLS handshake, which has the same bound), and again within it of the end
//!   of each response, so the same timer closes idle keep-alive connections; a request being
//!   answered (a long-poll) is not bounded by it;
//! * **connection cap** — a semaphore of [`ServerConfig::max_connections`] permits; a
//!   connection over the cap gets one `503` (enveloped, `Retry-After: 1`, `Connection: close`)
//!   from the same hyper builder, at most [`OVER_CAP`] of them at a time (beyond, it is closed
//!   at once);
//! * **limits** — hyper refuses a request head over [`ServerConfig::max_head_bytes`] or with
//!   more than [`ServerConfig::max_headers`] fields itself (`431` without a body); the router's
//!   smaller limits ([`crate::routes::Limits`]) answer first, with the envelope;
//! * **graceful shutdown** — `hyper-util`'s `GracefulShutdown`: stop accepting, let requests
//!   in flight finish (the binding answers its open waits at once), close idle connections.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use jobstate_std::http::{ApiError, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::metrics::{ConnectionEnd, Metrics};

/// Connections over the cap answered at once with a `503`.
pub const OVER_CAP: usize = 64;

/// How the server treats connections.
#[derive(Clone)]
pub struct ServerConfig {
    /// See the module docs; also bounds the TLS handshake.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// hyper's limit on a request head (request line and header fields), bytes.
    pub max_head_bytes: usize,
    /// hyper's limit on header fields.
    pub max_headers: usize,
    /// TLS, or plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("header_timeout", &self.header_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_head_bytes", &self.max_head_bytes)
            .field("max_headers", &self.max_headers)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 8192,
            max_head_bytes: 64 * 1024,
            max_headers: 128,
            tls: None,
        }
    }
}

/// A rustls acceptor for a PEM certificate chain and key (HTTP/1.1 by ALPN), on the `ring`
/// provider.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> io::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&format!("{}", cert.display()), &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("{}", cert.display()), &e))?;
    if certs.is_empty() {
        return Err(bad(&format!("{}", cert.display()), &"no certificate"));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&format!("{}", key.display()), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("TLS certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Connections the kernel completes and queues for the accept loop (capped by the kernel's
/// `somaxconn`). std's and tokio's `bind` ask for 128, which a burst of clients overflows — the
/// kernel then drops their SYNs, and each retries only after a second.
pub const BACKLOG: u32 = 4096;

/// A listener on `addr` with a [`BACKLOG`]-deep accept queue (address reuse on, so a restart
/// can bind while old connections linger in TIME_WAIT).
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Raise the soft open-file limit to the hard one; answers the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer, which
    // lives on this stack frame for the duration of each call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            if lim.rlim_cur < lim.rlim_max {
                let wanted = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &wanted);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// The accept loop, until `stop` turns true; then every connection is told to shut down
/// gracefully, and the answer is the handle to wait for them with.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let over_cap = Arc::new(Semaphore::new(OVER_CAP));
    let config = Arc::new(config);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted:
                // the listener is fine; pause a little so a full table does not spin.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let (config, metrics) = (config.clone(), metrics.clone());
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let router = router.clone();
                tokio::spawn(async move {
                    metrics.connection_opened();
                    let end = connection(tcp, router, &config, watcher, permit).await;
                    debug!(%peer, ?end, "connection ended");
                    metrics.connection_ended(end, true);
                });
            }
            Err(_) => match over_cap.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        let _ = refuse(tcp, &config, watcher, permit).await;
                        metrics.connection_ended(ConnectionEnd::OverCap, false);
                    });
                }
                Err(_) => {
                    drop(tcp);
                    metrics.connection_ended(ConnectionEnd::OverCap, false);
                }
            },
        }
    }
    graceful
}

fn http1(config: &ServerConfig) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_head_bytes.max(8192))
        .max_headers(config.max_headers);
    b
}

fn end_of(result: Result<(), hyper::Error>) -> ConnectionEnd {
    match result {
        Ok(()) => ConnectionEnd::Closed,
        Err(e) if e.is_timeout() => ConnectionEnd::HeaderTimeout,
        Err(e) if e.is_incomplete_message() || e.is_canceled() => ConnectionEnd::Closed,
        Err(_) => ConnectionEnd::Error,
    }
}

/// Serve one connection (TLS handshake first, when configured) until it closes.
async fn connection(
    tcp: TcpStream,
    router: Router,
    config: &ServerConfig,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) -> ConnectionEnd {
    let service = TowerToHyperService::new(router);
    let end = match &config.tls {
        None => serve_io(tcp, service, config, watcher).await,
        Some(acceptor) => {
            match tokio::time::timeout(config.header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve_io(tls, service, config, watcher).await,
                Ok(Err(_)) => ConnectionEnd::Error,
                Err(_) => ConnectionEnd::HeaderTimeout,
            }
        }
    };
    drop(permit);
    end
}

async fn serve_io<I>(
    io: I,
    service: TowerToHyperService<Router>,
    config: &ServerConfig,
    watcher: Watcher,
) -> ConnectionEnd
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1(config).serve_connection(TokioIo::new(io), service);
    end_of(watcher.watch(conn).await)
}

/// The one answer of a connection over the cap.
async fn refuse(
    tcp: TcpStream,
    config: &ServerConfig,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) -> ConnectionEnd {
    let service = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the appliance is serving as many connections as it takes; retry",
        )
        .with_retry_after(1)
        .into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, std::convert::Infallible>(r)
    });
    let short = ServerConfig {
        header_timeout: config.header_timeout.min(Duration::from_secs(2)),
        ..config.clone()
    };
    let end = match &config.tls {
        None => {
            let mut b = http1(&short);
            b.keep_alive(false);
            end_of(
                watcher
                    .watch(b.serve_connection(TokioIo::new(tcp), service))
                    .await,
            )
        }
        Some(acceptor) => {
            match tokio::time::timeout(short.header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let mut b = http1(&short);
                    b.keep_alive(false);
                    end_of(
                        watcher
                            .watch(b.serve_connection(TokioIo::new(tls), service))
                            .await,
                    )
                }
                _ => ConnectionEnd::Error,
            }
        }
    };
    drop(permit);
    end
}
