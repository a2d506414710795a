//! `lienthong key ...`: generate keys in an encrypted key store and make CSRs for them.

use crate::passphrase;
use anyhow::Context as _;
use clap::Subcommand;
use lienthong_crypto::{KeyStore, Suite};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a key in the encrypted key store and write a PKCS #10 CSR for it.
    ///
    /// The CSR's subject is informational: the CA builds the certificate subject from the
    /// identifier it is given at `pki issue`.
    Generate {
        /// The key store directory.
        #[arg(long)]
        keystore: PathBuf,
        /// Name of the key in the store (e.g. `sign-VN.GOV.000123` or `auth`).
        #[arg(long)]
        name: String,
        /// Signature suite.
        #[arg(long, default_value = "ecdsa-p256-sha256")]
        suite: Suite,
        /// Where to write the CSR (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// Common name written into the CSR subject.
        #[arg(long, default_value = "lienthong key")]
        common_name: String,
    },
    /// List the keys in a key store with their suites and public-key fingerprints.
    List {
        /// The key store directory.
        #[arg(long)]
        keystore: PathBuf,
    },
}

pub(crate) fn run(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Generate {
            keystore,
            name,
            suite,
            csr,
            common_name,
        } => {
            let passphrase = passphrase::read(&format!("key {name}"), true)?;
            let key = KeyStore::new(&keystore)
                .generate(&name, suite, &passphrase)
                .with_context(|| format!("generate key {name}"))?;
            let pem = lienthong_pki::create_csr(&key, &common_name).context("create the CSR")?;
            std::fs::write(&csr, pem).with_context(|| format!("write {}", csr.display()))?;
            println!(
                "generated {suite} key {name} in {}; CSR written to {}",
                keystore.display(),
                csr.display()
            );
            Ok(())
        }
        KeyCommand::List { keystore } => {
            let store = KeyStore::new(&keystore);
            for name in store.list()? {
                let (suite, public_key) = store.public_key(&name)?;
                let fingerprint: String = public_key
                    .fingerprint()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                println!(
                    "{name}\t{suite}\t{}\tsha256:{fingerprint}",
                    public_key.algorithm()
                );
            }
            Ok(())
        }
    }
}
