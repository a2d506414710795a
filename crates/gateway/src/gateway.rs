//! The running gateway: keys, certificates, the trust view, clients, caches — everything the
//! client-side and provider-side proxies share — and the background work that keeps the
//! configuration and the certificate statuses fresh.

use crate::body::{BodyLimits, GatewayBody};
use crate::catalog::ServiceCatalog;
use crate::config::{Config, SubsystemConfig};
use crate::ocsp::OcspCache;
use crate::peer::PeerConnector;
use crate::replay::ReplayGuard;
use crate::tls::AuthIdentity;
use crate::trust::{TrustCell, TrustView};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lienthong_conf::ConfClient;
use lienthong_crypto::{BatchSigner, BatchVerifier, Signer};
use lienthong_model::{MemberId, ServerId, SubsystemId};
use lienthong_pki::{CertificateInfo, VerifiedStatus};
use lienthong_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often a cluster node reloads the service catalog other nodes may have changed.
const CATALOG_RELOAD: Duration = Duration::from_secs(5);
/// Messages whose time differs from ours by more than this are refused.
pub(crate) const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// How often our own certificates' OCSP responses are refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(60);
/// A gateway that failed to connect is avoided for this long.
const UNHEALTHY_FOR: Duration = Duration::from_secs(10);

/// Unlocked keys handed to [`Gateway::start`].
#[derive(Debug)]
pub struct GatewayKeys {
    /// The `auth` key (TLS between gateways).
    pub auth: Arc<dyn Signer>,
    /// One `sign` key per member.
    pub members: HashMap<MemberId, Arc<dyn Signer>>,
}

/// A member this gateway signs for.
#[derive(Debug)]
pub struct MemberKey {
    pub id: MemberId,
    pub signer: BatchSigner,
    pub certificate: CertificateInfo,
    pub certificate_header: HeaderValue,
    pub ocsp_header: RwLock<Option<HeaderValue>>,
}

