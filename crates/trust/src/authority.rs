//! The PKI directory: the CA's encrypted keys, its certificates (PEM, for operators and
//! peers) and its store (every issued certificate, revocations, serial counters).
//!
//! ```text
//! DIR/root-ca.pem  DIR/ocsp.pem  DIR/tsa.pem     certificates (public)
//! DIR/keys/{root-ca,ocsp,tsa}.key                private keys, Argon2id + AES-256-GCM
//! DIR/pki.db                                     the embedded store (SQLite)
//! ```

use crate::TrustError;
use lienthong_crypto::{CryptoPolicy, KdfParams, KeyStore, Suite};
use lienthong_pki::{
    CertificateAuthority, CertificateInfo, FederationIdentity, IssueRequest, Profile, Serial,
    pem_encode_certificate, verify_csr,
};
use lienthong_store::{CertificateRecord, Revocation, RevokeOutcome, Store};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ROOT_KEY: &str = "root-ca";
const OCSP_KEY: &str = "ocsp";
const TSA_KEY: &str = "tsa";
const SETTINGS: &str = "pki.settings";
/// Counter bumped on every revocation, so that OCSP servers drop cached responses.
pub(crate) const REVOCATION_EPOCH: &str = "pki.revocations";
const DAY: u64 = 86_400;

/// The paths inside a PKI directory.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    dir: PathBuf,
}

impl PkiFiles {
    /// The layout of `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Root CA certificate (PEM).
    pub fn root_pem(&self) -> PathBuf {
        self.dir.join("root-ca.pem")
    }
    /// OCSP responder certificate (PEM).
    pub fn ocsp_pem(&self) -> PathBuf {
        self.dir.join("ocsp.pem")
    }
    /// TSA certificate (PEM).
    pub fn tsa_pem(&self) -> PathBuf {
        self.dir.join("tsa.pem")
    }
    /// The encrypted key store.
    pub fn keys(&self) -> PathBuf {
        self.dir.join("keys")
    }
    /// The store's URL: the one recorded in `DIR/store.url` at init (PostgreSQL, so that
    /// several CA or OCSP nodes share state), else the embedded store `DIR/pki.db`.
    pub fn store_url(&self) -> String {
        match std::fs::read_to_string(self.store_url_file()) {
            Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => format!("sqlite://{}", self.dir.join("pki.db").display()),
        }
    }

    fn store_url_file(&self) -> PathBuf {
        self.dir.join("store.url")
    }
}

/// Choices made once, at `pki init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Organisation name in the CA's and services' certificates.
    pub organisation: String,
    /// The suite of the CA, OCSP and TSA keys.
    pub suite: Suite,
    /// The crypto policy every CSR and key must satisfy.
    pub policy: CryptoPolicy,
    /// OCSP URL written into issued certificates (AuthorityInfoAccess).
    pub ocsp_url: Option<String>,
    /// The TSA policy OID.
    pub tsa_policy: String,
    /// Root CA validity in days.
    pub root_days: u64,
    /// OCSP and TSA certificate validity in days.
    pub service_days: u64,
    /// How long an OCSP response is valid (nextUpdate - thisUpdate).
    pub ocsp_validity: Duration,
    /// KDF cost for the keys.
    pub kdf: KdfParams,
    /// A PostgreSQL URL for the CA's state (default: the embedded store in DIR).
    pub database_url: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            organisation: "lienthong federation".into(),
            suite: Suite::EcdsaP256Sha256,
            policy: CryptoPolicy::vn(),
            ocsp_url: None,
            // An arc under the private-enterprise-style placeholder; operators set their own.
            tsa_policy: "1.3.6.1.4.1.57264.1.1".into(),
            root_days: 20 * 365,
            service_days: 5 * 365,
            ocsp_validity: Duration::from_secs(3600),
            kdf: KdfParams::default(),
            database_url: None,
        }
    }
}

/// Options of one issuance.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Validity in days.
    pub days: u64,
}

impl Default for IssueOptions {
    fn default() -> Self {
        Self { days: 365 }
    }
}

/// Settings persisted in the store at init.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) organisation: String,
    pub(crate) policy: String,
    pub(crate) ocsp_url: Option<String>,
    pub(crate) tsa_policy: String,
    pub(crate) ocsp_validity_seconds: u64,
}

/// An opened PKI directory.
#[derive(Debug)]
pub struct Authority {
    files: PkiFiles,
    store: Store,
    settings: Settings,
}

