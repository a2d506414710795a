//! Dialling other gateways: a connector for hyper's pooled client that resolves a
//! gateway's TLS name (see [`crate::trust::tls_name`]) to the address the global
//! configuration registers for it, and speaks mutual TLS with HTTP/2 when offered.
//!
//! A gateway run as a cluster registers the addresses of all its nodes, separated by
//! commas (`node1:8443,node2:8443`); the nodes share its identity (auth key and
//! certificate) and its database. Each new connection starts at the next address in turn,
//! so that connections spread over the nodes, and moves on to the following one when a
//! node cannot be reached: a dead node costs a failed connect, not a failed exchange.

use crate::trust::TrustCell;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long to wait for a TCP connection and TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connector.
#[derive(Clone)]
pub struct PeerConnector {
    tls: TlsConnector,
    trust: TrustCell,
    /// Where the next connection starts in a cluster's list of node addresses.
    turn: Arc<AtomicUsize>,
}

impl PeerConnector {
    /// A connector using `config` (see [`crate::tls::client_config`]).
    pub fn new(config: Arc<rustls::ClientConfig>, trust: TrustCell) -> Self {
        Self {
            tls: TlsConnector::from(config),
            trust,
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl std::fmt::Debug for PeerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConnector").finish_non_exhaustive()
    }
}

/// An established connection to a gateway.
#[derive(Debug)]
pub struct PeerStream(TokioIo<TlsStream<TcpStream>>);

impl PeerStream {
    pub(crate) fn new(stream: TlsStream<TcpStream>) -> Self {
        Self(TokioIo::new(stream))
    }
}

impl tower_service::Service<Uri> for PeerConnector {
    type Response = PeerStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<PeerStream, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let trust = self.trust.clone();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let failed = |m: String| std::io::Error::new(std::io::ErrorKind::NotFound, m);
            let name = uri
                .host()
                .ok_or_else(|| failed("no host in URI".into()))?
                .to_owned();
            let registered = trust
                .get()
                .and_then(|view| view.gateway_by_tls_name(&name).map(|g| g.address.clone()))
                .ok_or_else(|| failed(format!("no gateway is registered as {name}")))?;
            let addresses = node_addresses(&registered);
            if addresses.is_empty() {
                return Err(failed(format!("{name} has no address")));
            }
            let server_name = ServerName::try_from(name.clone()).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
            let mut last_error = None;
            for step in 0..addresses.len() {
                let address = addresses[(turn + step) % addresses.len()];
                let connect = async {
                    let tcp = TcpStream::connect(address).await?;
                    tcp.set_nodelay(true)?;
                    tls.connect(server_name.clone(), tcp).await
                };
                match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(Ok(stream)) => return Ok(PeerStream::new(stream)),
                    Ok(Err(error)) => {
                        if addresses.len() > 1 {
                            tracing::warn!(%address, gateway = %name, %error, "gateway node unreachable; trying its next node");
                        }
                        last_error = Some(error);
                    }
                    Err(_) => {
                        last_error = Some(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connecting to {address} timed out"),
                        ));
                    }
                }
            }
            let error = last_error.unwrap_or_else(|| failed(format!("{name} has no address")));
            Err(error)
        })
    }
}

/// The node addresses a registered gateway address lists (comma-separated `host:port`).
pub(crate) fn node_addresses(registered: &str) -> Vec<&str> {
    registered
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

impl Connection for PeerStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.0.inner().get_ref().1.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cluster_registers_each_node() {
        assert_eq!(super::node_addresses("a:1"), ["a:1"]);
        assert_eq!(super::node_addresses("a:1, b:2,"), ["a:1", "b:2"]);
        assert!(super::node_addresses(" , ").is_empty());
    }
}