/// Everything the proxies share.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) config: Config,
    pub(crate) conf: Arc<ConfClient>,
    pub(crate) trust: TrustCell,
    pub(crate) members: HashMap<MemberId, Arc<MemberKey>>,
    pub(crate) subsystems: HashMap<SubsystemId, SubsystemConfig>,
    pub(crate) catalog: Arc<ServiceCatalog>,
    pub(crate) store: Store,
    pub(crate) identity: AuthIdentity,
    pub(crate) auth_certificate: CertificateInfo,
    pub(crate) peer_client: Client<PeerConnector, GatewayBody>,
    pub(crate) backends: crate::backend::BackendClients,
    pub(crate) limits: BodyLimits,
    pub(crate) verifier: BatchVerifier,
    pub(crate) signer_certificates: crate::proxy_common::SignerCertificates,
    pub(crate) replay: ReplayGuard,
    pub(crate) ocsp: OcspCache,
    pub(crate) journal: crate::journal::Journal,
    pub(crate) log_signer: Arc<dyn Signer>,
    pub(crate) http: reqwest::Client,
    pub(crate) opmon: crate::opmon::OpMonitor,
    pub(crate) timestamping: crate::seal::TimestampHealth,
    /// The log's tree at the last seal, as its frontier: the next seal reads only the
    /// leaves added since. Held for a whole seal: the periodic sealer, an evidence export
    /// and the flush at shutdown can each ask for one, and two at once would store two
    /// heads of one size.
    pub(crate) sealed_frontier: tokio::sync::Mutex<Option<lienthong_ledger::CompactTree>>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) ops: crate::health::OpsState,
    unhealthy: Mutex<HashMap<ServerId, Instant>>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Conf(#[from] lienthong_conf::ConfError),
    #[error(transparent)]
    Store(#[from] lienthong_store::StoreError),
    #[error(transparent)]
    Pki(#[from] lienthong_pki::PkiError),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl Gateway {
    /// Build the gateway from its configuration and unlocked keys: open the store, load
    /// the last good global configuration and try to refresh it, fetch certificate statuses.
    pub async fn start(config: Config, keys: GatewayKeys) -> Result<Arc<Self>, StartError> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let read_certificate = |path: &std::path::Path| -> Result<CertificateInfo, StartError> {
            let pem = std::fs::read(path)
                .map_err(|e| StartError::Config(format!("cannot read {}: {e}", path.display())))?;
            Ok(CertificateInfo::from_der(
                &lienthong_pki::parse_certificate_pem(&pem)?,
            )?)
        };
        let auth_certificate = read_certificate(&config.auth_certificate)?;
        if &auth_certificate.public_key != keys.auth.public_key() {
            return Err(StartError::Config(
                "the auth key does not match the auth certificate".into(),
            ));
        }
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let gather = sign_gather(&metrics);
        let mut members = HashMap::new();
        for member in &config.members {
            let signer = keys.members.get(&member.id).ok_or_else(|| {
                StartError::Config(format!("no sign key unlocked for {}", member.id))
            })?;
            let certificate = read_certificate(&member.sign_certificate)?;
            if &certificate.public_key != signer.public_key() {
                return Err(StartError::Config(format!(
                    "the sign key of {} does not match its certificate",
                    member.id
                )));
            }
            if certificate.identity
                != Some(lienthong_pki::FederationIdentity::Member(member.id.clone()))
            {
                return Err(StartError::Config(format!(
                    "the sign certificate of {} names another member",
                    member.id
                )));
            }
            let certificate_header = HeaderValue::from_str(&STANDARD.encode(&certificate.der))
                .map_err(|e| StartError::Config(e.to_string()))?;
            members.insert(
                member.id.clone(),
                Arc::new(MemberKey {
                    id: member.id.clone(),
                    signer: BatchSigner::spawn_gathering(signer.clone(), 512, Some(gather.clone())),
                    certificate,
                    certificate_header,
                    ocsp_header: RwLock::new(None),
                }),
            );
        }
        let anchor_bytes = std::fs::read(&config.anchor).map_err(|e| {
            StartError::Config(format!(
                "cannot read the anchor {}: {e}",
                config.anchor.display()
            ))
        })?;
        let anchor = serde_json::from_slice(&anchor_bytes).map_err(|e| {
            StartError::Config(format!(
                "the anchor {} is malformed: {e}",
                config.anchor.display()
            ))
        })?;
        std::fs::create_dir_all(&config.state_dir).map_err(|e| {
            StartError::Config(format!("cannot create {}: {e}", config.state_dir.display()))
        })?;
        let conf = Arc::new(ConfClient::new(
            anchor,
            config.state_dir.join("globalconf.json"),
        )?);
        if let Err(error) = conf.refresh(unix_now()).await {
            tracing::warn!(%error, "cannot download the global configuration at start; using the last good copy if any");
        }
        let trust = TrustCell::default();
        if let Some(current) = conf.current() {
            trust.set(TrustView::new(current));
        }
        let store = Store::open(&config.database_url).await?;
        let catalog = Arc::new(
            ServiceCatalog::load(store.clone())
                .await
                .map_err(|e| StartError::Config(e.to_string()))?,
        );
        let identity = AuthIdentity::new(auth_certificate.der.clone(), keys.auth.clone());
        let peer_client = peer_client_builder().build(PeerConnector::new(
            crate::tls::client_config(identity.clone(), trust.clone())?,
            trust.clone(),
        ));
        let limits = BodyLimits {
            max_bytes: config.max_body_bytes,
            memory_bytes: config.memory_body_bytes,
            spool_dir: Some(config.state_dir.clone()),
        };
        let journal = crate::journal::Journal::spawn(
            store.clone(),
            config.server_id.to_string(),
            metrics.clone(),
        );
        let opmon = crate::opmon::OpMonitor::spawn(store.clone(), config.opmon_retention);
        // Cluster nodes (a shared database) share the replay memory through it.
        let replay = if store.is_shared() {
            ReplayGuard::shared(CLOCK_SKEW_MS, store.clone())
        } else {
            ReplayGuard::new(CLOCK_SKEW_MS)
        };
        let gateway = Arc::new(Self {
            subsystems: config
                .subsystems
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect(),
            config,
            conf,
            trust,
            members,
            catalog,
            store,
            identity,
            auth_certificate,
            peer_client,
            backends: crate::backend::BackendClients::default(),
            limits,
            // The messages of one batch arrive within milliseconds of each other, so a
            // verified root is worth remembering only briefly: 8,192 roots (under 1 MiB)
            // instead of 65,536 (about 7 MiB that a long run filled and kept).
            verifier: BatchVerifier::new(8_192),
            signer_certificates: Default::default(),
            replay,
            ocsp: OcspCache::new(),
            journal,
            log_signer: keys.auth.clone(),
            http: reqwest::Client::new(),
            opmon,
            timestamping: crate::seal::TimestampHealth::default(),
            sealed_frontier: tokio::sync::Mutex::new(None),
            metrics,
            ops: crate::health::OpsState::default(),
            unhealthy: Mutex::new(HashMap::new()),
        });
        gateway.refresh_own_statuses().await;
        Ok(gateway)
    }

    /// This gateway's identifier.
    pub fn server_id(&self) -> &ServerId {
        &self.config.server_id
    }

    /// The configuration client.
    pub fn conf(&self) -> &Arc<ConfClient> {
        &self.conf
    }

    /// The service catalog (services, access rights, local groups).
    pub fn catalog(&self) -> &Arc<ServiceCatalog> {
        &self.catalog
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current trust view.
    pub fn trust(&self) -> &TrustCell {
        &self.trust
    }

    /// Fetch fresh OCSP responses for our own certificates now (they are otherwise
    /// refreshed every minute), e.g. right after a revocation.
    pub async fn refresh_certificate_statuses(&self) {
        self.refresh_own_statuses().await;
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Keep the configuration and our certificates' statuses fresh until `shutdown`.
    pub(crate) fn spawn_background(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let gateway = self.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut updates = gateway.conf.subscribe();
            let poll = gateway
                .conf
                .clone()
                .run(
                    gateway.config.conf_poll,
                    async move { stopped(&mut stop).await },
                );
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    _ = &mut poll => return,
                    changed = updates.changed() => {
                        if changed.is_err() { return; }
                        let current = updates.borrow_and_update().clone();
                        if let Some(conf) = current {
                            gateway.trust.set(TrustView::new(conf));
                            gateway.refresh_own_statuses().await;
                        }
                    }
                }
            }
        });
        let gateway = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { gateway.seal_periodically(stop).await });
        let gateway = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { gateway.archive_periodically(stop).await });
        if self.store.is_shared() {
            // Nodes of a cluster: pick up the services, access rights and local groups
            // another node changed.
            let gateway = self.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(CATALOG_RELOAD);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = crate::gateway::stopped(&mut stop) => return,
                        _ = ticker.tick() => {
                            if let Err(error) = gateway.catalog.reload().await {
                                tracing::warn!(%error, "cannot reload the service catalog from the shared store");
                            }
                        }
                    }
                }
            });
        }
        let gateway = self.clone();
        let mut stop = shutdown;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(STATUS_REFRESH);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = crate::gateway::stopped(&mut stop) => return,
                    _ = ticker.tick() => gateway.refresh_own_statuses().await,
                }
            }
        });
    }

    /// Fetch fresh OCSP responses for our auth certificate (stapled in TLS) and our sign
    /// certificates (sent with every message).
    pub(crate) async fn refresh_own_statuses(&self) {
        let Some(view) = self.trust.get() else {
            return;
        };
        let freshness = i64::try_from(view.conf.conf.policy.ocsp_freshness_seconds).unwrap_or(3600);
        let now = unix_now();
        let certificate = &self.auth_certificate;
        match view.issuer_of(certificate) {
            Some(issuer) => match self.ocsp.fetch(certificate, issuer, freshness, now).await {
                Ok((der, VerifiedStatus::Good { .. })) => self.identity.set_ocsp(der.to_vec()),
                Ok((_, status)) => tracing::error!(?status, "our auth certificate is not good"),
                Err(error) => {
                    tracing::warn!(%error, "cannot refresh the OCSP response of our auth certificate")
                }
            },
            None => tracing::error!("our auth certificate was not issued by an approved CA"),
        }
        for member in self.members.values() {
            let Some(issuer) = view.issuer_of(&member.certificate) else {
                tracing::error!(member = %member.id, "the sign certificate was not issued by an approved CA");
                continue;
            };
            match self
                .ocsp
                .fetch(&member.certificate, issuer, freshness, now)
                .await
            {
                Ok((der, status)) => {
                    if !matches!(status, VerifiedStatus::Good { .. }) {
                        tracing::error!(member = %member.id, ?status, "sign certificate is not good");
                    }
                    if let (Ok(value), Ok(mut slot)) = (
                        HeaderValue::from_str(&STANDARD.encode(der.as_slice())),
                        member.ocsp_header.write(),
                    ) {
                        *slot = Some(value);
                    }
                }
                Err(error) => {
                    tracing::warn!(member = %member.id, %error, "cannot refresh the OCSP response of a sign certificate")
                }
            }
        }
    }

    /// Candidate gateways, healthy ones first.
    pub(crate) fn order_by_health<'a>(
        &self,
        mut gateways: Vec<&'a lienthong_model::conf::Gateway>,
    ) -> Vec<&'a lienthong_model::conf::Gateway> {
        if let Ok(unhealthy) = self.unhealthy.lock() {
            let now = Instant::now();
            gateways.sort_by_key(|g| unhealthy.get(&g.id).is_some_and(|until| *until > now));
        }
        gateways
    }

    /// Avoid `server` for a while.
    pub(crate) fn mark_unhealthy(&self, server: &ServerId) {
        if let Ok(mut unhealthy) = self.unhealthy.lock() {
            unhealthy.insert(server.clone(), Instant::now() + UNHEALTHY_FOR);
        }
    }
}