impl Authority {
    /// Create the root CA, the OCSP-signing and TSA keys and certificates in `dir`.
    pub async fn init(
        dir: &Path,
        options: &InitOptions,
        passphrase: &[u8],
    ) -> Result<Self, TrustError> {
        let files = PkiFiles::new(dir);
        let directory_error = |problem: String| TrustError::Directory {
            dir: dir.display().to_string(),
            problem,
        };
        if files.root_pem().exists()
            || files.dir.join("pki.db").exists()
            || files.store_url_file().exists()
        {
            return Err(directory_error(
                "already initialised; refusing to overwrite".into(),
            ));
        }
        options
            .policy
            .check_suite(options.suite)
            .map_err(lienthong_crypto::CryptoError::from)?;
        std::fs::create_dir_all(dir).map_err(TrustError::io("create", dir))?;
        if let Some(url) = &options.database_url {
            std::fs::write(files.store_url_file(), url)
                .map_err(TrustError::io("write", &files.store_url_file()))?;
        }
        let keys = KeyStore::new(files.keys()).with_kdf(options.kdf);
        let now = SystemTime::now();
        let backdate = Duration::from_secs(300); // tolerate small clock skew between hosts
        let root_key = Arc::new(keys.generate(ROOT_KEY, options.suite, passphrase)?);
        let ca = CertificateAuthority::create_root(
            root_key,
            &options.organisation,
            &format!("{} Root CA", options.organisation),
            &Serial::random()?,
            now - backdate,
            now + Duration::from_secs(options.root_days * DAY),
            options.policy.clone(),
        )?;
        let store = Store::open(&files.store_url()).await?;
        let settings = Settings {
            organisation: options.organisation.clone(),
            policy: options.policy.name().to_owned(),
            ocsp_url: options.ocsp_url.clone(),
            tsa_policy: options.tsa_policy.clone(),
            ocsp_validity_seconds: options.ocsp_validity.as_secs(),
        };
        let settings_json = serde_json::to_string(&settings)
            .map_err(|e| TrustError::Invalid(format!("cannot encode settings: {e}")))?;
        store.pki().put_setting(SETTINGS, &settings_json).await?;
        let authority = Self {
            files,
            store,
            settings,
        };
        authority.record(ca.certificate(), Profile::RootCa).await?;
        write_pem(&authority.files.root_pem(), &ca.certificate().der)?;
        for (name, profile, common_name, path) in [
            (
                OCSP_KEY,
                Profile::OcspSigning,
                "OCSP Responder",
                authority.files.ocsp_pem(),
            ),
            (
                TSA_KEY,
                Profile::TimeStamping,
                "Time Stamping Authority",
                authority.files.tsa_pem(),
            ),
        ] {
            let key = keys.generate(name, options.suite, passphrase)?;
            let certificate = ca.issue(&IssueRequest {
                profile,
                identity: None,
                common_name,
                public_key: lienthong_crypto::Signer::public_key(&key),
                serial: &Serial::random()?,
                not_before: now - backdate,
                not_after: now
                    + Duration::from_secs(options.service_days.min(options.root_days) * DAY),
                ocsp_url: None,
            })?;
            authority.record(&certificate, profile).await?;
            write_pem(&path, &certificate.der)?;
        }
        tracing::info!(dir = %dir.display(), suite = %options.suite, policy = options.policy.name(), "initialised PKI");
        Ok(authority)
    }

    /// Open an initialised directory. No key is unlocked.
    pub async fn open(dir: &Path) -> Result<Self, TrustError> {
        let files = PkiFiles::new(dir);
        if !files.root_pem().exists() {
            return Err(TrustError::Directory {
                dir: dir.display().to_string(),
                problem: "not initialised (run `lienthong pki init --dir DIR` first)".into(),
            });
        }
        let store = Store::open(&files.store_url()).await?;
        let settings_json =
            store
                .pki()
                .setting(SETTINGS)
                .await?
                .ok_or_else(|| TrustError::Directory {
                    dir: dir.display().to_string(),
                    problem: "the store has no PKI settings".into(),
                })?;
        let settings: Settings = serde_json::from_str(&settings_json)
            .map_err(|e| TrustError::Invalid(format!("stored PKI settings are unreadable: {e}")))?;
        Ok(Self {
            files,
            store,
            settings,
        })
    }

