//! The gateway-side configuration client: download, verify against the anchor, keep the
//! last good copy on disk, and say whether the configuration in hand is still valid.

use crate::ConfError;
use crate::document::{VerifiedConf, verify};
use lienthong_model::conf::Anchor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A newer configuration was verified and is now current.
    Updated { version: u64 },
    /// The server had nothing newer (HTTP 304 or the same content).
    Unchanged { version: u64 },
}

/// The state of the configuration in hand at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfStatus {
    /// None has ever been verified.
    Missing,
    /// Valid until `expires_at`.
    Valid { version: u64, expires_at: i64 },
    /// Expired at `expires_at`: gateways refuse to exchange.
    Expired { version: u64, expires_at: i64 },
}

/// Keeps a verified global configuration current.
#[derive(Debug)]
pub struct ConfClient {
    anchor: Anchor,
    cache_path: PathBuf,
    http: reqwest::Client,
    etag: Mutex<Option<String>>,
    /// Held across a refresh's download and adoption. Two refreshes at once (the poller
    /// and an operator's or a test's call) could otherwise adopt their answers in the
    /// wrong order and refuse the older one as a rollback.
    refreshing: tokio::sync::Mutex<()>,
    current: watch::Sender<Option<Arc<VerifiedConf>>>,
}

impl ConfClient {
    /// A client for `anchor` keeping its last good copy at `cache_path`. A copy already on
    /// disk is loaded if its signature verifies (it may have expired; [`ConfClient::status`]
    /// says so).
    pub fn new(anchor: Anchor, cache_path: impl Into<PathBuf>) -> Result<Self, ConfError> {
        // reqwest's rustls needs a process-wide provider; installing it twice is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfError::Download {
                url: String::new(),
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        let cache_path = cache_path.into();
        let initial = load_cached(&cache_path, &anchor)?;
        if let Some(conf) = &initial {
            tracing::info!(version = conf.conf.version, path = %cache_path.display(), "loaded the last good global configuration");
        }
        let (current, _) = watch::channel(initial.map(Arc::new));
        Ok(Self {
            anchor,
            cache_path,
            http,
            etag: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            current,
        })
    }

    /// The anchor.
    pub fn anchor(&self) -> &Anchor {
        &self.anchor
    }

    /// The newest verified configuration, expired or not.
    pub fn current(&self) -> Option<Arc<VerifiedConf>> {
        self.current.borrow().clone()
    }

    /// Changes of the current configuration.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<VerifiedConf>>> {
        self.current.subscribe()
    }

    /// The status at `now` (Unix seconds).
    pub fn status(&self, now: i64) -> ConfStatus {
        match self.current() {
            None => ConfStatus::Missing,
            Some(c) if c.is_expired(now) => ConfStatus::Expired {
                version: c.conf.version,
                expires_at: c.conf.expires_at,
            },
            Some(c) => ConfStatus::Valid {
                version: c.conf.version,
                expires_at: c.conf.expires_at,
            },
        }
    }

    /// The configuration to exchange on at `now`, or why there is none.
    pub fn usable(&self, now: i64) -> Result<Arc<VerifiedConf>, ConfError> {
        let conf = self.current().ok_or(ConfError::Missing)?;
        if conf.is_expired(now) {
            return Err(ConfError::Expired {
                version: conf.conf.version,
                expires_at: conf.conf.expires_at,
                now,
            });
        }
        Ok(conf)
    }

    /// Verify and adopt `envelope` (as downloaded) at `now`. Refuses anything that fails
    /// verification or is older than the copy in hand; the copy in hand stays current.
    pub fn accept(&self, envelope: &[u8], now: i64) -> Result<RefreshOutcome, ConfError> {
        let verified = verify(envelope, &self.anchor, now)?;
        let version = verified.conf.version;
        if let Some(held) = self.current() {
            if version < held.conf.version {
                return Err(ConfError::Rollback {
                    held: held.conf.version,
                    offered: version,
                });
            }
            if held.content_hash == verified.content_hash {
                return Ok(RefreshOutcome::Unchanged { version });
            }
        }
        save(&self.cache_path, envelope)?;
        self.current.send_replace(Some(Arc::new(verified)));
        tracing::info!(version, "adopted a new global configuration");
        Ok(RefreshOutcome::Updated { version })
    }

    /// Download from the anchor's URLs (in order, first success wins) and adopt. Refreshes
    /// run one at a time, so a download never races a newer one to adoption.
    pub async fn refresh(&self, now: i64) -> Result<RefreshOutcome, ConfError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let mut last_error = ConfError::Download {
            url: String::new(),
            reason: "the anchor lists no download URL".into(),
        };
        for url in &self.anchor.download_urls {
            match self.download(url).await {
                Ok(None) => {
                    if let Some(held) = self.current() {
                        return Ok(RefreshOutcome::Unchanged {
                            version: held.conf.version,
                        });
                    }
                }
                Ok(Some((body, etag))) => {
                    let outcome = self.accept(&body, now)?;
                    if let Ok(mut slot) = self.etag.lock() {
                        *slot = etag;
                    }
                    return Ok(outcome);
                }
                Err(error) => {
                    tracing::warn!(url, %error, "global configuration download failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// Poll every `interval` until `shutdown` resolves. Failures are logged; the copy in
    /// hand stays in use until it expires.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.refresh(unix_now()).await {
                        tracing::warn!(%error, status = ?self.status(unix_now()), "global configuration refresh failed");
                    }
                }
            }
        }
    }

    /// `Ok(None)` on 304 Not Modified.
    async fn download(&self, url: &str) -> Result<Option<(Vec<u8>, Option<String>)>, ConfError> {
        let failed = |reason: String| ConfError::Download {
            url: url.to_owned(),
            reason,
        };
        let mut request = self.http.get(url);
        let etag = self.etag.lock().ok().and_then(|e| e.clone());
        if let (Some(etag), Some(_)) = (etag, self.current()) {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        if body.len() > crate::document::MAX_DOCUMENT {
            return Err(failed("document too large".into()));
        }
        Ok(Some((body.to_vec(), etag)))
    }
}

fn load_cached(path: &Path, anchor: &Anchor) -> Result<Option<VerifiedConf>, ConfError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfError::Io {
                action: "read",
                path: path.display().to_string(),
                source,
            });
        }
    };
    // Verify at the dawn of time so that an expired copy still loads (and reports expired).
    match verify(&bytes, anchor, i64::MIN) {
        Ok(conf) => Ok(Some(conf)),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "ignoring the cached global configuration");
            Ok(None)
        }
    }
}

fn save(path: &Path, envelope: &[u8]) -> Result<(), ConfError> {
    let io = |action, source| ConfError::Io {
        action,
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create the directory of", e))?;
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, envelope).map_err(|e| io("write", e))?;
    std::fs::rename(&temporary, path).map_err(|e| io("replace", e))
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
