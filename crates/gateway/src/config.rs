//! The gateway's configuration file (TOML); relative paths are relative to the file.
//!
//! ```toml
//! server_id = "VN/GOV/000123/gw1"
//! anchor = "anchor.json"
//! state_dir = "state"                      # last good configuration, spool files
//! database_url = "sqlite://state/gateway.db"
//! keystore = "keys"
//! auth_key = "auth"                        # key name in the key store
//! auth_certificate = "auth.pem"
//! client_listen = "127.0.0.1:8080"         # local information systems (X-Road REST)
//! peer_listen = "127.0.0.1:8443"           # other gateways (mTLS); as registered
//! admin_listen = "127.0.0.1:8081"
//! admin_token_sha256 = ["..."]             # SHA-256 (hex) of admin bearer tokens
//! max_body_bytes = 104857600
//! memory_body_bytes = 262144               # larger bodies are spooled to disk
//! conf_poll_seconds = 60
//! opmon_retention_days = 30                # operational-monitoring records are kept this long
//! timestamp_failure_tolerance_seconds = 14400 # refuse exchanges once the oldest record
//!                                          # not yet timestamped is older (0: never refuse)
//! max_logged_body_bytes = 10485760         # larger bodies are logged by digest only
//! log_archive_dir = "state/archive"        # message-log archives (default: STATE_DIR/archive)
//! log_archive_interval_seconds = 86400     # how often timestamped records are archived
//! log_retention_days = 180                 # archived records older than this leave the
//!                                          # database (0: keep them there forever)
//!
//! [[member]]                               # members this gateway signs for
//! id = "VN/GOV/000123"
//! sign_key = "sign"
//! sign_certificate = "sign.pem"
//!
//! [[subsystem]]                            # local subsystems (clients and providers)
//! id = "VN/GOV/000123/citizen-registry"
//! connection = "http"                      # as a client: http (default) | https | mtls
//! client_certificates = []                 # SHA-256 (hex) of accepted client certificates (mtls)
//! message_body_logging = "digest"          # digest (default) | full | encrypted
//! body_encryption_key = "bodies.pub"       # encrypted: the member's X25519 public key (PEM)
//! ```

use lienthong_model::{MemberId, ServerId, SubsystemId};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a local client subsystem must connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Plain HTTP (inside a protected network).
    Http,
    /// HTTPS to the gateway.
    Https,
    /// HTTPS with a client certificate the gateway knows.
    Mtls,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    server_id: ServerId,
    anchor: PathBuf,
    state_dir: PathBuf,
    database_url: String,
    keystore: PathBuf,
    auth_key: String,
    auth_certificate: PathBuf,
    client_listen: SocketAddr,
    #[serde(default)]
    client_tls_listen: Option<SocketAddr>,
    peer_listen: SocketAddr,
    admin_listen: SocketAddr,
    #[serde(default)]
    admin_token_sha256: Vec<String>,
    #[serde(default = "default_max_body")]
    max_body_bytes: u64,
    #[serde(default = "default_memory_body")]
    memory_body_bytes: usize,
    #[serde(default = "default_poll")]
    conf_poll_seconds: u64,
    #[serde(default = "default_opmon_retention")]
    opmon_retention_days: u64,
    #[serde(default = "default_timestamp_tolerance")]
    timestamp_failure_tolerance_seconds: u64,
    #[serde(default = "default_max_logged_body")]
    max_logged_body_bytes: u64,
    #[serde(default)]
    log_archive_dir: Option<PathBuf>,
    #[serde(default = "default_log_archive_interval")]
    log_archive_interval_seconds: u64,
    #[serde(default = "default_log_retention")]
    log_retention_days: u64,
    #[serde(default, rename = "member")]
    members: Vec<RawMember>,
    #[serde(default, rename = "subsystem")]
    subsystems: Vec<RawSubsystem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: MemberId,
    sign_key: String,
    sign_certificate: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubsystem {
    id: SubsystemId,
    #[serde(default = "default_connection")]
    connection: Connection,
    #[serde(default)]
    client_certificates: Vec<String>,
    #[serde(default)]
    message_body_logging: RawBodyLogging,
    #[serde(default)]
    body_encryption_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawBodyLogging {
    #[default]
    Digest,
    Full,
    Encrypted,
}

fn default_max_body() -> u64 {
    100 * 1024 * 1024
}
fn default_memory_body() -> usize {
    256 * 1024
}
fn default_log_archive_interval() -> u64 {
    24 * 60 * 60
}
fn default_log_retention() -> u64 {
    180
}
fn default_poll() -> u64 {
    60
}
/// X-Road keeps operational-monitoring records a week by default; a month suits audits.
fn default_opmon_retention() -> u64 {
    30
}
fn default_connection() -> Connection {
    Connection::Http
}
/// X-Road's default acceptable timestamp failure period: four hours.
fn default_timestamp_tolerance() -> u64 {
    4 * 60 * 60
}
fn default_max_logged_body() -> u64 {
    10 * 1024 * 1024
}

/// What the message log keeps of a subsystem's bodies (as client, or as provider). The
/// body digests are logged, and signed, in every case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BodyLogging {
    /// Only the digests: the parties keep the bodies; the log proves which ones.
    #[default]
    Digest,
    /// The bodies in clear beside the record.
    Full,
    /// The bodies encrypted to the member's X25519 key: the gateway cannot read them back.
    Encrypted(lienthong_crypto::BoxPublicKey),
}