    /// The directory layout.
    pub fn files(&self) -> &PkiFiles {
        &self.files
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The crypto policy fixed at init.
    pub fn policy(&self) -> Result<CryptoPolicy, TrustError> {
        CryptoPolicy::by_name(&self.settings.policy).ok_or_else(|| {
            TrustError::Invalid(format!("unknown crypto policy {:?}", self.settings.policy))
        })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Read a certificate PEM from the directory.
    pub fn certificate(&self, path: &Path) -> Result<CertificateInfo, TrustError> {
        let pem = std::fs::read(path).map_err(TrustError::io("read", path))?;
        Ok(CertificateInfo::from_der(
            &lienthong_pki::parse_certificate_pem(&pem)?,
        )?)
    }

    /// Unlock the root key and return the CA.
    pub fn unlock_ca(&self, passphrase: &[u8]) -> Result<CertificateAuthority, TrustError> {
        let key = KeyStore::new(self.files.keys()).load(ROOT_KEY, passphrase)?;
        let root = self.certificate(&self.files.root_pem())?;
        Ok(CertificateAuthority::new(
            &root.der,
            Arc::new(key),
            &self.settings.organisation,
            self.policy()?,
        )?)
    }

    /// Unlock a service key (`ocsp` or `tsa`).
    pub(crate) fn unlock_service_key(
        &self,
        name: &str,
        passphrase: &[u8],
    ) -> Result<lienthong_crypto::SoftwareKey, TrustError> {
        Ok(KeyStore::new(self.files.keys()).load(name, passphrase)?)
    }

    /// Issue a certificate from a PKCS #10 CSR (PEM or DER). The subject is built from `id`;
    /// the CSR contributes only its key, which must satisfy the crypto policy.
    pub async fn issue(
        &self,
        ca: &CertificateAuthority,
        csr: &[u8],
        profile: Profile,
        id: &str,
        options: &IssueOptions,
    ) -> Result<CertificateInfo, TrustError> {
        let identity = match profile {
            Profile::Sign => {
                FederationIdentity::Member(id.parse().map_err(lienthong_pki::PkiError::from)?)
            }
            Profile::Auth => {
                FederationIdentity::Server(id.parse().map_err(lienthong_pki::PkiError::from)?)
            }
            other => {
                return Err(TrustError::Invalid(format!(
                    "profile {} is not issued from a CSR; use auth or sign",
                    other.name()
                )));
            }
        };
        if options.days == 0 {
            return Err(TrustError::Invalid(
                "validity must be at least one day".into(),
            ));
        }
        let verified = verify_csr(csr, ca.policy())?;
        let now = SystemTime::now();
        // A serial clash is astronomically unlikely; the store's unique key catches it anyway.
        let certificate = ca.issue(&IssueRequest {
            profile,
            identity: Some(identity),
            common_name: "",
            public_key: &verified.public_key,
            serial: &Serial::random()?,
            not_before: now - Duration::from_secs(300),
            not_after: now + Duration::from_secs(options.days * DAY),
            ocsp_url: self.settings.ocsp_url.as_deref(),
        })?;
        self.record(&certificate, profile).await?;
        tracing::info!(serial = %certificate.serial_hex(), profile = profile.name(), id, "issued certificate");
        Ok(certificate)
    }

    /// Revoke the certificate with this serial (hex). Needs no key: the OCSP responder
    /// reads revocations from the store.
    pub async fn revoke(
        &self,
        serial_hex: &str,
        reason: Option<lienthong_pki::RevocationReason>,
        time: SystemTime,
    ) -> Result<RevokeOutcome, TrustError> {
        let revocation = Revocation {
            time: unix(time),
            reason: reason.map(|r| r.name().to_owned()),
        };
        let outcome = self.store.pki().revoke(serial_hex, &revocation).await?;
        if outcome == RevokeOutcome::Revoked {
            self.store.pki().reserve(REVOCATION_EPOCH, 1).await?;
            tracing::warn!(serial = serial_hex, reason = ?revocation.reason, "revoked certificate");
        }
        Ok(outcome)
    }

    async fn record(
        &self,
        certificate: &CertificateInfo,
        profile: Profile,
    ) -> Result<(), TrustError> {
        self.store
            .pki()
            .insert_certificate(&CertificateRecord {
                serial: certificate.serial_hex(),
                profile: profile.name().to_owned(),
                subject: certificate.subject(),
                identity: certificate.identity.as_ref().map(ToString::to_string),
                der: certificate.der.clone(),
                not_before: certificate.not_before,
                not_after: certificate.not_after,
                issued_at: unix(SystemTime::now()),
                revocation: None,
            })
            .await?;
        Ok(())
    }
}

/// Write a certificate as PEM.
pub(crate) fn write_pem(path: &Path, der: &[u8]) -> Result<(), TrustError> {
    std::fs::write(path, pem_encode_certificate(der)).map_err(TrustError::io("write", path))
}

pub(crate) fn unix(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
