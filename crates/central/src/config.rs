//! The registry's configuration file (TOML).
//!
//! ```toml
//! instance = "VN"
//! listen = "127.0.0.1:8800"
//! database_url = "sqlite://registry.db"      # or postgres://user@host/db
//! public_url = "http://127.0.0.1:8800"       # written into the anchor
//! keystore = "keys"                           # configuration-signing keys
//! signing_keys = ["conf-1"]                   # all listed keys sign (rotation)
//! republish_interval_seconds = 120
//! ```
//! Relative paths are relative to the file's directory.

use crate::CentralError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    instance: String,
    listen: SocketAddr,
    database_url: String,
    public_url: String,
    keystore: PathBuf,
    signing_keys: Vec<String>,
    #[serde(default = "default_republish")]
    republish_interval_seconds: u64,
}

fn default_republish() -> u64 {
    120
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Federation instance.
    pub instance: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Store URL.
    pub database_url: String,
    /// Base URL others use; the configuration is at `{public_url}/globalconf`.
    pub public_url: String,
    /// Directory of the configuration-signing keys.
    pub keystore: PathBuf,
    /// Names of the signing keys.
    pub signing_keys: Vec<String>,
    /// How often to re-sign (so that expiry keeps moving forward).
    pub republish_interval: Duration,
}

impl Config {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Self, CentralError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CentralError::Config(format!("cannot read {}: {e}", path.display())))?;
        let raw: RawConfig = toml::from_str(&text)
            .map_err(|e| CentralError::Config(format!("{}: {e}", path.display())))?;
        Self::from_raw(raw, path.parent().unwrap_or(Path::new(".")))
    }

    /// Validate a parsed file; `base` resolves relative paths.
    pub fn from_raw(raw: RawConfig, base: &Path) -> Result<Self, CentralError> {
        let RawConfig {
            instance,
            listen,
            database_url,
            public_url,
            keystore,
            signing_keys,
            republish_interval_seconds,
        } = raw;
        lienthong_model::GlobalGroupId::new(&instance, "x")
            .map_err(|e| CentralError::Config(format!("instance: {e}")))?;
        if signing_keys.is_empty() {
            return Err(CentralError::Config(
                "signing_keys must name at least one key".into(),
            ));
        }
        if republish_interval_seconds == 0 {
            return Err(CentralError::Config(
                "republish_interval_seconds must be positive".into(),
            ));
        }
        let database_url = match database_url.strip_prefix("sqlite://") {
            Some(path) if Path::new(path).is_relative() => {
                format!("sqlite://{}", base.join(path).display())
            }
            _ => database_url,
        };
        Ok(Self {
            instance,
            listen,
            database_url,
            public_url: public_url.trim_end_matches('/').to_owned(),
            keystore: base.join(keystore),
            signing_keys,
            republish_interval: Duration::from_secs(republish_interval_seconds),
        })
    }

    /// Where the signed configuration is served.
    pub fn download_url(&self) -> String {
        format!("{}/globalconf", self.public_url)
    }
}
