//! Serving the router on a socket, with the connection limits of `[serve.http]`.
//!
//! The accept loop follows mini-redis's `server.rs`: a permit from a semaphore of
//! `max_connections` is taken *before* `accept`, so at the cap serve stops accepting and the
//! kernel's backlog pushes back on new clients instead of serve running out of file
//! descriptors. A client address holding `max_connections_per_client` already has any further
//! connection closed at once, so no single client can take every permit and `/healthz` stays
//! reachable. hyper's `header_read_timeout` closes connections that trickle their request head
//! (slowloris) or sit idle between keep-alive requests. With `[serve.tls]`, the handshake comes
//! first and is bounded by the same timeout, so trickling a TLS `ClientHello` costs a
//! client as much as trickling a request head.
//!
//! Every connection closed before HTTP is counted by reason, by [`ListenMetrics`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::limits::HttpConfig;

/// How long an accept failure (EMFILE: out of file descriptors) pauses accepting, so the
/// loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The listen backlog asked of the kernel (it caps it at `net.core.somaxconn`, 4096 on
/// current Linux): a burst of connections from one client queues there while the accept loop
/// closes them, instead of overflowing it and delaying everyone's handshake by a SYN
/// retransmission (1 s).
const BACKLOG: u32 = 4096;

/// Binds the listening socket.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Why a connection was closed before any HTTP was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its client address already held `max_connections_per_client`.
    ClientCap,
    /// The TLS handshake did not finish within `header_read_timeout`.
    TlsTimeout,
    /// The TLS handshake failed (plain HTTP on the TLS port, no common cipher, garbage).
    TlsError,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::ClientCap, Refusal::TlsTimeout, Refusal::TlsError];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ClientCap => "client_cap",
            Refusal::TlsTimeout => "tls_timeout",
            Refusal::TlsError => "tls_error",
        }
    }
}

/// `claimcheck_http_connections_refused_total{reason}` and `claimcheck_http_connections_open`.
#[derive(Debug, Clone)]
pub struct ListenMetrics {
    refused: IntCounterVec,
    open: IntGauge,
}

impl ListenMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<ListenMetrics> {
        let refused = IntCounterVec::new(
            Opts::new(
                "claimcheck_http_connections_refused_total",
                "Connections closed before any HTTP was read, by reason: client_cap (the \
                 client address held its cap), tls_timeout, tls_error.",
            ),
            &["reason"],
        )?;
        let open = IntGauge::new(
            "claimcheck_http_connections_open",
            "Connections open now (at serve.http.max_connections serve stops accepting).",
        )?;
        reg.register(Box::new(refused.clone()))?;
        reg.register(Box::new(open.clone()))?;
        for r in Refusal::ALL {
            refused.with_label_values(&[r.as_str()]);
        }
        Ok(ListenMetrics { refused, open })
    }

    /// One connection closed before HTTP: counted, and logged at DEBUG (a hostile client
    /// must not be able to fill the log).
    fn refused(&self, peer: std::net::SocketAddr, reason: Refusal, detail: &str) {
        self.refused.with_label_values(&[reason.as_str()]).inc();
        tracing::debug!(%peer, reason = reason.as_str(), detail, "connection refused");
    }
}

/// One connection on the open-connections gauge, taken off when it ends (or is aborted).
struct OpenConnection(IntGauge);

impl OpenConnection {
    fn new(gauge: &IntGauge) -> OpenConnection {
        gauge.inc();
        OpenConnection(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Open connections per client address.
type Clients = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One client's claim on a connection slot, given back when the connection ends.
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(clients: &Clients, ip: IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut map = clients.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(ip).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: clients.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// lets open requests finish for up to the request timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: ListenMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let clients = Clients::default();
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Finished connections are reaped here so the set does not grow.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Some(slot) = ClientSlot::take(&clients, peer.ip(), config.max_connections_per_client)
        else {
            metrics.refused(peer, Refusal::ClientCap, "");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let metrics = metrics.clone();
        let handshake_timeout = config.header_read_timeout;
        let open = OpenConnection::new(&metrics.open);
        connections.spawn(async move {
            match tls {
                None => connection(&builder, watcher, stream, app).await,
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection(&builder, watcher, stream, app).await,
                        Ok(Err(e)) => metrics.refused(peer, Refusal::TlsError, &e.to_string()),
                        Err(_) => metrics.refused(peer, Refusal::TlsTimeout, ""),
                    }
                }
            }
            drop((permit, slot, open));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.request_timeout) => {
            tracing::warn!("connections still open after the request timeout: closing them");
        }
    }
    connections.shutdown().await;
}

async fn connection<I>(
    builder: &hyper::server::conn::http1::Builder,
    graceful: hyper_util::server::graceful::Watcher,
    io: I,
    app: Router,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    if let Err(e) = graceful.watch(conn).await {
        // Timeouts, resets and malformed requests end here: the client's problem.
        tracing::debug!(error = %e, "connection ended");
    }
}