/// A member this gateway signs for.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub id: MemberId,
    pub sign_key: String,
    pub sign_certificate: PathBuf,
}

/// A local client subsystem.
#[derive(Debug, Clone)]
pub struct SubsystemConfig {
    pub id: SubsystemId,
    pub connection: Connection,
    pub client_certificates: Vec<String>,
    pub body_logging: BodyLogging,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server_id: ServerId,
    pub anchor: PathBuf,
    pub state_dir: PathBuf,
    pub database_url: String,
    pub keystore: PathBuf,
    pub auth_key: String,
    pub auth_certificate: PathBuf,
    pub client_listen: SocketAddr,
    pub client_tls_listen: Option<SocketAddr>,
    pub peer_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token_sha256: Vec<String>,
    pub max_body_bytes: u64,
    pub memory_body_bytes: usize,
    pub conf_poll: Duration,
    /// Operational-monitoring records older than this are purged.
    pub opmon_retention: Duration,
    /// How long records may go untimestamped before exchanges are refused (zero: never).
    pub timestamp_failure_tolerance: Duration,
    /// Bodies larger than this are logged by digest only, whatever the subsystem says.
    pub max_logged_body_bytes: u64,
    /// Where the message-log archives are written.
    pub log_archive_dir: PathBuf,
    /// How often the timestamped records not yet archived are archived.
    pub log_archive_interval: Duration,
    /// How long archived records stay in the database; `None`: for ever.
    pub log_retention: Option<Duration>,
    pub members: Vec<MemberConfig>,
    pub subsystems: Vec<SubsystemConfig>,
}

