//! A directory of private keys, each encrypted at rest under a passphrase with
//! Argon2id (memory-hard) and AES-256-GCM.
//!
//! File format (`NAME.key`, JSON, mode 0600): the suite and public key in clear, the KDF
//! parameters and salt, and the PKCS #8 key sealed with AES-256-GCM. The associated data
//! binds the format, name, suite and public key, so swapping fields between files or
//! editing them makes decryption fail.

use crate::{CryptoError, PublicKey, Signer as _, SoftwareKey, Suite};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const FORMAT: &str = "lienthong-key/1";
const SALT_LEN: usize = 16;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The default for keys at rest: 64 MiB, 3 passes (about a third of a second here).
    pub const MODERATE: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Cheap parameters for tests and throwaway demo federations only. The name says it.
    pub const DANGEROUS_FAST_FOR_TESTS: Self = Self {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::MODERATE
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    name: String,
    suite: String,
    public_key: String,
    kdf: KdfSection,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSection {
    algorithm: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

/// A directory of encrypted private keys.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    kdf: KdfParams,
}

impl KeyStore {
    /// A key store in `dir` (created on first write) with the default KDF cost.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            kdf: KdfParams::default(),
        }
    }

    /// Use other KDF costs for keys written from now on (reading uses each file's own).
    pub fn with_kdf(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Generate a key for `suite`, store it encrypted under `passphrase` as `name`.
    pub fn generate(
        &self,
        name: &str,
        suite: Suite,
        passphrase: &[u8],
    ) -> Result<SoftwareKey, CryptoError> {
        let (key, pkcs8) = SoftwareKey::generate(suite)?;
        self.store(name, &key, &pkcs8, passphrase)?;
        Ok(key)
    }

    /// Whether a key called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        check_name(name).is_ok() && self.path(name).exists()
    }

    /// Names of the stored keys, sorted.
    pub fn list(&self) -> Result<Vec<String>, CryptoError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error(&self.dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".key").map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The public key of `name`, which needs no passphrase.
    pub fn public_key(&self, name: &str) -> Result<(Suite, PublicKey), CryptoError> {
        let file = self.read(name)?;
        let suite = Suite::from_id(&file.suite)?;
        let spki = decode(name, "public_key", &file.public_key)?;
        Ok((suite, PublicKey::from_spki_der(&spki)?))
    }

    /// Decrypt and load `name`.
    pub fn load(&self, name: &str, passphrase: &[u8]) -> Result<SoftwareKey, CryptoError> {
        let file = self.read(name)?;
        let malformed = |reason: &str| CryptoError::MalformedKeyFile {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if file.format != FORMAT {
            return Err(malformed("unknown format version"));
        }
        if file.name != name {
            return Err(malformed("file holds a key of another name"));
        }
        if file.kdf.algorithm != "argon2id" || file.cipher != "aes-256-gcm" {
            return Err(malformed("unsupported KDF or cipher"));
        }
        let suite = Suite::from_id(&file.suite)?;
        let spki = decode(name, "public_key", &file.public_key)?;
        let salt = decode(name, "salt", &file.kdf.salt)?;
        let nonce: [u8; NONCE_LEN] = decode(name, "nonce", &file.nonce)?
            .try_into()
            .map_err(|_| malformed("nonce has the wrong length"))?;
        let mut sealed = Zeroizing::new(decode(name, "ciphertext", &file.ciphertext)?);
        let aead = derive_key(passphrase, &salt, file.kdf.params)?;
        let aad = associated_data(name, suite, &spki);
        let pkcs8 = aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut sealed,
            )
            .map_err(|_| CryptoError::WrongPassphrase {
                name: name.to_owned(),
            })?;
        let key = SoftwareKey::from_pkcs8(suite, pkcs8)?;
        if key.public_key().spki_der() != spki.as_slice() {
            return Err(malformed("public key does not match the private key"));
        }
        Ok(key)
    }

    /// Store an existing key (as PKCS #8) under `name`. Refuses to overwrite.
    pub fn store(
        &self,
        name: &str,
        key: &SoftwareKey,
        pkcs8: &[u8],
        passphrase: &[u8],
    ) -> Result<(), CryptoError> {
        check_name(name)?;
        if passphrase.is_empty() {
            return Err(CryptoError::MalformedKeyFile {
                name: name.to_owned(),
                reason: "an empty passphrase is not allowed".into(),
            });
        }
        let rng = SystemRandom::new();
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut salt)
            .and_then(|()| rng.fill(&mut nonce))
            .map_err(|_| CryptoError::Backend("random generator failed"))?;
        let aead = derive_key(passphrase, &salt, self.kdf)?;
        let spki = key.public_key().spki_der();
        let aad = associated_data(name, key.suite(), spki);
        let mut sealed = Zeroizing::new(pkcs8.to_vec());
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut *sealed,
        )
        .map_err(|_| CryptoError::Backend("encryption failed"))?;
        let file = KeyFile {
            format: FORMAT.into(),
            name: name.into(),
            suite: key.suite().id().into(),
            public_key: STANDARD.encode(spki),
            kdf: KdfSection {
                algorithm: "argon2id".into(),
                params: self.kdf,
                salt: STANDARD.encode(salt),
            },
            cipher: "aes-256-gcm".into(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(&*sealed),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|_| CryptoError::Backend("cannot encode key file"))?;
        self.write_new(name, &json)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    fn read(&self, name: &str) -> Result<KeyFile, CryptoError> {
        check_name(name)?;
        let path = self.path(name);
        let bytes = std::fs::read(&path).map_err(|e| self.io_error(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| CryptoError::MalformedKeyFile {
            name: name.to_owned(),
            reason: e.to_string(),
        })
    }

    fn write_new(&self, name: &str, contents: &[u8]) -> Result<(), CryptoError> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.io_error(&self.dir, e))?;
        let path = self.path(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    CryptoError::KeyExists {
                        name: name.to_owned(),
                    }
                } else {
                    self.io_error(&path, e)
                }
            })?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error(&path, e))
    }

    fn io_error(&self, path: &Path, source: std::io::Error) -> CryptoError {
        CryptoError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

fn check_name(name: &str) -> Result<(), CryptoError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CryptoError::InvalidKeyName(name.to_owned()))
    }
}