/// Resolves when the stop flag turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Exchanges in flight (both sides) from which a sign key's batches gather the messages of
/// other exchanges that are ready to run. At half of this machine's peak a gateway has a
/// few in flight and never gathers; saturated with 32 clients it has 15-32.
const SIGN_GATHER_IN_FLIGHT: i64 = 12;
/// The longest a busy gateway's batch gathers while messages keep coming.
const SIGN_GATHER_WAIT: Duration = Duration::from_millis(1);

/// The batching policy of the gateway's sign keys: when many exchanges are in flight, the
/// machine is saturated and each waits for CPU anyway; gathering their signatures into
/// batches then saves the peer gateway a signature check per message (it checks one per
/// batch), which is the larger part of the cost of a signature. The batch takes what the
/// tasks ready to run ask for, and waits on no timer (`crypto::batch`).
fn sign_gather(metrics: &Arc<crate::metrics::Metrics>) -> lienthong_crypto::Gather {
    let metrics = metrics.clone();
    lienthong_crypto::Gather {
        busy: Arc::new(move || {
            metrics.in_flight(crate::metrics::Side::Client)
                + metrics.in_flight(crate::metrics::Side::Provider)
                >= SIGN_GATHER_IN_FLIGHT
        }),
        wait: SIGN_GATHER_WAIT,
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    unix_now_ms() / 1000
}

/// Unix milliseconds now.
pub(crate) fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The pooled client to other gateways, before its connector: idle connections kept 90 s,
/// and the HTTP/2 windows, frame size and header table of [`crate::server`].
pub(crate) fn peer_client_builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_initial_stream_window_size(crate::server::H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(crate::server::H2_CONNECTION_WINDOW)
        .http2_max_frame_size(crate::server::H2_MAX_FRAME)
        .http2_header_table_size(crate::server::H2_HEADER_TABLE);
    builder
}
