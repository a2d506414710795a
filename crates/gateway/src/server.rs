//! The gateway's listeners: local clients (HTTP, and HTTPS when configured), peer gateways
//! (mutual TLS), and the admin API (with the health probes and metrics, see
//! [`crate::health`]). `run` serves until shutdown, then drains: it stops accepting, lets
//! in-flight exchanges finish, flushes the message log, seals it once more, and returns.

use crate::client_proxy::{self, LocalConnection};
use crate::gateway::{Gateway, unix_now};
use crate::server_proxy::{self, Peer};
use crate::trust::hex;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;

/// HTTP/2 between gateways: per-stream and per-connection flow-control windows, and the
/// largest frame either side accepts. hyper's defaults (1 MiB windows, 16 KiB frames) cut a
/// 10 MB body into 640 frames and stalled it on window updates; the windows bound the
/// bytes in flight, so memory stays bounded.
pub(crate) const H2_STREAM_WINDOW: u32 = 4 << 20;
pub(crate) const H2_CONNECTION_WINDOW: u32 = 8 << 20;
pub(crate) const H2_MAX_FRAME: u32 = 1 << 20;
/// The header compression table each side of a gateway connection lets its peer fill
/// (HTTP/2's default is 4 KiB). Every message carries its signer's certificate and OCSP
/// response as headers, the same text for hours; with room for them in the table, each goes
/// as an index of a byte or two instead of about 1.5 KB compressed again by the sender and
/// decompressed again by the receiver. Values new with every message are sent "never
/// indexed" ([`crate::proxy_common::per_message_value`]) so they do not push these out.
pub(crate) const H2_HEADER_TABLE: u32 = 16 << 10;
use std::time::Duration;
use tokio::net::TcpListener;

/// Bound listeners (bind them first so that tests can use port 0).
#[derive(Debug)]
pub struct Listeners {
    pub client: TcpListener,
    /// HTTPS for local clients (optional).
    pub client_tls: Option<TcpListener>,
    pub peer: TcpListener,
    pub admin: TcpListener,
}

/// In-flight exchanges get this long to finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The message log's last commits and seal get this long each.
const FLUSH_GRACE: Duration = Duration::from_secs(10);