fn decode(name: &str, field: &str, value: &str) -> Result<Vec<u8>, CryptoError> {
    STANDARD
        .decode(value)
        .map_err(|_| CryptoError::MalformedKeyFile {
            name: name.to_owned(),
            reason: format!("{field} is not base64"),
        })
}

fn associated_data(name: &str, suite: Suite, spki: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + spki.len());
    for part in [FORMAT.as_bytes(), name.as_bytes(), suite.id().as_bytes()] {
        aad.extend_from_slice(part);
        aad.push(0);
    }
    aad.extend_from_slice(spki);
    aad
}

fn derive_key(passphrase: &[u8], salt: &[u8], kdf: KdfParams) -> Result<LessSafeKey, CryptoError> {
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|_| CryptoError::Backend("invalid Argon2 parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key_bytes = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, &mut *key_bytes)
        .map_err(|_| CryptoError::Backend("key derivation failed"))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &*key_bytes)
        .map_err(|_| CryptoError::Backend("cannot create AEAD key"))?;
    Ok(LessSafeKey::new(unbound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> KeyStore {
        KeyStore::new(dir).with_kdf(KdfParams::DANGEROUS_FAST_FOR_TESTS)
    }

    #[test]
    fn generate_then_load_signs_with_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = store(dir.path());
        let key = keys
            .generate("member-sign", Suite::EcdsaP256Sha256, b"correct horse")
            .expect("generate");
        let loaded = keys.load("member-sign", b"correct horse").expect("load");
        assert_eq!(key.public_key(), loaded.public_key());
        let signature = loaded.sign(b"x").expect("sign");
        key.public_key().verify(b"x", &signature).expect("verify");
        assert_eq!(keys.list().expect("list"), vec!["member-sign".to_owned()]);
        let (suite, public) = keys.public_key("member-sign").expect("public");
        assert_eq!((suite, &public), (Suite::EcdsaP256Sha256, key.public_key()));
    }

    #[test]
    fn wrong_passphrase_and_tampering_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = store(dir.path());
        keys.generate("k", Suite::Ed25519, b"pass")
            .expect("generate");
        assert!(matches!(
            keys.load("k", b"wrong"),
            Err(CryptoError::WrongPassphrase { .. })
        ));
        // Swap in another key's public key: the AAD binding must catch it.
        let path = dir.path().join("k.key");
        let mut file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let (other, _) = SoftwareKey::generate(Suite::Ed25519).expect("other");
        file["public_key"] = STANDARD.encode(other.public_key().spki_der()).into();
        std::fs::write(&path, serde_json::to_vec(&file).expect("encode")).expect("write");
        assert!(matches!(
            keys.load("k", b"pass"),
            Err(CryptoError::WrongPassphrase { .. })
        ));
    }

    #[test]
    fn key_files_hold_no_plaintext_and_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = store(dir.path());
        let (key, pkcs8) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("generate");
        keys.store("k", &key, &pkcs8, b"pass").expect("store");
        let bytes = std::fs::read(dir.path().join("k.key")).expect("read");
        let private_part = &pkcs8[pkcs8.len() - 40..];
        assert!(
            !bytes.windows(private_part.len()).any(|w| w == private_part),
            "raw key bytes must not appear"
        );
        assert!(!String::from_utf8_lossy(&bytes).contains(&STANDARD.encode(&*pkcs8)));
        let mode = std::fs::metadata(dir.path().join("k.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            format!("{key:?}").len() < 300,
            "Debug prints no key material"
        );
    }

    #[test]
    fn refuses_overwrite_bad_names_and_empty_passphrases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = store(dir.path());
        keys.generate("k", Suite::Ed25519, b"p").expect("generate");
        assert!(matches!(
            keys.generate("k", Suite::Ed25519, b"p"),
            Err(CryptoError::KeyExists { .. })
        ));
        for bad in ["../k", "", ".hidden", "a/b", "k k"] {
            assert!(matches!(
                keys.generate(bad, Suite::Ed25519, b"p"),
                Err(CryptoError::InvalidKeyName(_))
            ));
        }
        assert!(keys.generate("e", Suite::Ed25519, b"").is_err());
    }
}