impl Config {
    /// Read and validate a file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_raw(raw, path.parent().unwrap_or(Path::new(".")))
    }

    /// Validate a parsed file; `base` resolves relative paths.
    pub fn from_raw(raw: RawConfig, base: &Path) -> Result<Self, String> {
        let RawConfig {
            server_id,
            anchor,
            state_dir,
            database_url,
            keystore,
            auth_key,
            auth_certificate,
            client_listen,
            client_tls_listen,
            peer_listen,
            admin_listen,
            admin_token_sha256,
            max_body_bytes,
            memory_body_bytes,
            conf_poll_seconds,
            opmon_retention_days,
            timestamp_failure_tolerance_seconds,
            max_logged_body_bytes,
            log_archive_dir,
            log_archive_interval_seconds,
            log_retention_days,
            members,
            subsystems,
        } = raw;
        if log_archive_interval_seconds == 0 || log_retention_days > 36_500 {
            return Err(
                "log_archive_interval_seconds must be positive and log_retention_days at most 36500"
                    .into(),
            );
        }
        let log_archive_dir =
            base.join(log_archive_dir.unwrap_or_else(|| state_dir.join("archive")));
        if opmon_retention_days == 0 || opmon_retention_days > 3650 {
            return Err("opmon_retention_days must be 1 to 3650".into());
        }
        if members.is_empty() {
            return Err("at least one [[member]] is required".into());
        }
        if conf_poll_seconds == 0 || memory_body_bytes == 0 || max_body_bytes == 0 {
            return Err(
                "conf_poll_seconds, memory_body_bytes and max_body_bytes must be positive".into(),
            );
        }
        for subsystem in &subsystems {
            if !members.iter().any(|m| &m.id == subsystem.id.member()) {
                return Err(format!(
                    "subsystem {} belongs to no configured [[member]]",
                    subsystem.id
                ));
            }
            if subsystem.connection != Connection::Http && client_tls_listen.is_none() {
                return Err(format!(
                    "subsystem {} needs client_tls_listen for {:?}",
                    subsystem.id, subsystem.connection
                ));
            }
        }
        let mut body_logging = Vec::with_capacity(subsystems.len());
        for subsystem in &subsystems {
            body_logging.push(match (subsystem.message_body_logging, &subsystem.body_encryption_key) {
                (RawBodyLogging::Digest, None) => BodyLogging::Digest,
                (RawBodyLogging::Full, None) => BodyLogging::Full,
                (RawBodyLogging::Encrypted, Some(path)) => {
                    let path = base.join(path);
                    let bytes = std::fs::read(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    BodyLogging::Encrypted(
                        lienthong_crypto::BoxPublicKey::parse(&bytes)
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                    )
                }
                (RawBodyLogging::Encrypted, None) => {
                    return Err(format!(
                        "subsystem {}: message_body_logging = \"encrypted\" needs body_encryption_key",
                        subsystem.id
                    ));
                }
                (_, Some(_)) => {
                    return Err(format!(
                        "subsystem {}: body_encryption_key is only for message_body_logging = \"encrypted\"",
                        subsystem.id
                    ));
                }
            });
        }
        let database_url = match database_url.strip_prefix("sqlite://") {
            Some(path) if Path::new(path).is_relative() => {
                format!("sqlite://{}", base.join(path).display())
            }
            _ => database_url,
        };
        Ok(Self {
            server_id,
            anchor: base.join(anchor),
            state_dir: base.join(state_dir),
            database_url,
            keystore: base.join(keystore),
            auth_key,
            auth_certificate: base.join(auth_certificate),
            client_listen,
            client_tls_listen,
            peer_listen,
            admin_listen,
            admin_token_sha256: admin_token_sha256
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_body_bytes,
            memory_body_bytes,
            conf_poll: Duration::from_secs(conf_poll_seconds),
            opmon_retention: Duration::from_secs(opmon_retention_days * 24 * 60 * 60),
            timestamp_failure_tolerance: Duration::from_secs(timestamp_failure_tolerance_seconds),
            max_logged_body_bytes,
            log_archive_dir,
            log_archive_interval: Duration::from_secs(log_archive_interval_seconds),
            log_retention: (log_retention_days > 0)
                .then(|| Duration::from_secs(log_retention_days * 24 * 60 * 60)),
            members: members
                .into_iter()
                .map(|m| MemberConfig {
                    id: m.id,
                    sign_key: m.sign_key,
                    sign_certificate: base.join(m.sign_certificate),
                })
                .collect(),
            subsystems: subsystems
                .into_iter()
                .zip(body_logging)
                .map(|(s, body_logging)| SubsystemConfig {
                    id: s.id,
                    connection: s.connection,
                    client_certificates: s
                        .client_certificates
                        .into_iter()
                        .map(|h| h.to_ascii_lowercase())
                        .collect(),
                    body_logging,
                })
                .collect(),
        })
    }
}