/// Serve until `shutdown` resolves; then stop accepting, finish in-flight exchanges (for
/// at most [`SHUTDOWN_GRACE`]), wait for the message log's last commits, seal the log, and
/// return. `/health` answers 503 `draining` meanwhile.
pub async fn run(
    gateway: Arc<Gateway>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    gateway.spawn_background(stop_rx.clone());
    let graceful = Arc::new(GracefulShutdown::new());
    let tls = crate::tls::server_config(gateway.identity.clone(), gateway.trust.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let admin_state = crate::admin_state(&gateway);
    let log_routes = axum::Router::new().route(
        "/api/v1/log/bundles/{message_id}",
        axum::routing::get(crate::evidence::bundle_route),
    );
    let admin_router = crate::admin::router(admin_state.clone())
        .merge(crate::admin::protect(log_routes, &admin_state).with_state(gateway.clone()))
        .merge(crate::opmon::routes(gateway.clone(), &admin_state))
        .merge(crate::health::routes(gateway.clone(), &admin_state));
    // The admin listener (probes, metrics) stays up until the drain is over.
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::watch::channel(false);
    let admin = tokio::spawn({
        let mut stop = admin_stop_rx;
        let listener = listeners.admin;
        async move {
            let _ = axum::serve(listener, admin_router)
                .with_graceful_shutdown(async move { crate::gateway::stopped(&mut stop).await })
                .await;
        }
    });
    let client_loop = accept_loop(listeners.client, stop_rx.clone(), {
        let gateway = gateway.clone();
        let graceful = graceful.clone();
        move |stream| {
            let gateway = gateway.clone();
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        client_proxy::handle(gateway, request, LocalConnection::default()).await,
                    )
                }
            });
            let connection = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let watched = graceful.watch(connection);
            tokio::spawn(async move {
                let _ = watched.await;
            });
        }
    });
    let peer_loop = accept_loop(listeners.peer, stop_rx.clone(), {
        let gateway = gateway.clone();
        let graceful = graceful.clone();
        move |stream| {
            let gateway = gateway.clone();
            let acceptor = acceptor.clone();
            // A watcher, not a clone of `graceful`: `shutdown` needs the only handle.
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls =
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "peer TLS handshake refused");
                            return;
                        }
                        Err(_) => return,
                    };
                let Some(peer) = authenticate_peer(&gateway, &tls).await else {
                    return;
                };
                let peer = Arc::new(peer);
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    let peer = peer.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            server_proxy::handle(gateway, peer, request).await,
                        )
                    }
                });
                // Gateways agree on HTTP/2 in the TLS handshake; hyper's own HTTP/2 server
                // then, since the automatic one cannot set the header table's size. A peer
                // that offered no protocol gets the automatic one (HTTP/1.1, or HTTP/2 by
                // its preface).
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .initial_stream_window_size(H2_STREAM_WINDOW)
                        .initial_connection_window_size(H2_CONNECTION_WINDOW)
                        .max_frame_size(H2_MAX_FRAME)
                        .header_table_size(H2_HEADER_TABLE)
                        .serve_connection(TokioIo::new(tls), service);
                    let _ = watcher.watch(connection).await;
                    return;
                }
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http2()
                    .initial_stream_window_size(H2_STREAM_WINDOW)
                    .initial_connection_window_size(H2_CONNECTION_WINDOW)
                    .max_frame_size(H2_MAX_FRAME);
                let connection = builder
                    .serve_connection(TokioIo::new(tls), service)
                    .into_owned();
                let _ = watcher.watch(connection).await;
            });
        }
    });
    let client_tls_loop = listeners.client_tls.map(|listener| {
        let local_tls = crate::tls::local_server_config(gateway.identity.clone())
            .map(tokio_rustls::TlsAcceptor::from);
        let gateway = gateway.clone();
        let graceful = graceful.clone();
        accept_loop(listener, stop_rx.clone(), move |stream| {
            let Ok(acceptor) = local_tls.clone() else {
                return;
            };
            let gateway = gateway.clone();
            // A watcher, not a clone of `graceful`: `shutdown` needs the only handle.
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                else {
                    return;
                };
                let connection = LocalConnection {
                    tls: true,
                    client_certificate: tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| hex(&lienthong_crypto::HashAlgorithm::Sha256.digest(c.as_ref()))),
                };
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    let connection = connection.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            client_proxy::handle(gateway, request, connection).await,
                        )
                    }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let connection = builder
                    .serve_connection(TokioIo::new(tls), service)
                    .into_owned();
                let _ = watcher.watch(connection).await;
            });
        })
    });
    let mut stop = stop_rx.clone();
    tokio::select! {
        () = shutdown => {}
        _ = crate::gateway::stopped(&mut stop) => {}
    }
    tracing::info!("stopping: no new connections; finishing in-flight exchanges");
    gateway.ops.set_draining(true);
    let _ = stop_tx.send(true);
    let _ = tokio::join!(client_loop, peer_loop);
    if let Some(handle) = client_tls_loop {
        let _ = handle.await;
    }
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| {
        tracing::warn!("connections are not tracked for the drain: they will not get GOAWAY");
        GracefulShutdown::new()
    });
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some exchanges did not finish within {} s",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    if !gateway.journal.flush(FLUSH_GRACE).await {
        tracing::error!(
            pending = gateway.journal.pending(),
            "message log records still uncommitted at shutdown"
        );
    }
    let _ = tokio::time::timeout(FLUSH_GRACE, crate::opmon::flush(&gateway)).await;
    match tokio::time::timeout(FLUSH_GRACE, gateway.seal_log()).await {
        Ok(Ok(outcome)) => tracing::info!(?outcome, "message log sealed at shutdown"),
        Ok(Err(error)) => tracing::warn!(%error, "cannot seal the message log at shutdown"),
        Err(_) => tracing::warn!("sealing the message log at shutdown timed out"),
    }
    let _ = admin_stop_tx.send(true);
    let _ = admin.await;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) fn accept_loop(
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut on_connection: impl FnMut(tokio::net::TcpStream) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = crate::gateway::stopped(&mut stop) => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        on_connection(stream);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    })
}

/// After the handshake: which gateway is this (its certificate was already checked
/// against the configuration), and is its auth certificate's status good and fresh?
async fn authenticate_peer(
    gateway: &Gateway,
    tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Option<Peer> {
    let der = tls
        .get_ref()
        .1
        .peer_certificates()?
        .first()?
        .as_ref()
        .to_vec();
    let view = gateway.trust.get()?;
    let server = view.gateway_by_certificate(&der)?.id.clone();
    let certificate = lienthong_pki::CertificateInfo::from_der(&der).ok()?;
    let issuer = view.issuer_of(&certificate)?;
    let freshness = i64::try_from(view.conf.conf.policy.ocsp_freshness_seconds).unwrap_or(3600);
    match gateway
        .ocsp
        .response_for(&certificate, issuer, freshness, unix_now())
        .await
    {
        Ok((_, lienthong_pki::VerifiedStatus::Good { .. })) => Some(Peer { server }),
        Ok((_, status)) => {
            tracing::warn!(peer = %server, ?status, sha256 = %hex(&certificate.sha256()), "refused a peer gateway: auth certificate not good");
            None
        }
        Err(error) => {
            tracing::warn!(peer = %server, %error, "refused a peer gateway: no fresh certificate status");
            None
        }
    }
}
